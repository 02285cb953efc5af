import type { IncomingMessage } from 'node:http';
import { QueryError } from '../errors.js';

/**
 * A request body, at most `maxBytes`: 413 `too-large` beyond (by the declared length before
 * reading, else while reading), with `Connection: close` so the rest is not read.
 */
export async function readBoundedBody(req: IncomingMessage, maxBytes: number, hint = ''): Promise<Buffer> {
  const tooLarge = (): QueryError => new QueryError('too-large', `the body is larger than ${maxBytes} bytes${hint}`, 413, { headers: { connection: 'close' } });
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > maxBytes) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
