import { hostname } from 'node:os';
import { ConfigError } from '../errors.js';
import { LATE_POLICIES, type LatePolicy } from '../model/reasons.js';
import { type ApiAuthConfig, loadApiAuthConfig, loadBindHost } from './api-auth.js';
import { EnvReader } from './env.js';
import { loadSecurityConfig, type SecurityConfig } from './security.js';

/** Kafka topic names accept letters, digits, '.', '_' and '-', at most 249 characters. */
const TOPIC = /^[A-Za-z0-9._-]{1,249}$/;
const NODE = /^[A-Za-z0-9._:@-]{1,128}$/;
/** Leaves room for `-<store>-changelog` within Kafka's 249-character topic names. */
const GROUP = /^[A-Za-z0-9._-]{1,200}$/;
/** host:port or [ipv6]:port. */
const BROKER = /^(?:\[[0-9A-Fa-f:.]+\]|[^\s,:[\]]+):(\d{1,5})$/;

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface TopicNames {
  input: string;
  ordered: string;
  dlq: string;
  late: string;
  aggregates: string;
  /** Per-partition watermarks the pipeline publishes for the `merge` role (compacted). */
  watermarks: string;
  /** The `merge` role's output: one partition, total order. */
  global: string;
  /** What schema each registry id named when Ordo first used it (compacted; docs/operations.md#schema-registry-ids). */
  schemas: string;
  /** The `deliver` role's receiver sessions (compacted; src/deliver/). */
  sessions: string;
  /** The `deliver` role's live nodes: heartbeats keyed by node id (compacted). */
  nodes: string;
  /** Requests forwarded to the node owning a session, keyed by that node (short retention). */
  forward: string;
  /** Answers to forwarded requests, keyed by the node that forwarded (short retention). */
  replies: string;
  /** Subject deletions (compacted, keyed by the deleted subject or `<subject><separator>*`; src/deletion/). */
  deletions: string;
  /** Dead letters replayed to the input (compacted, keyed by `<dlq partition>/<offset>`): a second replay answers 409. */
  replays: string;
  /** Duplicates the pipeline dropped: at most one record per transaction, for receipts (short retention). */
  duplicates: string;
  /** The `api` role's live replicas: heartbeats with their address and partitions (compacted; src/api/router.ts). */
  apiNodes: string;
}

/**
 * The one typed configuration, parsed from the environment and validated at start.
 * docs/configuration.md lists every variable with its default; keep the two in step.
 */
export interface OrdoConfig {
  brokers: string[];
  clientId: string;
  registryUrl: string;
  groupId: string;
  nodeId: string;
  topics: TopicNames;
  /** Partitions and replication factor used when Ordo creates a missing topic. */
  topicPartitions: number;
  replicationFactor: number;
  createTopics: boolean;
  maxSkewMs: number;
  /** Upper bound of input records handled in one transaction. */
  maxBatchRecords: number;
  maxBytesPerPartition: number;
  sessionTimeoutMs: number;
  heartbeatIntervalMs: number;
  rebalanceTimeoutMs: number;
  transactionTimeoutMs: number;
  shutdownGraceMs: number;
  metricsPort: number;
  logLevel: LogLevel;
  /** Meter definitions (YAML or JSON); undefined: no meters, aggregation off. */
  metersFile: string | undefined;
  /** An event whose (source, id) was seen this recently (stamp time) is a duplicate. */
  dedupeWindowMs: number;
  /** An event whose time is further behind its stamp than this goes to the late topic. */
  allowedLatenessMs: number;
  /** A metered event whose time is further ahead of Ordo's clock than this is dead-lettered. */
  maxFutureMs: number;
  /** Events are held until the partition's watermark passed their order key by this much. */
  reorderWindowMs: number;
  /** At most this many events held per partition; beyond it the oldest leave early. */
  reorderMaxEvents: number;
  /** An event that missed its order slot: `flag` (ordo-late: true, in place) or `route` (late topic). */
  latePolicy: LatePolicy;
  /** An idle partition publishes its watermark at most this often (0: never). */
  watermarkIntervalMs: number;
  /** Port of the `api` role's query API. */
  apiPort: number;
  /** TLS / SASL for Kafka and credentials for the registry (src/config/security.ts). */
  security: SecurityConfig;
  /** Listen addresses of the query API and of the metrics/health server. */
  apiHost: string;
  metricsHost: string;
  /** How the query API authenticates requests (src/config/api-auth.ts). */
  apiAuth: ApiAuthConfig;
  /** A transient failure retried this long without success ends the role; /healthz fails past it (src/engine/liveness.ts). */
  stuckAfterMs: number;
  // --- state (persistent task state, src/engine/state-dir.ts) ---
  /** Where the pipeline keeps its task state (lmdb, one directory per task); undefined: in memory. */
  stateDir: string | undefined;
  // --- read-your-writes (src/api/consistency.ts) ---
  /** How long a usage query with consistentWith waits at most before 503 not-yet-consistent. */
  apiConsistencyWaitMs: number;
  // --- ingest (the `ingest` role, src/roles/ingest.ts) ---
  ingest: IngestConfig;
  // --- deliver (the `deliver` role, src/roles/deliver.ts) ---
  deliver: DeliverConfig;
  // --- accountability (issue 14: receipts, trails, deletions) ---
  receipts: ReceiptsConfig;
  trails: TrailsConfig;
  deletion: DeletionConfig;
  /** Corrections (void/amend of past events): the pipeline keeps what it needs to undo an accepted event within the allowed lateness. */
  corrections: { enabled: boolean };
  // --- the partitioned read side (issue 15: src/api/partitioned-read-side.ts) ---
  apiReads: ApiReadsConfig;
}

