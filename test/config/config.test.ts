import { hostname } from 'node:os';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LOG_LEVELS, loadConfig, type OrdoConfig } from '../../src/config/config.js';
import { EnvReader } from '../../src/config/env.js';
import { ConfigError, OrdoError } from '../../src/errors.js';
import { catchError } from '../support/unit/fixtures.js';

function expectConfigError(env: Record<string, string | undefined>, variable: string): ConfigError {
  const error = catchError(() => loadConfig(env));
  expect(error).toBeInstanceOf(ConfigError);
  expect(error).toBeInstanceOf(OrdoError);
  const configError = error as ConfigError;
  expect(configError.variable).toBe(variable);
  expect(configError.message.startsWith(`${variable}: `)).toBe(true);
  expect(configError.code).toBe('ORDO_CONFIG');
  expect(configError.retriable).toBe(false);
  return configError;
}

describe('loadConfig defaults', () => {
  it('gives every field its documented default on an empty environment', () => {
    const config = loadConfig({});
    const { nodeId, ...rest } = config;
    expect(rest).toEqual({
      brokers: ['127.0.0.1:9092'],
      clientId: 'ordo',
      registryUrl: 'http://127.0.0.1:8081/apis/ccompat/v7',
      groupId: 'ordo-pipeline',
      topics: { input: 'usage-events', ordered: 'usage-events-ordered', dlq: 'usage-events-dlq', late: 'usage-events-late', aggregates: 'usage-aggregates', watermarks: 'usage-events-watermarks', global: 'usage-events-global', schemas: 'ordo-schemas', sessions: 'ordo-deliver-sessions', nodes: 'ordo-deliver-nodes', forward: 'ordo-deliver-forward', replies: 'ordo-deliver-replies', deletions: 'ordo-deletions', replays: 'ordo-dlq-replays', duplicates: 'usage-events-duplicates', apiNodes: 'ordo-api-nodes' },
      topicPartitions: 6,
      replicationFactor: 1,
      createTopics: true,
      maxSkewMs: 500,
      maxBatchRecords: 2000,
      maxBytesPerPartition: 1_048_576,
      sessionTimeoutMs: 30_000,
      heartbeatIntervalMs: 3_000,
      rebalanceTimeoutMs: 60_000,
      transactionTimeoutMs: 60_000,
      shutdownGraceMs: 30_000,
      metricsPort: 9464,
      logLevel: 'info',
      metersFile: undefined,
      dedupeWindowMs: 86_400_000,
      allowedLatenessMs: 35 * 86_400_000,
      maxFutureMs: 300_000,
      reorderWindowMs: 1_000,
      reorderMaxEvents: 10_000,
      latePolicy: 'flag',
      watermarkIntervalMs: 1_000,
      apiPort: 8080,
      security: { kafka: { protocol: 'PLAINTEXT' }, registry: {} },
      apiHost: '0.0.0.0',
      metricsHost: '0.0.0.0',
      apiAuth: { mode: 'none' },
      stuckAfterMs: 120_000,
      stateDir: undefined,
      apiConsistencyWaitMs: 10_000,
      ingest: { port: 8090, host: '0.0.0.0', maxEvents: 1_000, maxBytes: 1_048_576, requestTimeoutMs: 10_000, producers: 4, connectorsDir: undefined },
      deliver: {
        port: 8092,
        host: '0.0.0.0',
        maxStreams: 2_000,
        heartbeatMs: 15_000,
        bufferBytes: 1_048_576,
        tailRecords: 10_000,
        maxCatchUps: 16,
        sessionTtlMs: 300_000,
        nodeTtlMs: 10_000,
        nodeHeartbeatMs: 2_000,
        forwardTimeoutMs: 5_000,
        maxRecords: 1_000,
        maxWaitMs: 30_000,
      },
      receipts: { dir: undefined, retentionMs: 604_800_000 },
      trails: { key: { kind: 'traceparent' }, terminalTypes: [], stallMs: 300_000 },
      deletion: { separator: '/', policy: 'dead-letter', sweepBatch: 1_000 },
      corrections: { enabled: true },
      apiReads: { storeDir: undefined, advertisedUrl: `http://${hostname() || '127.0.0.1'}:8080`, nodeHeartbeatMs: 2_000, nodeTtlMs: 10_000, fanoutTimeoutMs: 5_000, sessionTimeoutMs: 10_000 },
    } satisfies Omit<OrdoConfig, 'nodeId'>);
    // The node id defaults to the host name (a pod name on Kubernetes).
    expect(nodeId).toBe(hostname().slice(0, 128) || 'ordo');
  });

  it('treats empty and blank variables as unset', () => {
    const config = loadConfig({ KAFKA_BROKERS: '', ORDO_MAX_SKEW_MS: '   ', ORDO_LOG_LEVEL: '', ORDO_CREATE_TOPICS: ' ' });
    expect(config.brokers).toEqual(['127.0.0.1:9092']);
    expect(config.maxSkewMs).toBe(500);
    expect(config.logLevel).toBe('info');
    expect(config.createTopics).toBe(true);
  });
});

