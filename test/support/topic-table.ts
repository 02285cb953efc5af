import { type PlannedTopic, topicPlan } from '../../src/commands/topics.js';
import { type OrdoConfig, loadConfig } from '../../src/config/config.js';
import { markdownTable } from './markdown.js';

/** An input partition count no fixed count equals, to tell "the input's" from a number. */
const INPUT = 1009;

/** The variable that names each topic: ORDO_<KEY>_TOPIC for config.topics, else the group. */
export function topicVariable(config: OrdoConfig, topic: string): string {
  const key = Object.entries(config.topics).find(([, name]) => name === topic)?.[0];
  if (key !== undefined) return `ORDO_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}_TOPIC`;
  if (topic.startsWith(`${config.groupId}-`)) return 'ORDO_GROUP_ID';
  throw new Error(`no variable names topic ${topic}`);
}

function partitions(t: PlannedTopic): string {
  const n = t.partitions === INPUT ? "the input's" : String(t.partitions);
  if (t.mustMatchPartitions) return `${n}, exactly`;
  if (t.minPartitions === INPUT) return `at least ${n}`;
  return t.partitions === INPUT ? 'any (created with `ORDO_TOPIC_PARTITIONS`)' : n;
}

/**
 * The topic table of docs/operations.md#topics as the code gives it: every topic the roles
 * need (`topicPlan`, the functions the engine creates them with), default names.
 */
export function topicTable(): string {
  const config = loadConfig({});
  const rows = topicPlan(config, INPUT).map((t) => [
    `\`${t.topic}\``,
    `\`${topicVariable(config, t.topic)}\``,
    partitions(t),
    [t.compacted ? '`compact`' : '`delete`', ...Object.entries(t.configs ?? {}).map(([name, value]) => `\`${name}=${value}\``)].join(', '),
    t.roles.join(', '),
  ]);
  return markdownTable(['topic (default name)', 'named by', 'partitions', 'cleanup.policy', 'roles'], rows);
}