/** The api replicas' shares of the aggregates topic: local stores, membership, fan-out. */
export interface ApiReadsConfig {
  /** Where the replica's store of its partitions lives (lmdb); undefined: `<ORDO_STATE_DIR>/api-<node>`, or a fresh temporary directory without a state dir. */
  storeDir: string | undefined;
  /** How the other replicas reach this one (written in its heartbeats). */
  advertisedUrl: string;
  /** How often a replica writes its heartbeat to the api nodes topic. */
  nodeHeartbeatMs: number;
  /** A replica without a heartbeat for this long is not routed to. */
  nodeTtlMs: number;
  /** A peer that does not answer its share of a query within this is missing (its partitions answer partial). */
  fanoutTimeoutMs: number;
  /** The shared read group's session timeout: how long a killed replica's partitions wait before they move. */
  sessionTimeoutMs: number;
}

/** The api role's index of what happened to each event (src/receipts/). */
export interface ReceiptsConfig {
  /** Where the index lives (lmdb); undefined: `<ORDO_STATE_DIR>/receipts-<node>`, or a fresh temporary directory without a state dir. */
  dir: string | undefined;
  /** Receipts older than this (by record timestamp) leave the index; at least the dedupe window. */
  retentionMs: number;
}

/** Where an event's correlation (task) id comes from. */
export type TrailKey = { kind: 'traceparent' } | { kind: 'header'; name: string } | { kind: 'dimension'; name: string };

/** Trails: the events of one task (correlation id) across services. */
export interface TrailsConfig {
  key: TrailKey;
  /** Event types that complete a trail. */
  terminalTypes: string[];
  /** A trail not completed with no event for this long is stalled. */
  stallMs: number;
}

export const DELETED_SUBJECT_POLICIES = ['dead-letter', 'new-epoch'] as const;
export type DeletedSubjectPolicy = (typeof DELETED_SUBJECT_POLICIES)[number];

/** Subject deletion: one write to the deletions topic, a lazy sweep of the state. */
export interface DeletionConfig {
  /** Separates a subject from its children (`acme/team-1` is a child of `acme`). */
  separator: string;
  /** An event for a deleted subject after its deletion: dead-lettered (`subject-deleted`), or the start of a new epoch. */
  policy: DeletedSubjectPolicy;
  /** State entries a task removes per transaction while sweeping a deletion. */
  sweepBatch: number;
}

