/**
 * The bench's anchors (bench/README.md, "Anchors"): Kafka's own transactional
 * `ProducerPerformance` (the broker's limit) and a Java exactly-once consume -> produce
 * passthrough (bench/java/EosPassthrough.java), both on the Kafka jars the local stack
 * resolves (scripts/kafka/pom.xml, profile `bench-anchors` adds kafka-tools), run as child
 * JVMs and measured from the outside like every other system.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Kafka, Message } from 'kafkajs';
import type { OrdoConfig } from '../src/config/config.js';
import { produceAll } from './events.js';
import { benchSecurity, createTopics, withTimeout } from './kafka.js';
import type { BenchParams, SystemName } from './params.js';
import type { Processor } from './processors.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const POM = path.join(REPO, 'scripts/kafka/pom.xml');
const SOURCE = fileURLToPath(new URL('./java/EosPassthrough.java', import.meta.url));
const MAIN_CLASS = 'EosPassthrough';
const PERF_CLASS = 'org.apache.kafka.tools.ProducerPerformance';
/** Heap of each anchor JVM (a client, not the broker). */
const JVM_OPTIONS = ['-Xms64m', '-Xmx512m', '-Djava.awt.headless=true'];

/** What the anchors run with, once prepared. */
export interface JavaAnchors {
  java: string;
  javaVersion: string;
  kafkaVersion: string;
  /** The Kafka jars (broker, clients, tools) and the compiled passthrough's directory. */
  classpath: string;
}

export type AnchorSetup = { state: 'ready'; anchors: JavaAnchors } | { state: 'skipped'; reason: string } | { state: 'failed'; reason: string };

/** Not thrown for a missing JDK (that skips the anchors), only for a failure to prepare them. */
class AnchorSetupError extends Error {}

/**
 * Finds `java` and `javac` (JAVA_HOME first, then PATH, as scripts/kafka/env.sh does),
 * resolves the Kafka jars with Maven once (cached in <ORDO_LOCAL_DIR>/bench-java/) and
 * compiles the passthrough once per source, JDK and Kafka version (cached likewise).
 */
export function prepareAnchors(log: (line: string) => void): AnchorSetup {
  const protocol = benchSecurity().kafka.protocol;
  if (protocol !== 'PLAINTEXT') return { state: 'skipped', reason: `the Java anchors connect with PLAINTEXT only; KAFKA_SECURITY_PROTOCOL is ${protocol}` };
  const java = tool('java');
  const javac = tool('javac');
  const javaVersion = versionOf(java, '-version');
  if (javaVersion === undefined) return { state: 'skipped', reason: `no runnable java (JAVA_HOME or PATH; tried ${java})` };
  const javacVersion = versionOf(javac, '-version');
  if (javacVersion === undefined) return { state: 'skipped', reason: `no runnable javac next to java ${javaVersion} (JAVA_HOME or PATH; tried ${javac}); a JDK, not a JRE, is needed` };
  try {
    const dir = path.join(process.env.ORDO_LOCAL_DIR ?? path.join(REPO, '.local'), 'bench-java');
    mkdirSync(dir, { recursive: true });
    const kafkaVersion = process.env.ORDO_KAFKA_VERSION ?? pomKafkaVersion();
    const jars = kafkaClasspath(dir, kafkaVersion, log);
    const classes = compile(dir, javac, javacVersion, kafkaVersion, jars, log);
    return { state: 'ready', anchors: { java, javaVersion, kafkaVersion, classpath: `${jars}${path.delimiter}${classes}` } };
  } catch (error) {
    if (error instanceof AnchorSetupError) return { state: 'failed', reason: error.message };
    throw error;
  }
}

function tool(name: string): string {
  const home = process.env.JAVA_HOME;
  const inHome = home ? path.join(home, 'bin', name) : undefined;
  return inHome && existsSync(inHome) ? inHome : name;
}

/** The first line a JDK tool prints for `-version` (on stderr for java), or undefined if it does not run. */
function versionOf(command: string, flag: string): string | undefined {
  const r = spawnSync(command, [flag], { encoding: 'utf8', timeout: 30_000 });
  if (r.error || r.status !== 0) return undefined;
  return `${r.stderr}${r.stdout}`.split('\n')[0]?.trim();
}

