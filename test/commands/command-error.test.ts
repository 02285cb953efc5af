import { describe, expect, it } from 'vitest';
import { retrying } from '../../src/commands/command-error.js';

describe('retrying a one-shot admin call', () => {
  it('tries again after an error kafkajs marks retriable', async () => {
    let calls = 0;
    const result = await retrying(() => {
      calls += 1;
      return calls < 3 ? Promise.reject(Object.assign(new Error('This server is not the leader for that topic-partition'), { retriable: true })) : Promise.resolve('offsets');
    });
    expect({ result, calls }).toEqual({ result: 'offsets', calls: 3 });
  });

  it('gives up at once on anything else, and after its attempts', async () => {
    let calls = 0;
    await expect(retrying(() => ((calls += 1), Promise.reject(new Error('no'))))).rejects.toThrow('no');
    expect(calls).toBe(1);
    calls = 0;
    await expect(retrying(() => ((calls += 1), Promise.reject(Object.assign(new Error('still moving'), { retriable: true }))), 2)).rejects.toThrow('still moving');
    expect(calls).toBe(2);
  });
});
