/**
 * All of stdin, read as a stream. Not `readFileSync(0)`: once stdin is a pipe that Node has
 * opened (any `process.stdin` access does), a synchronous read finds it non-blocking and
 * throws EAGAIN whenever the writer has not written everything yet.
 */
export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks).toString('utf8');
}