describe('loadConfig parses every variable', () => {
  it('reads each variable into its field', () => {
    const config = loadConfig({
      KAFKA_BROKERS: 'kafka-0.kafka:9092, kafka-1.kafka:9093 ,10.0.0.7:19092',
      SCHEMA_REGISTRY_URL: 'https://registry.internal:8443/apis/ccompat/v7',
      ORDO_INPUT_TOPIC: 'in.events',
      ORDO_ORDERED_TOPIC: 'out_ordered',
      ORDO_DLQ_TOPIC: 'dead-letters',
      ORDO_LATE_TOPIC: 'late.v2',
      ORDO_AGGREGATES_TOPIC: 'aggregates.v1',
      ORDO_CLIENT_ID: 'ordo-client:1@a',
      ORDO_GROUP_ID: 'billing.pipeline',
      ORDO_NODE_ID: 'ordo-pipeline-7f9c:0',
      ORDO_TOPIC_PARTITIONS: '12',
      ORDO_REPLICATION_FACTOR: '3',
      ORDO_CREATE_TOPICS: 'false',
      ORDO_MAX_SKEW_MS: '250',
      ORDO_MAX_BATCH_RECORDS: '500',
      ORDO_MAX_BYTES_PER_PARTITION: '2048',
      ORDO_SESSION_TIMEOUT_MS: '45000',
      ORDO_HEARTBEAT_INTERVAL_MS: '15000',
      ORDO_REBALANCE_TIMEOUT_MS: '90000',
      ORDO_TRANSACTION_TIMEOUT_MS: '120000',
      ORDO_SHUTDOWN_GRACE_MS: '0',
      ORDO_METRICS_PORT: '0',
      ORDO_LOG_LEVEL: 'debug',
      ORDO_METERS_FILE: '/etc/ordo/meters.yaml',
      ORDO_DEDUPE_WINDOW_MS: '3600000',
      ORDO_ALLOWED_LATENESS_MS: '0',
      ORDO_MAX_FUTURE_MS: '60000',
      ORDO_API_PORT: '18080',
      ORDO_WATERMARKS_TOPIC: 'wm.v1',
      ORDO_GLOBAL_TOPIC: 'global.v1',
      ORDO_SESSIONS_TOPIC: 'sessions.v1',
      ORDO_NODES_TOPIC: 'nodes.v1',
      ORDO_FORWARD_TOPIC: 'forward.v1',
      ORDO_REPLIES_TOPIC: 'replies.v1',
      ORDO_SCHEMAS_TOPIC: 'schema-ids.v1',
      ORDO_WATERMARK_INTERVAL_MS: '2000',
      ORDO_STATE_DIR: '/var/lib/ordo/state',
      ORDO_API_CONSISTENCY_WAIT_MS: '2500',
      ORDO_STUCK_AFTER_MS: '60000',
      ORDO_REORDER_WINDOW_MS: '250',
      ORDO_REORDER_MAX_EVENTS: '500',
      ORDO_LATE_POLICY: 'route',
      ORDO_API_HOST: '::1',
      ORDO_METRICS_HOST: 'pod-0.ordo.svc',
      ORDO_API_AUTH: 'token',
      ORDO_API_TOKENS_FILE: '/etc/ordo/tokens/tokens.yaml',
      ORDO_INGEST_PORT: '18090',
      ORDO_INGEST_HOST: '127.0.0.1',
      ORDO_INGEST_MAX_EVENTS: '100',
      ORDO_INGEST_MAX_BYTES: '65536',
      ORDO_INGEST_REQUEST_TIMEOUT_MS: '5000',
      ORDO_INGEST_PRODUCERS: '2',
      ORDO_CONNECTORS_DIR: '/etc/ordo/connectors',
      ORDO_DELIVER_PORT: '18091',
      ORDO_DELIVER_HOST: '127.0.0.1',
      ORDO_DELIVER_MAX_STREAMS: '50',
      ORDO_DELIVER_HEARTBEAT_MS: '1000',
      ORDO_DELIVER_BUFFER_BYTES: '65536',
      ORDO_DELIVER_TAIL_RECORDS: '0',
      ORDO_DELIVER_MAX_CATCH_UPS: '2',
      ORDO_DELIVER_SESSION_TTL_MS: '60000',
      ORDO_DELIVER_NODE_TTL_MS: '4000',
      ORDO_DELIVER_NODE_HEARTBEAT_MS: '1000',
      ORDO_DELIVER_FORWARD_TIMEOUT_MS: '2000',
      ORDO_DELIVER_MAX_RECORDS: '500',
      ORDO_DELIVER_MAX_WAIT_MS: '10000',
      ORDO_DELETIONS_TOPIC: 'deletions.v1',
      ORDO_REPLAYS_TOPIC: 'replays.v1',
      ORDO_DUPLICATES_TOPIC: 'duplicates.v1',
      ORDO_RECEIPTS_DIR: '/var/lib/ordo/receipts',
      ORDO_RECEIPTS_RETENTION_MS: '86400000',
      ORDO_TRAIL_KEY: 'header:X-Task-Id',
      ORDO_TRAIL_TERMINAL_TYPES: 'job.done, job.failed',
      ORDO_TRAIL_STALL_MS: '60000',
      ORDO_DELETION_SEPARATOR: '::',
      ORDO_DELETED_SUBJECT_POLICY: 'new-epoch',
      ORDO_DELETION_SWEEP_BATCH: '50',
      ORDO_CORRECTIONS: 'false',
      ORDO_API_NODES_TOPIC: 'api-nodes.v1',
      ORDO_API_STORE_DIR: '/var/lib/ordo/api-store',
      ORDO_API_ADVERTISED_URL: 'http://ordo-api-0.ordo-api:18080/',
      ORDO_API_NODE_HEARTBEAT_MS: '500',
      ORDO_API_NODE_TTL_MS: '3000',
      ORDO_API_FANOUT_TIMEOUT_MS: '1500',
      ORDO_API_SESSION_TIMEOUT_MS: '8000',
    });
    expect(config).toEqual({
      brokers: ['kafka-0.kafka:9092', 'kafka-1.kafka:9093', '10.0.0.7:19092'],
      registryUrl: 'https://registry.internal:8443/apis/ccompat/v7',
      topics: { input: 'in.events', ordered: 'out_ordered', dlq: 'dead-letters', late: 'late.v2', aggregates: 'aggregates.v1', watermarks: 'wm.v1', global: 'global.v1', schemas: 'schema-ids.v1', sessions: 'sessions.v1', nodes: 'nodes.v1', forward: 'forward.v1', replies: 'replies.v1', deletions: 'deletions.v1', replays: 'replays.v1', duplicates: 'duplicates.v1', apiNodes: 'api-nodes.v1' },
      clientId: 'ordo-client:1@a',
      groupId: 'billing.pipeline',
      nodeId: 'ordo-pipeline-7f9c:0',
      topicPartitions: 12,
      replicationFactor: 3,
      createTopics: false,
      maxSkewMs: 250,
      maxBatchRecords: 500,
      maxBytesPerPartition: 2048,
      sessionTimeoutMs: 45_000,
      heartbeatIntervalMs: 15_000,
      rebalanceTimeoutMs: 90_000,
      transactionTimeoutMs: 120_000,
      shutdownGraceMs: 0,
      metricsPort: 0,
      logLevel: 'debug',
      metersFile: '/etc/ordo/meters.yaml',
      dedupeWindowMs: 3_600_000,
      allowedLatenessMs: 0,
      maxFutureMs: 60_000,
      reorderWindowMs: 250,
      reorderMaxEvents: 500,
      latePolicy: 'route',
      watermarkIntervalMs: 2_000,
      apiPort: 18080,
      security: { kafka: { protocol: 'PLAINTEXT' }, registry: {} },
      apiHost: '::1',
      metricsHost: 'pod-0.ordo.svc',
      apiAuth: { mode: 'token', tokensFile: '/etc/ordo/tokens/tokens.yaml' },
      stuckAfterMs: 60_000,
      stateDir: '/var/lib/ordo/state',
      apiConsistencyWaitMs: 2_500,
      ingest: { port: 18090, host: '127.0.0.1', maxEvents: 100, maxBytes: 65_536, requestTimeoutMs: 5_000, producers: 2, connectorsDir: '/etc/ordo/connectors' },
      deliver: {
        port: 18091,
        host: '127.0.0.1',
        maxStreams: 50,
        heartbeatMs: 1_000,
        bufferBytes: 65_536,
        tailRecords: 0,
        maxCatchUps: 2,
        sessionTtlMs: 60_000,
        nodeTtlMs: 4_000,
        nodeHeartbeatMs: 1_000,
        forwardTimeoutMs: 2_000,
        maxRecords: 500,
        maxWaitMs: 10_000,
      },
      receipts: { dir: '/var/lib/ordo/receipts', retentionMs: 86_400_000 },
      trails: { key: { kind: 'header', name: 'x-task-id' }, terminalTypes: ['job.done', 'job.failed'], stallMs: 60_000 },
      deletion: { separator: '::', policy: 'new-epoch', sweepBatch: 50 },
      corrections: { enabled: false },
      apiReads: { storeDir: '/var/lib/ordo/api-store', advertisedUrl: 'http://ordo-api-0.ordo-api:18080', nodeHeartbeatMs: 500, nodeTtlMs: 3_000, fanoutTimeoutMs: 1_500, sessionTimeoutMs: 8_000 },
    } satisfies OrdoConfig);
  });

  it('trims surrounding whitespace from values', () => {
    const config = loadConfig({ ORDO_INPUT_TOPIC: '  raw-usage  ', ORDO_TOPIC_PARTITIONS: ' 4 ', ORDO_LOG_LEVEL: ' warn ' });
    expect(config.topics.input).toBe('raw-usage');
    expect(config.topicPartitions).toBe(4);
    expect(config.logLevel).toBe('warn');
  });

  it.each(LOG_LEVELS)('accepts log level %s', (level) => {
    expect(loadConfig({ ORDO_LOG_LEVEL: level }).logLevel).toBe(level);
  });

  it.each([
    ['1', true],
    ['true', true],
    ['YES', true],
    ['On', true],
    ['0', false],
    ['False', false],
    ['no', false],
    ['OFF', false],
  ])('reads ORDO_CREATE_TOPICS=%s as %s', (text, expected) => {
    expect(loadConfig({ ORDO_CREATE_TOPICS: text }).createTopics).toBe(expected);
  });

  it('accepts the inclusive ends of integer ranges', () => {
    expect(loadConfig({ ORDO_MAX_SKEW_MS: '0' }).maxSkewMs).toBe(0);
    expect(loadConfig({ ORDO_MAX_SKEW_MS: String(24 * 3600 * 1000) }).maxSkewMs).toBe(86_400_000);
    expect(loadConfig({ ORDO_METRICS_PORT: '65535' }).metricsPort).toBe(65_535);
    expect(loadConfig({ ORDO_TOPIC_PARTITIONS: '1' }).topicPartitions).toBe(1);
    expect(loadConfig({ ORDO_SESSION_TIMEOUT_MS: '6000', ORDO_HEARTBEAT_INTERVAL_MS: '2000' }).sessionTimeoutMs).toBe(6000);
  });

  it('parses any in-range integer exactly', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 86_400_000 }), (ms) => {
        expect(loadConfig({ ORDO_MAX_SKEW_MS: String(ms) }).maxSkewMs).toBe(ms);
      }),
    );
  });
});

