import { stringCodec } from '../../src/model/store.js';
import type { TaskContext, TaskProcessor } from '../../src/engine/task-processor.js';
import type { SourceRecord } from '../../src/model/records.js';

/** Counts records per key in a changelog-backed store (`counts`) and echoes each to `output` as `key:count`. */
export class CountingProcessor implements TaskProcessor {
  readonly stores = [{ name: 'counts', codec: stringCodec as never }];
  restoredWith = new Map<string, string>();

  constructor(private readonly output: string) {}

  onRestored(context: TaskContext): void {
    const store = context.store<string>('counts');
    for (const key of ['a', 'b', 'c']) {
      const v = store.get(key);
      if (v !== undefined) this.restoredWith.set(key, v);
    }
  }

  prepare(): Promise<void> {
    return Promise.resolve();
  }

  process(records: readonly SourceRecord[], context: TaskContext) {
    const store = context.store<string>('counts');
    const outputs = records.map((r) => {
      const key = r.key!.toString();
      const next = String(Number(store.get(key) ?? '0') + 1);
      store.put(key, next);
      return { topic: this.output, key, value: `${key}:${next}`, headers: {} };
    });
    return { outputs, report: { deadLetters: [] } };
  }
}

/** Input records of partition 0 of `topic`, one per key, from offset `from`. */
export function inputRecords(topic: string, from: number, keys: string[]): SourceRecord[] {
  return keys.map((key, i) => ({ topic, partition: 0, offset: String(from + i), key: Buffer.from(key), value: Buffer.from('x'), headers: {}, timestamp: Date.now() }));
}
