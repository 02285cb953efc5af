import { parseArgs } from 'node:util';
import { loadConfig } from '../config/config.js';
import { ConfigError, OrdoError } from '../errors.js';
import { setHeader } from '../model/records.js';
import { jsonLogger } from '../observability/logger.js';
import { CommandError, isParseArgsError } from './command-error.js';
import { readStdin } from './stdin.js';
import { parseEventLines, parseEventObject } from './event-input.js';
import { produceEvents } from './events-produce.js';
import { tailTopic } from './events-tail.js';
import { formatHuman, formatJson } from './record-view.js';
import { createPlannedTopics, formatPlan, topicPlan } from './topics.js';

/** Commands besides the roles; `ordo <command> --help` prints their usage. */
export const COMMANDS = ['events', 'topics'] as const;

const EVENTS_USAGE = `usage:
  ordo events produce [--topic T] [--json] < events.jsonl
  ordo events produce --type T --subject S --value V [--id ID] [--source SRC] [--time T]
                      [--dimension k=v]... [--service-time HEX] [--service-node N]
                      [--traceparent TP] [--producer-seq N] [--producer-id P] [--topic T] [--json]
  ordo events tail <topic> [--from earliest|latest|<offset>] [--follow] [--max N]
                   [--partition P] [--json]

produce  writes UsageEvents (Avro, Confluent wire format, schema registered under
         <topic>-value) keyed by subject, all in one transaction, to ORDO_INPUT_TOPIC
         unless --topic; prints each event's partition and offset. Input: one JSON
         object per line on stdin, e.g.
           {"type":"api.request","subject":"acme","value":"1","dimensions":{"region":"eu"},
            "headers":{"service-time":"0192f3a4b5c60000"}}
         (id defaults to a UUID, source to "ordo-cli", time to now; time is RFC 3339 or
         epoch ms). A bad line or flag is named and nothing is written (exit 65).
tail     prints a topic's records decoded (events, aggregates; DLQ and late records with
         their reason headers), read_committed; by default from the earliest offset to the
         end, --follow to keep reading (Ctrl-C ends it). --json: one JSON object per line.

Configuration: KAFKA_BROKERS, SCHEMA_REGISTRY_URL, ORDO_INPUT_TOPIC (docs/configuration.md).`;

const TOPICS_USAGE = `usage: ordo topics [--print | --create] [--json]

--print (the default; no broker needed) lists every topic the pipeline, merge and api roles
need with the current configuration (names, partitions, replication factor, cleanup
policy), from the code the roles create them with. --create creates the missing ones (the
input topic's partition count when it exists, else ORDO_TOPIC_PARTITIONS) and checks the
existing ones as the roles do at start. --json: one object per topic.`;

export async function runCommand(command: (typeof COMMANDS)[number], argv: string[], env: Record<string, string | undefined>): Promise<number> {
  const code = await run(command, argv, env);
  // The CLI exits right after: what is still buffered for a pipe would be lost.
  await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
  return code;
}