describe('loadConfig rejects invalid values, naming the variable', () => {
  it.each([
    ['ORDO_MAX_SKEW_MS', 'abc'],
    ['ORDO_MAX_SKEW_MS', '1.5'],
    ['ORDO_MAX_SKEW_MS', '1e3'],
    ['ORDO_MAX_SKEW_MS', '-1'],
    ['ORDO_MAX_SKEW_MS', '86400001'],
    ['ORDO_TOPIC_PARTITIONS', '0'],
    ['ORDO_REPLICATION_FACTOR', '17'],
    ['ORDO_MAX_BATCH_RECORDS', '0'],
    ['ORDO_MAX_BYTES_PER_PARTITION', '1023'],
    ['ORDO_SESSION_TIMEOUT_MS', '5999'],
    ['ORDO_HEARTBEAT_INTERVAL_MS', '99'],
    ['ORDO_REBALANCE_TIMEOUT_MS', '999'],
    ['ORDO_TRANSACTION_TIMEOUT_MS', '900001'],
    ['ORDO_SHUTDOWN_GRACE_MS', 'soon'],
    ['ORDO_METRICS_PORT', '65536'],
    ['ORDO_METRICS_PORT', '0x10'],
    ['ORDO_CREATE_TOPICS', 'maybe'],
    ['ORDO_LOG_LEVEL', 'loud'],
    ['ORDO_LOG_LEVEL', 'INFO'],
    ['KAFKA_BROKERS', 'nohost'],
    ['KAFKA_BROKERS', 'kafka:9092,nohost'],
    ['KAFKA_BROKERS', 'kafka:port'],
    ['KAFKA_BROKERS', ':9092'],
    ['KAFKA_BROKERS', ', ,'],
    ['KAFKA_BROKERS', 'kafka:99999'],
    ['KAFKA_BROKERS', 'kafka:0'],
    ['SCHEMA_REGISTRY_URL', 'ftp://x'],
    ['SCHEMA_REGISTRY_URL', 'not a url'],
    ['SCHEMA_REGISTRY_URL', 'registry:8081'],
    ['ORDO_INPUT_TOPIC', 'has space'],
    ['ORDO_ORDERED_TOPIC', 'slash/topic'],
    ['ORDO_DLQ_TOPIC', 'x'.repeat(250)],
    ['ORDO_LATE_TOPIC', 'ümlaut'],
    ['ORDO_GROUP_ID', 'group:1'],
    ['ORDO_CLIENT_ID', 'client id'],
    ['ORDO_NODE_ID', 'n'.repeat(129)],
    ['ORDO_NODE_ID', 'node/1'],
  ])('%s=%s', (variable, value) => {
    expectConfigError({ [variable]: value }, variable);
  });

  it('accepts bracketed IPv6 brokers', () => {
    expect(loadConfig({ KAFKA_BROKERS: '[::1]:9092,[fd00::7]:19092' }).brokers).toEqual(['[::1]:9092', '[fd00::7]:19092']);
  });

  it('quotes the offending value', () => {
    expect(expectConfigError({ ORDO_MAX_SKEW_MS: 'abc' }, 'ORDO_MAX_SKEW_MS').message).toContain('"abc"');
    expect(expectConfigError({ KAFKA_BROKERS: 'ok:1,nohost' }, 'KAFKA_BROKERS').message).toContain('"nohost"');
    expect(expectConfigError({ SCHEMA_REGISTRY_URL: 'ftp://x' }, 'SCHEMA_REGISTRY_URL').message).toContain('"ftp://x"');
    expect(expectConfigError({ ORDO_LOG_LEVEL: 'loud' }, 'ORDO_LOG_LEVEL').message).toContain('"loud"');
  });

  it('rejects any non-integer text for an integer variable', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 12 }).filter((s) => s.trim() !== '' && !/^-?\d+$/.test(s.trim())),
        (text) => {
          expectConfigError({ ORDO_MAX_BATCH_RECORDS: text }, 'ORDO_MAX_BATCH_RECORDS');
        },
      ),
    );
  });
});

