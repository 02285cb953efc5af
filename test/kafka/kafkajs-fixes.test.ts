import { createRequire } from 'node:module';
import { afterEach, describe, expect, it } from 'vitest';

interface Queue {
  pending: unknown[];
  throttledUntil: number;
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  maybeThrottle(ms: number): void;
  checkPendingRequests(): void;
  push(request: { entry: { correlationId: number; resolve: () => void; reject: () => void }; expectResponse: boolean; sendRequest: () => void }): void;
  destroy(): void;
}
const RequestQueue = createRequire(import.meta.url)('kafkajs/src/network/requestQueue/index.js') as new (options: object) => Queue;
const quiet = { debug: () => undefined, warn: () => undefined, info: () => undefined, error: () => undefined };
const queues: Queue[] = [];
const queue = (): Queue => {
  const q = new RequestQueue({ maxInFlightRequests: null, requestTimeout: 30_000, enforceRequestTimeout: false, clientId: 't', broker: 'b', logger: quiet });
  queues.push(q);
  return q;
};
afterEach(() => queues.splice(0).forEach((q) => q.destroy()));

// patches/kafkajs+2.2.4.patch (docs/kafkajs-patch.md): these fail on upstream kafkajs.
describe("kafkajs' request queue, as Ordo runs it", () => {
  it('arms no timer when nothing is pending (kafkajs arms a negative one: a Node warning and a 1 ms poll)', () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error): void => void warnings.push(warning);
    process.on('warning', onWarning);
    try {
      const q = queue();
      q.checkPendingRequests(); // what each answer from the broker calls
      expect(q.throttleCheckTimeoutId).toBeNull();
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings.filter((w) => w.name === 'TimeoutNegativeWarning')).toEqual([]);
  });

  it('still sends a request held back by a broker throttle once the throttle ends', async () => {
    const q = queue();
    q.maybeThrottle(50);
    let sent = 0;
    q.push({ entry: { correlationId: 1, resolve: () => undefined, reject: () => undefined }, expectResponse: false, sendRequest: () => void (sent += 1) });
    expect({ sent, pending: q.pending.length }).toEqual({ sent: 0, pending: 1 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect({ sent, pending: q.pending.length }).toEqual({ sent: 1, pending: 0 });
    expect(q.throttleCheckTimeoutId).toBeNull(); // and then goes quiet
  });
});

// patches/kafkajs+2.2.4.patch: fails on upstream kafkajs, which throws the first partition's error.
describe("kafkajs' AddPartitionsToTxn response, as Ordo runs it", () => {
  const { parse } = createRequire(import.meta.url)('kafkajs/src/protocol/requests/addPartitionsToTxn/v0/response.js') as { parse(data: unknown): Promise<unknown> };

  it('names the partition that failed, not one the broker did not attempt because of it', async () => {
    const data = {
      throttleTime: 0,
      errors: [
        { topic: 'changelog', partitionErrors: [{ partition: 0, errorCode: 55 }] },
        { topic: 'ordered', partitionErrors: [{ partition: 0, errorCode: 29 }] },
      ],
    };
    await expect(parse(data)).rejects.toMatchObject({ type: 'TOPIC_AUTHORIZATION_FAILED' });
  });

  it('still reports OPERATION_NOT_ATTEMPTED when that is all there is', async () => {
    await expect(parse({ throttleTime: 0, errors: [{ topic: 't', partitionErrors: [{ partition: 0, errorCode: 55 }] }] })).rejects.toMatchObject({ type: 'OPERATION_NOT_ATTEMPTED' });
  });
});
