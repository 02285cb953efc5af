import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BadRecordError } from '../../src/errors.js';
import { HEADER_SIZE, MAGIC_BYTE, frame, unframe } from '../../src/schema/wire-format.js';
import { catchError } from '../support/unit/fixtures.js';

const anySchemaId = fc.integer({ min: 0, max: 0xffff_ffff });
const anyBody = fc.uint8Array({ maxLength: 256 }).map((a) => Buffer.from(a));

function expectUndecodable(value: Buffer | null): BadRecordError {
  const error = catchError(() => unframe(value));
  expect(error).toBeInstanceOf(BadRecordError);
  const bad = error as BadRecordError;
  expect(bad.reason).toBe('undecodable');
  expect(bad.code).toBe('ORDO_BAD_RECORD');
  expect(bad.retriable).toBe(false);
  return bad;
}

describe('Confluent wire format', () => {
  it('lays out magic byte 0, a big-endian 4-byte schema id, then the body', () => {
    const framed = frame(0x01020304, Buffer.from([0xaa, 0xbb]));
    expect([...framed]).toEqual([0x00, 0x01, 0x02, 0x03, 0x04, 0xaa, 0xbb]);
    expect(MAGIC_BYTE).toBe(0);
    expect(HEADER_SIZE).toBe(5);
  });

  it('round-trips any schema id and body', () => {
    fc.assert(
      fc.property(anySchemaId, anyBody, (schemaId, body) => {
        const framed = frame(schemaId, body);
        expect(framed.length).toBe(HEADER_SIZE + body.length);
        const { schemaId: id, body: out } = unframe(framed);
        expect(id).toBe(schemaId);
        expect(out.equals(body)).toBe(true);
      }),
    );
  });

  it('accepts a header with an empty body', () => {
    expect(unframe(Buffer.from([0, 0, 0, 0, 7]))).toEqual({ schemaId: 7, body: Buffer.alloc(0) });
  });

  it('does not alias the body it was given when framing', () => {
    const body = Buffer.from([1, 2, 3]);
    const framed = frame(1, body);
    body[0] = 9;
    expect(framed[HEADER_SIZE]).toBe(1);
  });

  it('rejects a null or empty value', () => {
    expectUndecodable(null);
    expectUndecodable(Buffer.alloc(0));
  });

  it('rejects values shorter than the header', () => {
    for (let n = 1; n < HEADER_SIZE; n++) {
      expect(expectUndecodable(Buffer.alloc(n)).message).toContain(`${n} bytes`);
    }
  });

  it('rejects any value that does not start with the magic byte', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 255 }), anyBody, (magic, rest) => {
        const value = Buffer.concat([Buffer.from([magic, 0, 0, 0, 1]), rest]);
        const error = expectUndecodable(value);
        expect(error.message).toContain(`0x${magic.toString(16).padStart(2, '0')}`);
      }),
    );
  });

  it('rejects schema ids outside the unsigned 32-bit range when framing', () => {
    expect(catchError(() => frame(-1, Buffer.alloc(0)))).toBeInstanceOf(RangeError);
    expect(catchError(() => frame(2 ** 32, Buffer.alloc(0)))).toBeInstanceOf(RangeError);
  });
});