describe('loadConfig cross-field rules', () => {
  it('requires the heartbeat to be at most a third of the session timeout', () => {
    const error = expectConfigError({ ORDO_SESSION_TIMEOUT_MS: '9000', ORDO_HEARTBEAT_INTERVAL_MS: '3001' }, 'ORDO_HEARTBEAT_INTERVAL_MS');
    expect(error.message).toContain('ORDO_SESSION_TIMEOUT_MS');
    expect(loadConfig({ ORDO_SESSION_TIMEOUT_MS: '9000', ORDO_HEARTBEAT_INTERVAL_MS: '3000' }).heartbeatIntervalMs).toBe(3000);
    // The defaults' heartbeat against a short session timeout also trips it.
    expectConfigError({ ORDO_SESSION_TIMEOUT_MS: '6000' }, 'ORDO_HEARTBEAT_INTERVAL_MS');
  });

  it('holds for any heartbeat/session pair in range', () => {
    fc.assert(
      fc.property(fc.integer({ min: 6_000, max: 300_000 }), fc.integer({ min: 100, max: 100_000 }), (session, heartbeat) => {
        const env = { ORDO_SESSION_TIMEOUT_MS: String(session), ORDO_HEARTBEAT_INTERVAL_MS: String(heartbeat) };
        if (heartbeat * 3 > session) {
          expectConfigError(env, 'ORDO_HEARTBEAT_INTERVAL_MS');
        } else {
          const config = loadConfig(env);
          expect(config.sessionTimeoutMs).toBe(session);
          expect(config.heartbeatIntervalMs).toBe(heartbeat);
        }
      }),
    );
  });

  it('rejects two topics with the same name, naming the later variable', () => {
    expectConfigError({ ORDO_DLQ_TOPIC: 'usage-events' }, 'ORDO_DLQ_TOPIC');
    expectConfigError({ ORDO_ORDERED_TOPIC: 'same', ORDO_LATE_TOPIC: 'same' }, 'ORDO_LATE_TOPIC');
    expectConfigError({ ORDO_INPUT_TOPIC: 'usage-events-dlq' }, 'ORDO_DLQ_TOPIC');
    expectConfigError({ ORDO_GLOBAL_TOPIC: 'usage-events-ordered' }, 'ORDO_GLOBAL_TOPIC');
    expectConfigError({ ORDO_WATERMARKS_TOPIC: 'usage-aggregates' }, 'ORDO_WATERMARKS_TOPIC');
    const error = expectConfigError({ ORDO_INPUT_TOPIC: 'x', ORDO_ORDERED_TOPIC: 'x' }, 'ORDO_ORDERED_TOPIC');
    expect(error.message).toContain('"x"');
    expect(error.message).toContain('input');
  });
});

