import { BadRecordError } from '../errors.js';

/** Confluent wire format: magic byte 0, 4-byte big-endian schema id, then the Avro body. */
export const MAGIC_BYTE = 0;
export const HEADER_SIZE = 5;

export interface Framed {
  schemaId: number;
  body: Buffer;
}

export function unframe(value: Buffer | null): Framed {
  if (value === null || value.length === 0) throw new BadRecordError('undecodable', 'record has no value');
  if (value.length < HEADER_SIZE) throw new BadRecordError('undecodable', `value of ${value.length} bytes is shorter than the 5-byte Confluent header`);
  if (value[0] !== MAGIC_BYTE) {
    throw new BadRecordError('undecodable', `value does not start with the Confluent magic byte 0 (found 0x${value[0]!.toString(16).padStart(2, '0')})`);
  }
  return { schemaId: value.readUInt32BE(1), body: value.subarray(HEADER_SIZE) };
}

export function frame(schemaId: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(HEADER_SIZE + body.length);
  out[0] = MAGIC_BYTE;
  out.writeUInt32BE(schemaId, 1);
  body.copy(out, HEADER_SIZE);
  return out;
}
