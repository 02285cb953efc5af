import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { LIFECYCLE_STATES } from '../engine/lifecycle.js';
import { DEAD_LETTER_REASONS } from '../errors.js';
import { VIOLATION_REASONS } from '../model/reasons.js';
import { LATE_REASONS } from '../model/reasons.js';

/** One owned input partition's consumer lag at scrape time (src/engine/consumer-lag.ts). */
export interface ConsumerLagSample {
  group: string;
  topic: string;
  partition: number;
  records: number;
  seconds: number;
}

/** Computes the lag of the partitions a worker owns, when Prometheus scrapes. */
export interface ConsumerLagSource {
  sample(): Promise<readonly ConsumerLagSample[]>;
}

/**
 * Ordo's Prometheus metrics. Labels are bounded: topic, partition, reason, role, state —
 * never a subject or an event id. Each worker owns a Registry so tests can run several.
 */
export class OrdoMetrics {
  readonly registry: Registry;
  readonly eventsIn: Counter<'topic' | 'partition'>;
  readonly eventsOut: Counter<'topic'>;
  readonly deadLettered: Counter<'reason'>;
  readonly duplicates: Counter;
  readonly late: Counter<'reason'>;
  readonly stateExpired: Counter;
  readonly orderingViolations: Counter<'reason'>;
  readonly reorderBuffered: Gauge<'partition'>;
  readonly reorderForced: Counter;
  readonly mergeLate: Counter;
  readonly mergeHeld: Gauge;
  readonly mergeWatermarkDelay: Gauge;
  readonly stateEntries: Gauge<'store' | 'partition'>;
  readonly readModelAggregates: Gauge;
  readonly readModelLag: Gauge;
  readonly readModelSkipped: Counter;
  readonly apiRequestsRefused: Counter<'kind'>;
  readonly apiConsistencyWait: Histogram<'outcome'>;
  readonly ingestRequests: Counter<'outcome'>;
  readonly ingestEvents: Counter<'outcome'>;
  readonly ingestRequestSeconds: Histogram<'outcome'>;
  readonly deliverStreams: Gauge<'stream'>;
  readonly deliverStreamRequests: Counter<'stream' | 'outcome'>;
  readonly deliverRecords: Counter<'stream' | 'via'>;
  readonly deliverOverflows: Counter<'stream'>;
  readonly deliverDelay: Histogram<'stream'>;
  readonly deliverCatchUps: Gauge;
  readonly deliverSessions: Gauge;
  readonly deliverSessionRequests: Counter<'route' | 'outcome'>;
  readonly deliverSessionsExpired: Counter;
  readonly deliverForwards: Counter<'outcome'>;
  readonly deliverForwardedServed: Counter;
  readonly deliverTakeovers: Counter<'outcome'>;
  readonly deliverLiveNodes: Gauge;
  // --- accountability (receipts, trails, replays, corrections, deletions) ---
  readonly receiptsIndexed: Counter<'outcome'>;
  readonly receiptsEntries: Gauge;
  readonly receiptsLag: Gauge;
  readonly receiptLookups: Counter<'outcome'>;
  readonly trailsOpen: Gauge;
  readonly trailsStalled: Gauge;
  readonly trailDuration: Histogram;
  readonly dlqReplays: Counter<'outcome'>;
  readonly corrections: Counter<'kind' | 'outcome'>;
  readonly deletionRequests: Counter<'outcome'>;
  readonly deletionsPending: Gauge;
  readonly deletionTombstones: Counter;
  readonly deletionSeconds: Histogram;
  readonly retentionTombstones: Counter<'size'>;
  readonly clockSkew: Histogram;
  readonly clockSkewRejected: Counter;
  readonly transactionSeconds: Histogram<'outcome'>;
  readonly transactionsAborted: Counter<'reason'>;
  readonly endToEndSeconds: Histogram;
  readonly rebalances: Counter<'kind'>;
  readonly restoreSeconds: Histogram<'store'>;
  readonly restoreRecords: Counter<'store'>;
  readonly tasksFenced: Counter;
  readonly idleTickFailures: Counter;
  readonly assignedPartitions: Gauge;
  readonly consumerLagRecords: Gauge<'group' | 'topic' | 'partition'>;
  readonly consumerLagSeconds: Gauge<'group' | 'topic' | 'partition'>;
  /** Each worker registers its lag source here; the two lag gauges are computed from them at scrape time. */
  readonly consumerLagSources = new Set<ConsumerLagSource>();
  readonly lifecycleState: Gauge<'state'>;

