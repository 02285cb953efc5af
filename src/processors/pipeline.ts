import type { HybridClock } from '../clock/hybrid-clock.js';
import { formatServiceTime, parseServiceTime } from '../clock/service-time.js';
import type { ProcessResult, TaskContext, TaskProcessor } from '../engine/task-processor.js';
import type { SchemaCatalog } from '../schema/schema-catalog.js';
import { toDeadLetterRecord } from './dead-letter.js';
import { DecodeStep, schemaIdsOf } from './decode.js';
import { EncodeStep } from './encode.js';
import type { SourceRecord } from './records.js';
import { type StampStats, StampStep } from './stamp.js';

export const META_CLOCK_HWM = 'clock-hwm';

export interface PipelineSettings {
  /**
   * The worker's one clock, shared by its tasks so (service-time, service-node) stays
   * unique per node. Its node id also names the node in dead-letter headers.
   */
  clock: HybridClock;
  orderedTopic: string;
  dlqTopic: string;
  /** Registry id of UsageEvent under the ordered topic's value subject. */
  outputSchemaId: number;
  catalog: SchemaCatalog;
}

/**
 * The `pipeline` role's chain for one task: decode -> stamp -> encode, dead letters to
 * the DLQ. Later processors (dedupe, aggregate, order) slot in between stamp and encode.
 */
export class PipelineProcessor implements TaskProcessor {
  readonly stores = [];
  readonly clock: HybridClock;
  private readonly decode: DecodeStep;
  private readonly stamp: StampStep;
  private readonly encode: EncodeStep;

  constructor(private readonly settings: PipelineSettings) {
    this.clock = settings.clock;
    this.decode = new DecodeStep(settings.catalog);
    this.stamp = new StampStep(this.clock);
    this.encode = new EncodeStep(settings.orderedTopic, settings.outputSchemaId);
  }

  /** Failover: adopt the highest service time already emitted for this partition. */
  onRestored(context: TaskContext): void {
    const hwm = context.meta.get(META_CLOCK_HWM);
    if (hwm !== undefined) this.clock.witness(parseServiceTime(hwm));
  }

  prepare(records: readonly SourceRecord[]): Promise<void> {
    return this.settings.catalog.prefetch(schemaIdsOf(records));
  }

  process(records: readonly SourceRecord[], context: TaskContext): ProcessResult {
    const decoded = this.decode.run(records);
    const stats: StampStats = { skewsMs: [], rejectedForSkew: 0 };
    const stamped = this.stamp.run(decoded.items, stats);
    const dead = [...decoded.dead, ...stamped.dead];
    const outputs = this.encode.run(stamped.items);
    for (const d of dead) outputs.push(toDeadLetterRecord(d, this.settings.dlqTopic, this.clock.node));
    if (stamped.items.length > 0) context.meta.put(META_CLOCK_HWM, formatServiceTime(this.clock.last));
    return { outputs, report: { deadLetters: dead, clockSkewsMs: stats.skewsMs, clockSkewRejected: stats.rejectedForSkew } };
  }
}