describe('EnvReader', () => {
  it('optionalString gives the trimmed value or undefined', () => {
    const read = new EnvReader({ A: ' a ', B: '  ', C: undefined });
    expect(read.optionalString('A')).toBe('a');
    expect(read.optionalString('B')).toBeUndefined();
    expect(read.optionalString('C')).toBeUndefined();
    expect(read.optionalString('D')).toBeUndefined();
  });

  it('validates the fallback of string() against its pattern too', () => {
    const read = new EnvReader({});
    const error = catchError(() => read.string('X', 'bad value', /^\S+$/));
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe('X');
  });

  it('int() uses no upper bound by default beyond safe integers', () => {
    expect(new EnvReader({ N: '9007199254740991' }).int('N', 0, 0)).toBe(Number.MAX_SAFE_INTEGER);
    expect(catchError(() => new EnvReader({ N: '9007199254740992' }).int('N', 0, 0))).toBeInstanceOf(ConfigError);
  });

  it('list() drops empty items and fails when none are left', () => {
    expect(new EnvReader({ L: 'a,,b, ,c' }).list('L', [])).toEqual(['a', 'b', 'c']);
    expect((catchError(() => new EnvReader({ L: ',,' }).list('L', ['x'])) as ConfigError).variable).toBe('L');
  });
});