/** The Kafka version the local stack runs: the pom's `kafka.version` (its one home), unless ORDO_KAFKA_VERSION overrides it as for up.sh. */
function pomKafkaVersion(): string {
  const m = /<kafka\.version>([^<]+)<\/kafka\.version>/.exec(readFileSync(POM, 'utf8'));
  if (!m) throw new AnchorSetupError(`no <kafka.version> in ${POM}`);
  return m[1]!;
}

function kafkaClasspath(dir: string, kafkaVersion: string, log: (line: string) => void): string {
  const file = path.join(dir, `classpath-${kafkaVersion}.txt`);
  if (!existsSync(file)) {
    log(`anchors: resolving Kafka ${kafkaVersion} with kafka-tools from Maven (once; cached in ${file})`);
    const r = spawnSync('mvn', ['-q', '-B', '-f', POM, '-P', 'bench-anchors', `-Dkafka.version=${kafkaVersion}`, 'dependency:build-classpath', `-Dmdep.outputFile=${file}.tmp`], {
      encoding: 'utf8',
      timeout: 600_000,
    });
    if (r.error || r.status !== 0) throw new AnchorSetupError(`mvn dependency:build-classpath failed: ${r.error?.message ?? tail(`${r.stdout}${r.stderr}`)}`);
    renameSync(`${file}.tmp`, file);
  }
  const classpath = readFileSync(file, 'utf8').trim();
  if (!classpath.includes(`kafka-tools-${kafkaVersion}.jar`)) throw new AnchorSetupError(`${file} has no kafka-tools-${kafkaVersion}.jar; delete it to resolve again`);
  return classpath;
}