/** The delivery of the ordered and global streams over HTTP: SSE streams, receiver sessions, routing between replicas. */
export interface DeliverConfig {
  port: number;
  host: string;
  /** SSE streams open at once on one replica; beyond it 503. */
  maxStreams: number;
  /** A heartbeat comment is sent on an idle SSE stream this often. */
  heartbeatMs: number;
  /** Bytes queued for one SSE client that does not read; beyond it an `overflow` event and the connection is closed. */
  bufferBytes: number;
  /** Recent records kept in memory per partition of each stream (served to streams and sessions at the tail without a Kafka read of their own). */
  tailRecords: number;
  /** Readers of older records (each a Kafka consumer of its own) at once on one replica; beyond it 503. */
  maxCatchUps: number;
  /** A receiver session with no request for this long expires (404 unknown, 410 once known expired). */
  sessionTtlMs: number;
  /** A node without a heartbeat for this long is gone: another replica takes its sessions over. */
  nodeTtlMs: number;
  /** How often a node writes its heartbeat. */
  nodeHeartbeatMs: number;
  /** A forwarded request not answered within this (plus its waitMs) answers 504. */
  forwardTimeoutMs: number;
  /** Largest `max` of one session read. */
  maxRecords: number;
  /** Largest `waitMs` of one session read (long poll). */
  maxWaitMs: number;
}

/** The HTTP ingest: where it listens and what one request may carry. */
export interface IngestConfig {
  port: number;
  host: string;
  /** Events in one request (a batch); beyond it 413. */
  maxEvents: number;
  /** Bytes of one request body; beyond it 413. */
  maxBytes: number;
  /** A request not received in full within this is answered 408 (slow bodies hold no connection open). */
  requestTimeoutMs: number;
  /** Transactional producers: requests written at the same time (one transaction each). */
  producers: number;
  /** Connector descriptors (`<name>.yaml`) served at POST /v1/connectors/<name>; undefined: none. */
  connectorsDir: string | undefined;
}