  constructor(options: { defaultMetrics?: boolean; labels?: Record<string, string> } = {}) {
    this.registry = new Registry();
    if (options.labels) this.registry.setDefaultLabels(options.labels);
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'ordo_' });
    const registers = [this.registry];
    this.eventsIn = new Counter({ name: 'ordo_events_in_total', help: 'Input records read and processed (committed).', labelNames: ['topic', 'partition'], registers });
    this.eventsOut = new Counter({ name: 'ordo_events_out_total', help: 'Records written to output topics (committed), by topic.', labelNames: ['topic'], registers });
    this.deadLettered = new Counter({ name: 'ordo_events_dead_lettered_total', help: 'Records sent to the dead-letter topic, by reason.', labelNames: ['reason'], registers });
    this.duplicates = new Counter({ name: 'ordo_events_duplicate_total', help: 'Events dropped because their (source, id) was seen within the dedupe window.', registers });
    this.late = new Counter({ name: 'ordo_events_late_total', help: 'Events routed to the late topic, by reason.', labelNames: ['reason'], registers });
    this.stateExpired = new Counter({ name: 'ordo_state_expired_total', help: 'State store entries expired (dedupe ids past the window, final aggregates).', registers });
    this.orderingViolations = new Counter({
      name: 'ordo_ordering_violations_total',
      help: 'Events that broke per-subject order, by reason: late (below the last emitted key), duplicate-key, sequence-gap, sequence-regression (upstream producer-seq).',
      labelNames: ['reason'],
      registers,
    });
    for (const reason of VIOLATION_REASONS) this.orderingViolations.inc({ reason }, 0);
    this.reorderBuffered = new Gauge({ name: 'ordo_reorder_buffer_events', help: 'Events held in the reorder buffer, by input partition.', labelNames: ['partition'], registers });
    this.reorderForced = new Counter({ name: 'ordo_reorder_forced_emits_total', help: 'Events emitted before their reorder window ran out because the buffer was at ORDO_REORDER_MAX_EVENTS.', registers });
    this.mergeLate = new Counter({ name: 'ordo_merge_late_total', help: 'Events the merge role wrote to the global topic flagged ordo-late: below what the global stream had already passed.', registers });
    this.mergeHeld = new Gauge({ name: 'ordo_merge_held_events', help: 'Events the merge role holds until the low watermark passes them.', registers });
    this.mergeWatermarkDelay = new Gauge({ name: 'ordo_merge_watermark_delay_seconds', help: 'Wall clock minus the merge role\'s low watermark (0 before every partition reported): how far the global stream is behind.', registers });
    this.stateEntries = new Gauge({ name: 'ordo_state_store_entries', help: 'Entries in a task state store, by store and input partition.', labelNames: ['store', 'partition'], registers });
    this.readModelAggregates = new Gauge({ name: 'ordo_read_model_aggregates', help: 'Aggregates held by the api role\'s read model.', registers });
    this.readModelLag = new Gauge({ name: 'ordo_read_model_lag_records', help: 'Records of the aggregates topic the read model has not applied yet.', registers });
    this.readModelSkipped = new Counter({ name: 'ordo_read_model_skipped_total', help: 'Aggregate records the read model could not decode and skipped.', registers });
    this.ingestRequests = new Counter({ name: 'ordo_ingest_requests_total', help: 'Requests to the ingest role, by outcome (accepted, invalid, too-large, unsupported-media-type, refused, unavailable, ...: the error kind).', labelNames: ['outcome'], registers });
    this.ingestEvents = new Counter({ name: 'ordo_ingest_events_total', help: 'Events in requests to the ingest role, by the request outcome (accepted: written to the input topic).', labelNames: ['outcome'], registers });
    this.ingestRequestSeconds = new Histogram({
      name: 'ordo_ingest_request_duration_seconds',
      help: 'Ingest request duration from the first byte read to the answer, by outcome.',
      labelNames: ['outcome'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      registers,
    });
    this.deliverStreams = new Gauge({ name: 'ordo_deliver_streams', help: 'SSE streams open on this deliver replica, by stream (ordered, global).', labelNames: ['stream'], registers });
    this.deliverStreamRequests = new Counter({ name: 'ordo_deliver_stream_requests_total', help: 'SSE stream requests to the deliver role, by stream and outcome (opened, or the error kind: too-many-streams, cursor-expired, bad-cursor, ...).', labelNames: ['stream', 'outcome'], registers });
    this.deliverRecords = new Counter({ name: 'ordo_deliver_records_total', help: 'Records delivered, by stream and how (sse, session: records in answers to session reads, repeats included).', labelNames: ['stream', 'via'], registers });
    this.deliverOverflows = new Counter({ name: 'ordo_deliver_overflows_total', help: 'SSE clients disconnected because they did not read (more than ORDO_DELIVER_BUFFER_BYTES queued), by stream.', labelNames: ['stream'], registers });
    this.deliverDelay = new Histogram({
      name: 'ordo_deliver_delay_seconds',
      help: 'From a record\'s timestamp (its write to the stream topic) to its SSE write to a client at the tail, by stream.',
      labelNames: ['stream'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.deliverCatchUps = new Gauge({ name: 'ordo_deliver_catch_up_readers', help: 'Readers of records older than the in-memory tail (a Kafka consumer each) open on this replica.', registers });
    this.deliverSessions = new Gauge({ name: 'ordo_deliver_sessions', help: 'Receiver sessions this deliver replica owns.', registers });
    this.deliverSessionRequests = new Counter({ name: 'ordo_deliver_session_requests_total', help: 'Receiver session requests served by this replica (its own sessions, also when forwarded to it), by route (create, records, ack, delete) and outcome (ok, or the error kind).', labelNames: ['route', 'outcome'], registers });
    this.deliverSessionsExpired = new Counter({ name: 'ordo_deliver_sessions_expired_total', help: 'Receiver sessions that expired (no request for ORDO_DELIVER_SESSION_TTL_MS).', registers });
    this.deliverForwards = new Counter({ name: 'ordo_deliver_forwards_total', help: 'Requests this replica forwarded to the node owning a session, by outcome (answered, timeout, failed).', labelNames: ['outcome'], registers });
    this.deliverForwardedServed = new Counter({ name: 'ordo_deliver_forwarded_served_total', help: 'Forwarded requests this replica answered for another replica.', registers });
    this.deliverTakeovers = new Counter({ name: 'ordo_deliver_takeovers_total', help: 'Session takeovers from a gone owner attempted by this replica, by outcome (won, lost).', labelNames: ['outcome'], registers });
    this.deliverLiveNodes = new Gauge({ name: 'ordo_deliver_live_nodes', help: 'Deliver replicas with a heartbeat within ORDO_DELIVER_NODE_TTL_MS, this one included.', registers });
    this.receiptsIndexed = new Counter({ name: 'ordo_receipts_indexed_total', help: 'Records the api role indexed as receipts, by outcome (accepted, duplicate, dead-lettered, late).', labelNames: ['outcome'], registers });
    this.receiptsEntries = new Gauge({ name: 'ordo_receipts_index_entries', help: 'Receipts (source, id) held by the api role\'s index, within ORDO_RECEIPTS_RETENTION_MS.', registers });
    this.receiptsLag = new Gauge({ name: 'ordo_receipts_lag_records', help: 'Records of the ordered, dead-letter, late and duplicates topics the receipts index has not applied yet.', registers });
    this.receiptLookups = new Counter({ name: 'ordo_receipt_lookups_total', help: 'Receipt lookups (GET /v1/events/{source}/{id}), by the answer\'s status (accepted, duplicate, dead-lettered, late, not-seen).', labelNames: ['outcome'], registers });
    this.trailsOpen = new Gauge({ name: 'ordo_trails_open', help: 'Trails (correlation ids) with events and no terminal event yet, within the receipts retention.', registers });
    this.trailsStalled = new Gauge({ name: 'ordo_trails_stalled', help: 'Open trails with no event for ORDO_TRAIL_STALL_MS.', registers });
    this.trailDuration = new Histogram({
      name: 'ordo_trail_duration_seconds',
      help: 'From the first to the terminal event of a completed trail (service time).',
      buckets: [0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 86_400],
      registers,
    });
    this.dlqReplays = new Counter({ name: 'ordo_dlq_replays_total', help: 'Dead letters replayed to the input topic, by outcome (replayed, already-replayed, not-found).', labelNames: ['outcome'], registers });
    this.corrections = new Counter({ name: 'ordo_corrections_total', help: 'Corrections of past events, by kind (void, amend) and outcome (applied, pending: waiting for the original, late, dead-lettered).', labelNames: ['kind', 'outcome'], registers });
    this.deletionRequests = new Counter({ name: 'ordo_deletion_requests_total', help: 'Subject deletion requests, by outcome (accepted, repeated, refused).', labelNames: ['outcome'], registers });
    this.deletionsPending = new Gauge({ name: 'ordo_deletions_pending', help: 'Deletions whose sweep this worker\'s tasks have not finished yet.', registers });
    this.deletionTombstones = new Counter({ name: 'ordo_deletion_records_tombstoned_total', help: 'Aggregates tombstoned and state entries removed by deletion sweeps.', registers });
    this.deletionSeconds = new Histogram({
      name: 'ordo_deletion_duration_seconds',
      help: 'From a deletion\'s request to the end of a task\'s sweep of it.',
      buckets: [0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600],
      registers,
    });
    for (const outcome of ['accepted', 'duplicate', 'dead-lettered', 'late']) this.receiptsIndexed.inc({ outcome }, 0);
    for (const outcome of ['replayed', 'already-replayed', 'not-found']) this.dlqReplays.inc({ outcome }, 0);
    for (const kind of ['void', 'amend']) for (const outcome of ['applied', 'late', 'dead-lettered']) this.corrections.inc({ kind, outcome }, 0);
    this.apiRequestsRefused = new Counter({ name: 'ordo_api_requests_refused_total', help: 'API requests refused by authentication or authorization, by error kind (401/403/503).', labelNames: ['kind'], registers });
    this.apiConsistencyWait = new Histogram({
      name: 'ordo_api_consistency_wait_seconds',
      help: 'How long usage queries with consistentWith waited, by outcome (consistent, timeout).',
      labelNames: ['outcome'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.clockSkew = new Histogram({
      name: 'ordo_clock_skew_seconds',
      help: 'How far a received service time was ahead of local physical time (0 when behind).',
      buckets: [0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 5, 60],
      registers,
    });
    this.clockSkewRejected = new Counter({ name: 'ordo_clock_skew_rejected_total', help: 'Received service times not adopted because they exceeded the max skew.', registers });
    this.transactionSeconds = new Histogram({
      name: 'ordo_transaction_commit_seconds',
      help: 'Time to process a batch and commit (or abort) its transaction, by outcome.',
      labelNames: ['outcome'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.transactionsAborted = new Counter({ name: 'ordo_transactions_aborted_total', help: 'Transactions aborted, by reason.', labelNames: ['reason'], registers });
    this.endToEndSeconds = new Histogram({
      name: 'ordo_end_to_end_latency_seconds',
      help: 'From the event\'s origin service time (Ordo\'s stamp if it had none) to the commit of its ordered output.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.rebalances = new Counter({ name: 'ordo_rebalances_total', help: 'Consumer group rebalances seen by this worker.', labelNames: ['kind'], registers });
    this.restoreSeconds = new Histogram({
      name: 'ordo_state_restore_seconds',
      help: 'Time to restore a task state store from its changelog.',
      labelNames: ['store'],
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    });
    this.restoreRecords = new Counter({ name: 'ordo_state_restore_records_total', help: 'Changelog records replayed into state stores.', labelNames: ['store'], registers });
    this.tasksFenced = new Counter({ name: 'ordo_tasks_fenced_total', help: 'Tasks dropped because a newer producer with their transactional id fenced them.', registers });
    this.idleTickFailures = new Counter({
      name: 'ordo_idle_tick_failures_total',
      help: 'Idle-partition clock ticks (or merge watermark ticks) that failed; each is handled like a failed batch.',
      registers,
    });
    const lagGauge = (name: string, help: string, value: (s: ConsumerLagSample) => number): Gauge<'group' | 'topic' | 'partition'> => {
      const sources = this.consumerLagSources;
      return new Gauge({
        name,
        help,
        labelNames: ['group', 'topic', 'partition'],
        registers,
        async collect() {
          const samples = (await Promise.all([...sources].map((source) => source.sample()))).flat();
          this.reset(); // revoked partitions disappear: each partition is reported by its owner only
          for (const s of samples) this.set({ group: s.group, topic: s.topic, partition: String(s.partition) }, value(s));
        },
      });
    };
    this.consumerLagRecords = lagGauge(
      'ordo_consumer_lag_records',
      'Input records (transaction markers and aborted records excluded) after the group\'s committed offset, per owned partition (docs/consumer-lag.md).',
      (s) => s.records,
    );
    this.consumerLagSeconds = lagGauge(
      'ordo_consumer_lag_seconds',
      'Age of the oldest input record not committed yet, 0 when caught up, per owned partition (docs/consumer-lag.md).',
      (s) => s.seconds,
    );
    this.assignedPartitions = new Gauge({ name: 'ordo_assigned_partitions', help: 'Input partitions currently assigned to this worker.', registers });
    // Known label values start at 0, so rate() and increase() see the first event too.
    for (const reason of DEAD_LETTER_REASONS) this.deadLettered.inc({ reason }, 0);
    for (const reason of LATE_REASONS) this.late.inc({ reason }, 0);
    for (const reason of ['fenced', 'error']) this.transactionsAborted.inc({ reason }, 0);
    this.rebalances.inc({ kind: 'assignment' }, 0);
    this.lifecycleState = new Gauge({ name: 'ordo_lifecycle_state', help: '1 for the worker\'s current lifecycle state, 0 for the others.', labelNames: ['state'], registers });
    for (const state of LIFECYCLE_STATES) this.lifecycleState.set({ state }, state === 'starting' ? 1 : 0);
    this.retentionTombstones = new Counter({ name: 'ordo_retention_tombstones_total', help: 'Aggregates of expired windows tombstoned by the pipeline (ORDO_WINDOW_RETENTION), by window size.', labelNames: ['size'], registers });
  }
}