function compile(dir: string, javac: string, javacVersion: string, kafkaVersion: string, jars: string, log: (line: string) => void): string {
  const source = readFileSync(SOURCE);
  const hash = createHash('sha256').update(source).update(javacVersion).update(kafkaVersion).digest('hex').slice(0, 16);
  const classes = path.join(dir, `classes-${hash}`);
  if (existsSync(path.join(classes, `${MAIN_CLASS}.class`))) return classes;
  log(`anchors: compiling ${path.relative(REPO, SOURCE)} with ${javacVersion} into ${classes}`);
  const tmp = `${classes}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  const r = spawnSync(javac, ['-Xlint:all', '-Werror', '-cp', jars, '-d', tmp, SOURCE], { encoding: 'utf8', timeout: 180_000 });
  if (r.error || r.status !== 0) throw new AnchorSetupError(`javac ${path.relative(REPO, SOURCE)} failed: ${r.error?.message ?? tail(`${r.stdout}${r.stderr}`)}`);
  rmSync(classes, { recursive: true, force: true });
  renameSync(tmp, classes);
  return classes;
}

function lastLine(jvm: Jvm | undefined, match: (line: string) => boolean): string | undefined {
  return jvm?.stdout.filter(match).pop();
}

function tail(text: string, lines = 15): string {
  return text.trim().split('\n').slice(-lines).join('\n');
}

/** JVMs still running: killed if the bench exits (e.g. interrupted) before stopping them. */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** A child JVM whose stdout lines and stderr tail are kept; `failure()` reports an exit nobody asked for. */
class Jvm {
  readonly stdout: string[] = [];
  private stderr = '';
  private exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private readonly exited: Promise<void>;
  private stopping = false;
  private readonly child: ChildProcess;

  constructor(
    private readonly what: string,
    anchors: JavaAnchors,
    mainClass: string,
    args: string[],
  ) {
    this.child = spawn(anchors.java, [...JVM_OPTIONS, '-cp', anchors.classpath, mainClass, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    running.add(this.child);
    let partial = '';
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop()!;
      this.stdout.push(...lines.map((l) => l.trim()).filter((l) => l !== ''));
    });
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr = (this.stderr + chunk).slice(-20_000);
    });
    // The stdin pipe breaks if the JVM dies first; its exit is what gets reported.
    this.child.stdin!.on('error', () => undefined);
    this.exited = new Promise((resolve) => {
      this.child.once('error', (error) => {
        this.stderr += `\n${error.message}`;
        running.delete(this.child);
        this.exit ??= { code: null, signal: null };
        resolve();
      });
      this.child.once('exit', (code, signal) => {
        running.delete(this.child);
        if (partial.trim() !== '') this.stdout.push(partial.trim());
        this.exit = { code, signal };
        resolve();
      });
    });
  }

  get done(): boolean {
    return this.exit !== undefined;
  }

  /** Set when the JVM ended with a non-zero status, or ended at all before stop() when `mustRun`. */
  failure(mustRun: boolean): Error | undefined {
    if (!this.exit) return undefined;
    const { code, signal } = this.exit;
    if (code === 0 && (!mustRun || this.stopping)) return undefined;
    return new Error(`${this.what} exited (${signal ?? `status ${String(code)}`})${this.stopping ? '' : ' on its own'}: ${tail(this.stderr) || '(no output)'}`);
  }

  send(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  async waitFor(line: string, ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.stdout.includes(line)) {
      const failed = this.failure(true);
      if (failed) throw failed;
      if (Date.now() > deadline) throw new Error(`${this.what} did not print "${line}" within ${ms} ms: ${tail(this.stderr) || '(no output)'}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** Closes stdin (the passthrough's stop signal), waits `ms`, then kills. */
  async stop(ms: number, closeStdin: boolean): Promise<void> {
    this.stopping = true;
    if (closeStdin) this.child.stdin!.end();
    const ended = await withTimeout(this.exited, ms, `${this.what} exit`).then(
      () => true,
      () => false,
    );
    if (!ended) {
      this.child.kill('SIGKILL');
      await this.exited;
      throw new Error(`${this.what} did not end within ${ms} ms; killed`);
    }
    const failed = this.failure(false);
    if (failed) throw failed;
  }
}

/**
 * `java-eos-passthrough`: bench/java/EosPassthrough.java in its own JVM: a read_committed
 * consumer group and one transactional producer, one transaction per poll with
 * sendOffsetsToTransaction. Same input, partitions and output topic as the baselines;
 * max.poll.records and max.partition.fetch.bytes from the phase's Ordo configuration.
 * Each phase starts a new JVM, so before the phase's clock starts (`prepare`) the JVM
 * passes `warmup` events through a warm-up topic pair of its own; `start` then lets it join
 * the input's group.
 */
export class JavaPassthroughProcessor implements Processor {
  readonly system: SystemName = 'java-eos-passthrough';
  readonly inputTopic: string;
  readonly outputTopic: string;
  readonly groupId: string;
  readonly subjects: string[] = [];
  /** The JVM's warm-up input and output: set-up, not writes of the system under test. */
  readonly auxTopics: string[];
  private jvm: Jvm | undefined;

  constructor(
    private readonly anchors: JavaAnchors,
    private readonly params: BenchParams,
    private readonly config: OrdoConfig,
    prefix: string,
    private readonly warmup: Message[],
  ) {
    this.inputTopic = config.topics.input;
    this.outputTopic = `${prefix}-out`;
    this.groupId = config.groupId;
    this.auxTopics = warmup.length > 0 ? [`${prefix}-jvmwarm-in`, `${prefix}-jvmwarm-out`] : [];
  }

  async prepare(kafka: Kafka): Promise<void> {
    const [warmIn, warmOut] = this.auxTopics;
    if (warmIn && warmOut) {
      await createTopics(kafka, [warmIn, warmOut], this.params.partitions);
      const producer = kafka.producer({ allowAutoTopicCreation: false });
      await withTimeout(producer.connect(), 30_000, 'producer connect');
      try {
        await produceAll(producer, warmIn, this.warmup);
      } finally {
        await producer.disconnect();
      }
    }
    this.jvm = new Jvm('java-eos-passthrough JVM', this.anchors, MAIN_CLASS, [
      this.params.brokers.join(','),
      this.inputTopic,
      this.outputTopic,
      this.groupId,
      `${this.groupId}-tx`,
      String(this.config.maxBatchRecords),
      String(this.config.maxBytesPerPartition),
      ...this.auxTopics,
    ]);
    await this.jvm.waitFor('warm', 120_000);
  }

  start(): Promise<void> {
    if (!this.jvm) return Promise.reject(new Error('java-eos-passthrough: start() before prepare()'));
    this.jvm.send('start');
    return Promise.resolve();
  }

  async stop(): Promise<void> {
    await this.jvm?.stop(30_000, true);
  }

  failure(): Error | undefined {
    return this.jvm?.failure(true);
  }

  details(): Promise<Record<string, unknown>> {
    const last = lastLine(this.jvm, (l) => l.startsWith('{'));
    const counters = last ? (JSON.parse(last) as { records: number; transactions: number }) : undefined;
    return Promise.resolve({
      mode: 'Java kafka-clients: read_committed consumer group + one transactional producer, one transaction per poll (outputs + sendOffsetsToTransaction with groupMetadata)',
      java: this.anchors.javaVersion,
      kafkaClients: this.anchors.kafkaVersion,
      recordsIn: counters?.records ?? null,
      transactions: counters?.transactions ?? null,
      recordsPerTransaction: counters && counters.transactions > 0 ? Math.round((counters.records / counters.transactions) * 10) / 10 : null,
      jvmWarmupEvents: this.warmup.length,
      maxPollRecords: this.config.maxBatchRecords,
      maxPartitionFetchBytes: this.config.maxBytesPerPartition,
    });
  }
}

/** ProducerPerformance's summary: `N records sent, R records/sec (M MB/sec), A ms avg latency, X ms max latency, ...`. */
const PERF_SUMMARY = /^(\d+) records sent, ([\d.]+) records\/sec \(([\d.]+) MB\/sec\), ([\d.]+) ms avg latency, ([\d.]+) ms max latency/;

export interface PerfSummary {
  records: number;
  recordsPerSecond: number;
  mbPerSecond: number;
  avgLatencyMs: number;
  maxLatencyMs: number;
  line: string;
}

/** ProducerPerformance's final summary line, or undefined if `line` is not one. */
export function parsePerfSummary(line: string): PerfSummary | undefined {
  const m = PERF_SUMMARY.exec(line.trim());
  if (!m) return undefined;
  return { records: Number(m[1]), recordsPerSecond: Math.round(Number(m[2])), mbPerSecond: Number(m[3]), avgLatencyMs: Number(m[4]), maxLatencyMs: Number(m[5]), line: line.trim() };
}

/**
 * `kafka-producer-perf`: Kafka's own ProducerPerformance, transactional
 * (`--transactional-id`, `--transaction-duration-ms`), unthrottled, acks=all, writing
 * `records` records of `recordBytes` (the bench events' mean key + value size) to the
 * phase's output topic. It has no input: the bench reads its output like any other.
 */
export class ProducerPerfProcessor implements Processor {
  readonly system: SystemName = 'kafka-producer-perf';
  readonly inputTopic: string;
  readonly outputTopic: string;
  readonly groupId: string;
  readonly subjects: string[] = [];
  private jvm: Jvm | undefined;

  constructor(
    private readonly anchors: JavaAnchors,
    private readonly params: BenchParams,
    config: OrdoConfig,
    outputTopic: string,
    readonly selfDriven: { records: number; recordBytes: number },
  ) {
    this.inputTopic = config.topics.input;
    this.outputTopic = outputTopic;
    this.groupId = config.groupId;
  }

  start(): Promise<void> {
    this.jvm = new Jvm('kafka-producer-perf JVM', this.anchors, PERF_CLASS, [
      '--bootstrap-server', this.params.brokers.join(','),
      '--topic', this.outputTopic,
      '--num-records', String(this.selfDriven.records),
      '--record-size', String(this.selfDriven.recordBytes),
      '--throughput', '-1',
      '--transactional-id', `${this.groupId}-tx`,
      '--transaction-duration-ms', String(this.params.perfTransactionMs),
      '--reporting-interval', '600000',
      '--command-property', 'acks=all', 'client.id=bench-kafka-producer-perf',
    ]);
    return Promise.resolve();
  }

  /** It ends by itself once every record is sent and the last transaction committed. */
  async stop(): Promise<void> {
    await this.jvm?.stop(60_000, false);
  }

  failure(): Error | undefined {
    return this.jvm?.failure(false);
  }

  selfReportedPerSecond(): number | undefined {
    return this.selfReported()?.recordsPerSecond;
  }

  /** Its own figure: records sent / its send time, as the tool prints it. */
  selfReported(): PerfSummary | undefined {
    const line = lastLine(this.jvm, (l) => PERF_SUMMARY.test(l));
    return line === undefined ? undefined : parsePerfSummary(line);
  }

  details(): Promise<Record<string, unknown>> {
    return Promise.resolve({
      mode: `Kafka ${this.anchors.kafkaVersion} ${PERF_CLASS}: transactional (--transaction-duration-ms ${this.params.perfTransactionMs}), unthrottled, acks=all`,
      java: this.anchors.javaVersion,
      records: this.selfDriven.records,
      recordBytes: this.selfDriven.recordBytes,
      selfReported: this.selfReported() ?? null,
      jvmEnded: this.jvm?.done ?? false,
    });
  }
}
