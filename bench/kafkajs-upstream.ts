// The installed kafkajs carries Ordo's patch (patches/, docs/kafkajs-patch.md). To compare
// against upstream in one process, this makes an unpatched copy: the installed package copied
// to a temporary directory and the patch reverse-applied there. Used by bench/encode.ts,
// bench/add-partitions.ts and test/kafka/kafkajs-patch.test.ts.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..');

/** The patch file of the installed kafkajs version (patch-package names it `kafkajs+<version>.patch`). */
export function kafkajsPatchFile(): string {
  const dir = path.join(ROOT, 'patches');
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => /^kafkajs\+.+\.patch$/.test(f)) : [];
  if (files.length !== 1) throw new Error(`expected one patches/kafkajs+<version>.patch, found ${files.length === 0 ? 'none' : files.join(', ')}`);
  return path.join(dir, files[0]!);
}

/** The directory of the installed (patched) kafkajs package. */
export function installedKafkajs(): string {
  return path.join(ROOT, 'node_modules', 'kafkajs');
}

/**
 * A temporary copy of the installed kafkajs with the patch reverse-applied (i.e. upstream),
 * and a function that deletes it. Fails if the installed package is not patched (then the
 * reverse patch does not apply: run `npm ci`, whose postinstall applies it).
 */
export function upstreamKafkajs(): { dir: string; remove: () => void } {
  const base = mkdtempSync(path.join(tmpdir(), 'ordo-kafkajs-upstream-'));
  const dir = path.join(base, 'node_modules', 'kafkajs');
  const remove = (): void => rmSync(base, { recursive: true, force: true });
  try {
    cpSync(installedKafkajs(), dir, { recursive: true });
    // patch-package writes git-style paths (a/node_modules/kafkajs/...): -p1 from `base`.
    // --force, not --batch: --batch would take an unpatched copy for a reversed patch and
    // apply it forwards, silently swapping the two.
    const run = spawnSync('patch', ['--reverse', '--force', '--silent', '--no-backup-if-mismatch', '-p1', '-i', kafkajsPatchFile()], { cwd: base, encoding: 'utf8' });
    if (run.error) throw new Error(`cannot run patch(1): ${run.error.message}`);
    if (run.status !== 0) throw new Error(`the kafkajs patch does not reverse-apply: is node_modules/kafkajs patched (npm ci)?\n${run.stdout}${run.stderr}`);
    return { dir, remove };
  } catch (error) {
    remove();
    throw error;
  }
}

/** `require` for a module of the kafkajs package in `dir` (e.g. 'src/protocol/encoder'). */
export function requireFrom(dir: string): (module: string) => unknown {
  const require = createRequire(path.join(dir, 'package.json'));
  return (module) => require(path.join(dir, module)) as unknown;
}

/** A message as kafkajs' producer takes it (the fields the produce path reads). */
export interface ProducedMessage {
  key?: string | Buffer | null;
  value: string | Buffer | null;
  headers?: Record<string, string | Buffer | (string | Buffer)[]>;
  partition?: number;
  timestamp?: string;
}

interface EncoderLike {
  buffer: Buffer;
  size(): number;
  writeVarLong(value: unknown): EncoderLike;
}

export interface EosManager {
  initProducerId(): Promise<void>;
  beginTransaction(): void;
  addPartitionsToTransaction(topicData: { topic: string; partitions: { partition: number }[] }[]): Promise<void>;
}

/** The internals of the kafkajs package in `dir` that the patch touches (untyped upstream). */
export interface KafkajsInternals {
  groupMessagesPerPartition: (args: { topic: string; partitionMetadata: unknown[]; messages: ProducedMessage[]; partitioner: (args: { message: ProducedMessage }) => number }) => Record<string, ProducedMessage[]>;
  /** Produce request v3 (v4 to v7 reuse its encoding). */
  produceRequest: (args: Record<string, unknown>) => { encode: () => Promise<EncoderLike> };
  /** The request envelope (size, api key, correlation id, client id). */
  request: (args: Record<string, unknown>) => Promise<EncoderLike>;
  Encoder: (new () => EncoderLike) & { sizeOfVarLong(value: unknown): number };
  Long: { fromValue(value: unknown): unknown };
  createEosManager: (args: Record<string, unknown>) => EosManager;
  createErrorFromCode: (code: number) => Error;
  /** The producer's send: grouping, AddPartitionsToTxn, one produce request per leader. */
  createSendMessages: (args: Record<string, unknown>) => (args: { acks: number; timeout: number; topicMessages: { topic: string; messages: ProducedMessage[] }[] }) => Promise<unknown[]>;
  createRetry: (config: Record<string, unknown>) => unknown;
}

export function kafkajsInternals(dir: string): KafkajsInternals {
  const req = requireFrom(dir);
  return {
    groupMessagesPerPartition: req('src/producer/groupMessagesPerPartition.js') as KafkajsInternals['groupMessagesPerPartition'],
    produceRequest: req('src/protocol/requests/produce/v3/request.js') as KafkajsInternals['produceRequest'],
    request: req('src/protocol/request.js') as KafkajsInternals['request'],
    Encoder: req('src/protocol/encoder.js') as KafkajsInternals['Encoder'],
    Long: req('src/utils/long.js') as KafkajsInternals['Long'],
    createEosManager: req('src/producer/eosManager/index.js') as KafkajsInternals['createEosManager'],
    createErrorFromCode: (req('src/protocol/error.js') as { createErrorFromCode: KafkajsInternals['createErrorFromCode'] }).createErrorFromCode,
    createSendMessages: req('src/producer/sendMessages.js') as KafkajsInternals['createSendMessages'],
    createRetry: req('src/retry/index.js') as KafkajsInternals['createRetry'],
  };
}