export function loadConfig(env: Record<string, string | undefined> = process.env): OrdoConfig {
  const read = new EnvReader(env);
  const brokers = read.list('KAFKA_BROKERS', ['127.0.0.1:9092']);
  for (const broker of brokers) {
    const port = Number(BROKER.exec(broker)?.[1] ?? NaN);
    if (!(port >= 1 && port <= 65_535)) throw new ConfigError('KAFKA_BROKERS', `"${broker}" is not host:port with a port in 1-65535`);
  }
  const registryUrl = read.string('SCHEMA_REGISTRY_URL', 'http://127.0.0.1:8081/apis/ccompat/v7');
  try {
    const url = new URL(registryUrl);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('protocol');
  } catch {
    throw new ConfigError('SCHEMA_REGISTRY_URL', `"${registryUrl}" is not an http(s) URL`);
  }
  const topics: TopicNames = {
    input: read.string('ORDO_INPUT_TOPIC', 'usage-events', TOPIC, 'a valid Kafka topic name'),
    ordered: read.string('ORDO_ORDERED_TOPIC', 'usage-events-ordered', TOPIC, 'a valid Kafka topic name'),
    dlq: read.string('ORDO_DLQ_TOPIC', 'usage-events-dlq', TOPIC, 'a valid Kafka topic name'),
    late: read.string('ORDO_LATE_TOPIC', 'usage-events-late', TOPIC, 'a valid Kafka topic name'),
    aggregates: read.string('ORDO_AGGREGATES_TOPIC', 'usage-aggregates', TOPIC, 'a valid Kafka topic name'),
    watermarks: read.string('ORDO_WATERMARKS_TOPIC', 'usage-events-watermarks', TOPIC, 'a valid Kafka topic name'),
    global: read.string('ORDO_GLOBAL_TOPIC', 'usage-events-global', TOPIC, 'a valid Kafka topic name'),
    schemas: read.string('ORDO_SCHEMAS_TOPIC', 'ordo-schemas', TOPIC, 'a valid Kafka topic name'),
    sessions: read.string('ORDO_SESSIONS_TOPIC', 'ordo-deliver-sessions', TOPIC, 'a valid Kafka topic name'),
    nodes: read.string('ORDO_NODES_TOPIC', 'ordo-deliver-nodes', TOPIC, 'a valid Kafka topic name'),
    forward: read.string('ORDO_FORWARD_TOPIC', 'ordo-deliver-forward', TOPIC, 'a valid Kafka topic name'),
    replies: read.string('ORDO_REPLIES_TOPIC', 'ordo-deliver-replies', TOPIC, 'a valid Kafka topic name'),
    deletions: read.string('ORDO_DELETIONS_TOPIC', 'ordo-deletions', TOPIC, 'a valid Kafka topic name'),
    replays: read.string('ORDO_REPLAYS_TOPIC', 'ordo-dlq-replays', TOPIC, 'a valid Kafka topic name'),
    duplicates: read.string('ORDO_DUPLICATES_TOPIC', 'usage-events-duplicates', TOPIC, 'a valid Kafka topic name'),
    apiNodes: read.string('ORDO_API_NODES_TOPIC', 'ordo-api-nodes', TOPIC, 'a valid Kafka topic name'),
  };
  const config: OrdoConfig = {
    brokers,
    registryUrl,
    clientId: read.string('ORDO_CLIENT_ID', 'ordo', NODE, 'a client id of [A-Za-z0-9._:@-]'),
    groupId: read.string('ORDO_GROUP_ID', 'ordo-pipeline', GROUP, 'a group id of [A-Za-z0-9._-], at most 200 chars (it prefixes changelog topic names)'),
    nodeId: read.string('ORDO_NODE_ID', hostname().slice(0, 128) || 'ordo', NODE, 'a node id of [A-Za-z0-9._:@-], 1-128 chars'),
    topics,
    topicPartitions: read.int('ORDO_TOPIC_PARTITIONS', 6, 1, 10_000),
    replicationFactor: read.int('ORDO_REPLICATION_FACTOR', 1, 1, 16),
    createTopics: read.bool('ORDO_CREATE_TOPICS', true),
    maxSkewMs: read.int('ORDO_MAX_SKEW_MS', 500, 0, 24 * 3600 * 1000),
    maxBatchRecords: read.int('ORDO_MAX_BATCH_RECORDS', 2000, 1, 1_000_000),
    maxBytesPerPartition: read.int('ORDO_MAX_BYTES_PER_PARTITION', 1_048_576, 1024, 100 * 1_048_576),
    sessionTimeoutMs: read.int('ORDO_SESSION_TIMEOUT_MS', 30_000, 6_000, 300_000),
    heartbeatIntervalMs: read.int('ORDO_HEARTBEAT_INTERVAL_MS', 3_000, 100, 100_000),
    rebalanceTimeoutMs: read.int('ORDO_REBALANCE_TIMEOUT_MS', 60_000, 1_000, 600_000),
    transactionTimeoutMs: read.int('ORDO_TRANSACTION_TIMEOUT_MS', 60_000, 1_000, 900_000),
    shutdownGraceMs: read.int('ORDO_SHUTDOWN_GRACE_MS', 30_000, 0, 600_000),
    metricsPort: read.int('ORDO_METRICS_PORT', 9464, 0, 65_535),
    logLevel: read.oneOf('ORDO_LOG_LEVEL', 'info', LOG_LEVELS),
    metersFile: read.string('ORDO_METERS_FILE', '') || undefined,
    dedupeWindowMs: read.int('ORDO_DEDUPE_WINDOW_MS', 24 * HOUR_MS, 0, 366 * DAY_MS),
    allowedLatenessMs: read.int('ORDO_ALLOWED_LATENESS_MS', 35 * DAY_MS, 0, 3660 * DAY_MS),
    maxFutureMs: read.int('ORDO_MAX_FUTURE_MS', 300_000, 0, 366 * DAY_MS),
    apiPort: read.int('ORDO_API_PORT', 8080, 0, 65_535),
    reorderWindowMs: read.int('ORDO_REORDER_WINDOW_MS', 1_000, 0, HOUR_MS),
    reorderMaxEvents: read.int('ORDO_REORDER_MAX_EVENTS', 10_000, 1, 10_000_000),
    latePolicy: read.oneOf('ORDO_LATE_POLICY', 'flag', LATE_POLICIES),
    watermarkIntervalMs: read.int('ORDO_WATERMARK_INTERVAL_MS', 1_000, 0, HOUR_MS),
    security: loadSecurityConfig(read, registryUrl),
    apiHost: loadBindHost(read, 'ORDO_API_HOST'),
    metricsHost: loadBindHost(read, 'ORDO_METRICS_HOST'),
    apiAuth: loadApiAuthConfig(read),
    stuckAfterMs: read.int('ORDO_STUCK_AFTER_MS', 120_000, 5_000, 24 * HOUR_MS),
    // --- state ---
    stateDir: read.string('ORDO_STATE_DIR', '') || undefined,
    // --- read-your-writes ---
    apiConsistencyWaitMs: read.int('ORDO_API_CONSISTENCY_WAIT_MS', 10_000, 100, 300_000),
    // --- ingest ---
    ingest: {
      port: read.int('ORDO_INGEST_PORT', 8090, 0, 65_535),
      host: loadBindHost(read, 'ORDO_INGEST_HOST'),
      maxEvents: read.int('ORDO_INGEST_MAX_EVENTS', 1_000, 1, 10_000),
      maxBytes: read.int('ORDO_INGEST_MAX_BYTES', 1_048_576, 1_024, 16 * 1_048_576),
      requestTimeoutMs: read.int('ORDO_INGEST_REQUEST_TIMEOUT_MS', 10_000, 1_000, 300_000),
      producers: read.int('ORDO_INGEST_PRODUCERS', 4, 1, 64),
      connectorsDir: read.string('ORDO_CONNECTORS_DIR', '') || undefined,
    },
    // --- deliver ---
    deliver: {
      port: read.int('ORDO_DELIVER_PORT', 8092, 0, 65_535),
      host: loadBindHost(read, 'ORDO_DELIVER_HOST'),
      maxStreams: read.int('ORDO_DELIVER_MAX_STREAMS', 2_000, 1, 100_000),
      heartbeatMs: read.int('ORDO_DELIVER_HEARTBEAT_MS', 15_000, 100, 300_000),
      bufferBytes: read.int('ORDO_DELIVER_BUFFER_BYTES', 1_048_576, 1_024, 64 * 1_048_576),
      tailRecords: read.int('ORDO_DELIVER_TAIL_RECORDS', 10_000, 0, 1_000_000),
      maxCatchUps: read.int('ORDO_DELIVER_MAX_CATCH_UPS', 16, 1, 1_000),
      sessionTtlMs: read.int('ORDO_DELIVER_SESSION_TTL_MS', 300_000, 1_000, 30 * DAY_MS),
      nodeTtlMs: read.int('ORDO_DELIVER_NODE_TTL_MS', 10_000, 1_000, HOUR_MS),
      nodeHeartbeatMs: read.int('ORDO_DELIVER_NODE_HEARTBEAT_MS', 2_000, 100, HOUR_MS),
      forwardTimeoutMs: read.int('ORDO_DELIVER_FORWARD_TIMEOUT_MS', 5_000, 100, 300_000),
      maxRecords: read.int('ORDO_DELIVER_MAX_RECORDS', 1_000, 1, 100_000),
      maxWaitMs: read.int('ORDO_DELIVER_MAX_WAIT_MS', 30_000, 0, 300_000),
    },
    // --- accountability ---
    receipts: {
      dir: read.string('ORDO_RECEIPTS_DIR', '') || undefined,
      retentionMs: read.int('ORDO_RECEIPTS_RETENTION_MS', 7 * DAY_MS, 60_000, 3660 * DAY_MS),
    },
    trails: {
      key: parseTrailKey(read.string('ORDO_TRAIL_KEY', 'traceparent')),
      terminalTypes: read.list('ORDO_TRAIL_TERMINAL_TYPES', []),
      stallMs: read.int('ORDO_TRAIL_STALL_MS', 300_000, 1_000, 30 * DAY_MS),
    },
    deletion: {
      separator: read.string('ORDO_DELETION_SEPARATOR', '/', /^[^\s*]{1,8}$/, '1-8 characters, no whitespace or *'),
      policy: read.oneOf('ORDO_DELETED_SUBJECT_POLICY', 'dead-letter', DELETED_SUBJECT_POLICIES),
      sweepBatch: read.int('ORDO_DELETION_SWEEP_BATCH', 1_000, 1, 100_000),
    },
    corrections: { enabled: read.bool('ORDO_CORRECTIONS', true) },
    apiReads: {
      storeDir: read.string('ORDO_API_STORE_DIR', '') || undefined,
      advertisedUrl: '',
      nodeHeartbeatMs: read.int('ORDO_API_NODE_HEARTBEAT_MS', 2_000, 100, HOUR_MS),
      nodeTtlMs: read.int('ORDO_API_NODE_TTL_MS', 10_000, 1_000, HOUR_MS),
      fanoutTimeoutMs: read.int('ORDO_API_FANOUT_TIMEOUT_MS', 5_000, 100, 300_000),
      sessionTimeoutMs: read.int('ORDO_API_SESSION_TIMEOUT_MS', 10_000, 6_000, 300_000),
    },
  };
  config.apiReads.advertisedUrl = loadAdvertisedUrl(read, config);
  checkCrossFieldRules(config);
  return config;
}

