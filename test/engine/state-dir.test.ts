import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { open } from 'lmdb';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { noopLogger } from '../../src/observability/logger.js';
import { type RestoreSource, LmdbBackend, memoryBackend, planFrom, stateBackend } from '../../src/engine/state-dir.js';
import { numberCodec, stringCodec } from '../../src/model/store.js';
import { tempDirs } from '../support/temp-dirs.js';

const tempDir = tempDirs('ordo-state-');

const SPEC = { groupId: 'g', topic: 'in', partition: 3, stores: [{ name: 'meta', codec: stringCodec }, { name: 'counts', codec: numberCodec }] };
const SOURCES: RestoreSource[] = [
  { store: 'meta', topic: 'g-meta-changelog', partition: 3 },
  { store: 'counts', topic: 'out', partition: 3 },
];
const ENDS = [{ ...SOURCES[0]!, offset: '17' }, { ...SOURCES[1]!, offset: '40' }];

/** A task's life: begin, some committed writes, then a clean close (checkpoint) or not. */
async function run(backend: LmdbBackend, writes: [string, number][], clean: boolean): Promise<string> {
  const state = await backend.open(SPEC);
  const plan = state.begin(SOURCES);
  const counts = state.stores.get('counts')!;
  for (const [key, value] of writes) counts.put(key, value);
  state.commit();
  if (clean) await state.checkpoint(ENDS);
  await state.close();
  return plan.kind === 'tail' ? `tail ${JSON.stringify([...plan.from])}` : `full: ${plan.why}`;
}

async function entries(backend: LmdbBackend): Promise<[string, unknown][]> {
  const state = await backend.open(SPEC);
  const out = [...state.stores.get('counts')!.entries()];
  await state.close();
  return out;
}

function rawCheckpoint(backend: LmdbBackend, value?: string): string | undefined {
  const env = open({ path: backend.path(SPEC), maxDbs: 8 });
  const db = env.openDB<string, string>('ordo:checkpoint', { encoding: 'string' });
  if (value !== undefined) db.putSync('checkpoint', value);
  const stored = db.get('checkpoint');
  void env.close();
  return stored;
}

describe('checkpoint protocol (LmdbBackend)', () => {
  it('first start: no checkpoint, full restore; a clean close checkpoints; the next start restores the tail from it and keeps the state', async () => {
    const backend = new LmdbBackend(tempDir(), noopLogger);
    expect(await run(backend, [['a', 1]], true)).toBe('full: no checkpoint');
    expect(await run(backend, [['b', 2]], true)).toBe('tail [["meta","17"],["counts","40"]]');
    expect(await entries(backend)).toEqual([['a', 1], ['b', 2]]);
  });

  it('deletes the checkpoint at start: after a crash (no clean close) the next start wipes and restores fully', async () => {
    const backend = new LmdbBackend(tempDir(), noopLogger);
    await run(backend, [['a', 1]], true);
    const state = await backend.open(SPEC);
    expect(state.begin(SOURCES).kind).toBe('tail');
    expect(rawCheckpoint(backend)).toBeUndefined(); // gone before anything is processed
    state.stores.get('counts')!.put('b', 2);
    state.commit();
    await state.close(); // a crash: no checkpoint written
    expect(await run(backend, [], false)).toBe('full: no checkpoint');
    expect(await entries(backend)).toEqual([]);
  });

  it('a corrupt checkpoint wipes and restores fully', async () => {
    for (const corrupt of ['{"version":1,"stores":["counts","meta"],"sources":[{"store":"meta"', '{"version":2,"stores":[],"sources":[]}', 'null', '{"version":1,"stores":["counts","meta"],"sources":[{"store":"meta","topic":"g-meta-changelog","partition":3,"offset":"-1"}]}']) {
      const backend = new LmdbBackend(tempDir(), noopLogger);
      await run(backend, [['a', 1]], true);
      rawCheckpoint(backend, corrupt);
      expect(await run(backend, [], false)).toBe('full: corrupt checkpoint');
      expect(await entries(backend)).toEqual([]);
    }
  });

  it('a checkpoint of other stores or other sources wipes and restores fully', async () => {
    const backend = new LmdbBackend(tempDir(), noopLogger);
    await run(backend, [['a', 1]], true);
    const state = await backend.open(SPEC);
    expect(state.begin([SOURCES[0]!, { ...SOURCES[1]!, topic: 'counts-changelog' }])).toEqual({ kind: 'full', why: 'checkpoint of other stores or sources' });
    expect([...state.stores.get('counts')!.entries()]).toEqual([]);
    await state.close();
  });

  it('one open task per directory: a second open of the same partition waits for the first to close', async () => {
    const backend = new LmdbBackend(tempDir(), noopLogger);
    const first = await backend.open(SPEC);
    let second = false;
    const opening = backend.open(SPEC).then((s) => {
      second = true;
      return s;
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(second).toBe(false);
    await first.close();
    await (await opening).close();
    expect(second).toBe(true);
  });
});

describe('planFrom', () => {
  const stored = JSON.stringify({ version: 1, stores: ['counts', 'meta'], sources: ENDS });
  it('trusts a checkpoint of the same version, stores and sources', () => {
    expect(planFrom(stored, ['meta', 'counts'], SOURCES)).toEqual({ kind: 'tail', from: new Map([['meta', '17'], ['counts', '40']]) });
  });
  it('restores fully without one, with a store more or less, or with a moved source', () => {
    expect(planFrom(undefined, ['meta', 'counts'], SOURCES).kind).toBe('full');
    expect(planFrom(stored, ['meta', 'counts', 'extra'], SOURCES).kind).toBe('full');
    expect(planFrom(stored, ['meta', 'counts'], [SOURCES[0]!, { ...SOURCES[1]!, partition: 4 }]).kind).toBe('full');
    expect(planFrom('not json', ['meta', 'counts'], SOURCES)).toEqual({ kind: 'full', why: 'corrupt checkpoint' });
  });
});

describe('stateBackend (ORDO_STATE_DIR)', () => {
  it('is in memory when unset, and always restores fully there', async () => {
    expect(stateBackend(undefined, noopLogger)).toBe(memoryBackend);
    const state = await memoryBackend.open(SPEC);
    expect(state.begin(SOURCES)).toEqual({ kind: 'full', why: 'in-memory' });
  });

  it('refuses a directory it cannot make, naming the variable', () => {
    // A path under a regular file is no directory for anyone, root included.
    const file = join(tempDir(), 'file');
    writeFileSync(file, 'x');
    expect(() => stateBackend(join(file, 'state'), noopLogger)).toThrow(ConfigError);
    expect(() => stateBackend(join(file, 'state'), noopLogger)).toThrow(/^ORDO_STATE_DIR: .*file\/state cannot be used/);
  });
});