async function run(command: (typeof COMMANDS)[number], argv: string[], env: Record<string, string | undefined>): Promise<number> {
  const usage = command === 'events' ? EVENTS_USAGE : TOPICS_USAGE;
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(usage + '\n');
    return 0;
  }
  try {
    const config = loadConfig(env);
    const logger = jsonLogger(config.logLevel === 'info' ? 'warn' : config.logLevel).child({ command });
    if (command === 'topics') return await topics(argv, config, logger);
    const [sub, ...rest] = argv;
    if (sub === 'produce') return await produce(rest, config, logger);
    if (sub === 'tail') return await tail(rest, config, logger);
    process.stderr.write(`ordo events: unknown subcommand ${sub === undefined ? '(none)' : `"${sub}"`}\n\n${usage}\n`);
    return 2;
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`ordo: invalid configuration: ${error.message}\n`);
      return 78;
    }
    if (error instanceof CommandError) {
      process.stderr.write(`ordo ${command}: ${error.message}\n`);
      return 65;
    }
    if (isParseArgsError(error)) {
      process.stderr.write(`ordo ${command}: ${(error as Error).message}\n\n${usage}\n`);
      return 2;
    }
    if (error instanceof OrdoError || error instanceof Error) {
      process.stderr.write(`ordo ${command}: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}

type Config = ReturnType<typeof loadConfig>;
type Log = ReturnType<typeof jsonLogger>;

async function produce(argv: string[], config: Config, logger: Log): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      topic: { type: 'string' },
      json: { type: 'boolean' },
      type: { type: 'string' },
      subject: { type: 'string' },
      value: { type: 'string' },
      id: { type: 'string' },
      source: { type: 'string' },
      time: { type: 'string' },
      dimension: { type: 'string', multiple: true },
      'service-time': { type: 'string' },
      'service-node': { type: 'string' },
      traceparent: { type: 'string' },
      'producer-seq': { type: 'string' },
      'producer-id': { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  });
  const fromFlags = values.type !== undefined || values.subject !== undefined || values.value !== undefined;
  let events;
  if (fromFlags) {
    const dimensions: Record<string, string> = {};
    for (const pair of values.dimension ?? []) {
      const eq = pair.indexOf('=');
      if (eq <= 0) throw new CommandError(`--dimension: "${pair}" is not name=value`);
      setHeader(dimensions, pair.slice(0, eq), pair.slice(eq + 1));
    }
    const headers: Record<string, string> = {};
    for (const name of ['service-time', 'service-node', 'traceparent', 'producer-seq', 'producer-id'] as const) {
      if (values[name] !== undefined) headers[name] = values[name];
    }
    const time = values.time === undefined ? undefined : /^\d+$/.test(values.time) ? Number(values.time) : values.time;
    const object = { type: values.type, subject: values.subject, value: values.value, id: values.id, source: values.source, time, dimensions, headers };
    events = [parseEventObject(JSON.parse(JSON.stringify(object)) as unknown, 'flags')];
  } else {
    if (process.stdin.isTTY) process.stderr.write('ordo events produce: reading JSON lines from stdin (Ctrl-D ends)\n');
    events = parseEventLines(await readStdin());
    if (events.length === 0) throw new CommandError('no events on stdin');
  }
  const produced = await produceEvents(config, values.topic ?? config.topics.input, events, logger);
  for (const p of produced) {
    process.stdout.write(values.json ? JSON.stringify(p) + '\n' : `${p.topic} partition ${p.partition} offset ${p.offset} key ${p.key} id ${p.id}\n`);
  }
  return 0;
}

async function tail(argv: string[], config: Config, logger: Log): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      from: { type: 'string', default: 'earliest' },
      follow: { type: 'boolean', short: 'f' },
      max: { type: 'string' },
      partition: { type: 'string' },
      json: { type: 'boolean' },
    },
    strict: true,
    allowPositionals: true,
  });
  if (positionals.length !== 1) throw new CommandError('tail takes exactly one topic');
  const from = values.from === 'earliest' || values.from === 'latest' ? values.from : /^\d{1,19}$/.test(values.from) ? BigInt(values.from) : undefined;
  if (from === undefined) throw new CommandError(`--from: "${values.from}" is not earliest, latest or an offset`);
  const max = count('--max', values.max, 1);
  const partition = count('--partition', values.partition, 0);
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await tailTopic(
      config,
      {
        topic: positionals[0]!,
        from,
        follow: values.follow ?? false,
        max,
        partition,
        signal: controller.signal,
        write: (view) => process.stdout.write((values.json ? formatJson(view) : formatHuman(view)) + '\n'),
        onStart: () => {
          if (values.follow) process.stderr.write(`ordo events: following ${positionals[0]!} (Ctrl-C ends)\n`);
        },
      },
      logger,
    );
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
  return 0;
}

async function topics(argv: string[], config: Config, logger: Log): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { create: { type: 'boolean' }, json: { type: 'boolean' }, print: { type: 'boolean' } }, strict: true });
  if (values.create && values.print) throw new CommandError('--print and --create exclude each other');
  let plan;
  if (values.create) {
    const result = await createPlannedTopics(config, logger);
    plan = result.plan;
    process.stderr.write(`ordo topics: created ${result.created.length === 0 ? 'none (all exist)' : result.created.join(', ')}\n`);
  } else {
    plan = topicPlan(config, config.topicPartitions);
  }
  if (values.json) {
    for (const t of plan) process.stdout.write(JSON.stringify({ topic: t.topic, partitions: t.partitions, replicationFactor: config.replicationFactor, cleanupPolicy: t.compacted ? 'compact' : 'delete', roles: t.roles }) + '\n');
  } else {
    process.stdout.write(formatPlan(plan, config.replicationFactor) + '\n');
  }
  return 0;
}

function count(flag: string, text: string | undefined, min: number): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d{1,9}$/.test(text) || Number(text) < min) throw new CommandError(`${flag}: "${text}" is not an integer >= ${min}`);
  return Number(text);
}