/** ORDO_API_ADVERTISED_URL, by default http://<ORDO_API_HOST, or the host name for a wildcard>:<ORDO_API_PORT>. */
function loadAdvertisedUrl(read: EnvReader, config: Pick<OrdoConfig, 'apiHost' | 'apiPort'>): string {
  const wildcard = config.apiHost === '0.0.0.0' || config.apiHost === '::';
  const host = wildcard ? hostname() || '127.0.0.1' : config.apiHost.includes(':') ? `[${config.apiHost}]` : config.apiHost;
  const url = read.string('ORDO_API_ADVERTISED_URL', `http://${host}:${config.apiPort}`);
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error('protocol');
  } catch {
    throw new ConfigError('ORDO_API_ADVERTISED_URL', `"${url}" is not an http(s) URL`);
  }
  return url.replace(/\/+$/, '');
}

const TRAIL_KEY = /^(?:traceparent|header:[A-Za-z0-9._-]{1,128}|dimension:[A-Za-z0-9._-]{1,128})$/;

function parseTrailKey(text: string): TrailKey {
  if (!TRAIL_KEY.test(text)) throw new ConfigError('ORDO_TRAIL_KEY', `"${text}" is not traceparent, header:<name> or dimension:<name>`);
  if (text === 'traceparent') return { kind: 'traceparent' };
  const [kind, name] = [text.slice(0, text.indexOf(':')), text.slice(text.indexOf(':') + 1)];
  return kind === 'header' ? { kind: 'header', name: name.toLowerCase() } : { kind: 'dimension', name };
}

