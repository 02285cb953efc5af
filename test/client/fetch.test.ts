import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { type BadRecordError, HybridClock, formatServiceTime, makeServiceTime, parseServiceTime, withServiceTime } from '../../src/client/index.js';
import { type LocalServer, localServer } from '../support/local-http.js';

const servers: LocalServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** A callee whose answer carries the `service-time` the test asks for in the request's `x-answer-time` header. */
async function callee(): Promise<LocalServer> {
  const server = await localServer((req, res) => {
    const answer = req.headers['x-answer-time'];
    if (typeof answer === 'string' && answer !== '') res.setHeader('service-time', answer);
    res.end('ok');
  });
  servers.push(server);
  return server;
}

describe('withServiceTime(fetch, clock)', () => {
  it('sends a fresh stamp on every call and receives the answers, so sent stamps rise above every answer (any answers within the skew bound)', async () => {
    const server = await callee();
    await fc.assert(
      fc.asyncProperty(fc.array(fc.option(fc.integer({ min: -5_000, max: 500 }), { nil: undefined }), { minLength: 1, maxLength: 12 }), async (offsets) => {
        const physical = { ms: Date.now(), now: () => physical.ms };
        const clock = new HybridClock({ node: 'svc-a', physical });
        const fetchT = withServiceTime(fetch, clock);
        const seenBefore = server.requests.length;
        let highestAnswer = 0n;
        for (const offset of offsets) {
          const answer = offset === undefined ? undefined : makeServiceTime(physical.ms + offset, offset & 0xff);
          const response = await fetchT(`${server.url}/x`, { headers: { 'x-answer-time': answer === undefined ? '' : formatServiceTime(answer) } });
          await response.text();
          if (answer !== undefined && answer > highestAnswer) highestAnswer = answer;
          expect(clock.last).toBeGreaterThanOrEqual(highestAnswer);
        }
        const sent = server.requests.slice(seenBefore).map((r) => r.headers['service-time'] as string);
        expect(sent).toHaveLength(offsets.length);
        const times = sent.map((t) => parseServiceTime(t));
        for (let i = 1; i < times.length; i += 1) expect(times[i]!).toBeGreaterThan(times[i - 1]!);
        // Every call after an answer sends a stamp above that answer.
        offsets.forEach((offset, i) => {
          if (offset === undefined || i + 1 >= times.length) return;
          expect(times[i + 1]!).toBeGreaterThan(makeServiceTime(physical.ms + offset, offset & 0xff));
        });
        expect(server.requests.slice(seenBefore).every((r) => r.headers['service-node'] === 'svc-a')).toBe(true);
      }),
      { numRuns: 25 },
    );
  });

  it("keeps the caller's other headers, from init or from a Request, and replaces a service-time the caller set", async () => {
    const server = await callee();
    const clock = new HybridClock({ node: 'svc-a' });
    const fetchT = withServiceTime(fetch, clock);
    await (await fetchT(`${server.url}/a`, { headers: { 'x-one': '1', 'service-time': 'ffffffffffffffff' } })).text();
    await (await fetchT(new Request(`${server.url}/b`, { headers: { 'x-two': '2' } }))).text();
    const [a, b] = server.requests;
    expect(a!.headers['x-one']).toBe('1');
    expect(a!.headers['service-time']).not.toBe('ffffffffffffffff');
    expect(b!.headers['x-two']).toBe('2');
    expect(parseServiceTime(b!.headers['service-time'] as string)).toBeGreaterThan(parseServiceTime(a!.headers['service-time'] as string));
  });

  it('an answer with a malformed or skewed service-time is returned as usual, reported, and leaves the clock as it was', async () => {
    const server = await callee();
    const clock = new HybridClock({ node: 'svc-a' });
    const rejected: string[] = [];
    const fetchT = withServiceTime(fetch, clock, { onRejectedTime: (error: BadRecordError) => rejected.push(error.reason) });
    for (const answer of ['XYZ', formatServiceTime(makeServiceTime(Date.now() + 60_000, 0))]) {
      const response = await fetchT(`${server.url}/x`, { headers: { 'x-answer-time': answer } });
      expect(await response.text()).toBe('ok');
      // The clock's last time is still the stamp it sent: the answer's was not adopted.
      expect(clock.last).toBe(parseServiceTime(server.requests.at(-1)!.headers['service-time'] as string));
    }
    expect(rejected).toEqual(['bad-service-time', 'clock-skew']);
  });

  it('rejects like fetch when nobody answers', async () => {
    const server = await callee();
    await server.close();
    servers.length = 0;
    await expect(withServiceTime(fetch, new HybridClock({ node: 'a' }))(server.url)).rejects.toThrow(/fetch failed/);
  });
});
