import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../support/process.js';

/** `ordo events produce` with its stdin written in two parts, `pauseMs` apart. */
function produceSlowly(first: string, rest: string, pauseMs: number): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'events', 'produce'], { cwd: ROOT, stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('exit', (code) => resolve({ code, stderr }));
    child.stdin.write(first);
    setTimeout(() => child.stdin.end(rest), pauseMs);
  });
}

describe('ordo events produce reading stdin', () => {
  it('reads all of a pipe whose writer is slower than the reader (a sync read of it threw EAGAIN)', async () => {
    // Bad input on purpose: the command stops at parsing, before it needs a broker.
    const { code, stderr } = await produceSlowly('{"id":"slow-1",', ' "type": 7}\n', 1_500);
    expect(stderr).not.toMatch(/EAGAIN/);
    expect({ code, stderr }).toMatchObject({ code: 65, stderr: expect.stringMatching(/^ordo events: line 1: /m) as unknown });
  }, 30_000);
});