function checkCrossFieldRules(config: OrdoConfig): void {
  if (config.receipts.retentionMs < config.dedupeWindowMs) {
    throw new ConfigError('ORDO_RECEIPTS_RETENTION_MS', `${config.receipts.retentionMs} ms must be at least ORDO_DEDUPE_WINDOW_MS (${config.dedupeWindowMs} ms): a duplicate must find its accepted copy`);
  }
  if (config.deliver.nodeHeartbeatMs * 2 > config.deliver.nodeTtlMs) {
    throw new ConfigError('ORDO_DELIVER_NODE_HEARTBEAT_MS', `${config.deliver.nodeHeartbeatMs} ms must be at most half of ORDO_DELIVER_NODE_TTL_MS (${config.deliver.nodeTtlMs} ms), or a live node would look gone`);
  }
  if (config.apiReads.nodeHeartbeatMs * 2 > config.apiReads.nodeTtlMs) {
    throw new ConfigError('ORDO_API_NODE_HEARTBEAT_MS', `${config.apiReads.nodeHeartbeatMs} ms must be at most half of ORDO_API_NODE_TTL_MS (${config.apiReads.nodeTtlMs} ms), or a live replica would look gone`);
  }
  if (config.heartbeatIntervalMs * 3 > config.sessionTimeoutMs) {
    throw new ConfigError(
      'ORDO_HEARTBEAT_INTERVAL_MS',
      `${config.heartbeatIntervalMs} ms must be at most a third of ORDO_SESSION_TIMEOUT_MS (${config.sessionTimeoutMs} ms)`,
    );
  }
  const names = Object.entries(config.topics);
  for (const [i, [keyA, a]] of names.entries()) {
    for (const [keyB, b] of names.slice(i + 1)) {
      if (a === b) throw new ConfigError(envNameOfTopic(keyB), `topic "${b}" is also used as the ${keyA} topic`);
    }
  }
}

function envNameOfTopic(key: string): string {
  return `ORDO_${key.toUpperCase()}_TOPIC`;
}
