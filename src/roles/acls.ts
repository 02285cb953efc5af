import type { OrdoConfig } from '../config/config.js';
import { schemaLedgerGroupId } from '../engine/schema-ledger.js';
import { mergeTransactionalId } from '../engine/merge-worker.js';
import { META_STORE, changelogTopic, transactionalIdPrefix } from '../engine/task.js';
import { HELD_STORE, MERGE_META_STORE } from '../processors/merge.js';
import { pipelineTopics } from './pipeline.js';
import { apiGroupId, apiLedgerConfig, apiReadsGroupId, replayTransactionalId } from './api.js';
import { mergeGroupId } from './merge.js';
import { ingestLedgerConfig, ingestTransactionalIdPrefix } from './ingest.js';
import { deliverGroupPrefix, deliverLedgerConfig } from './deliver.js';
import { pipelineDeletionsGroupId } from '../deletion/deletion-follower.js';

/**
 * The minimal Kafka ACLs each role needs (docs/operations.md#acls lists them; a test runs
 * every role with exactly these and with each one missing). Derived from the names the roles
 * use, so the list cannot drift from the code. Describe is listed only where it is all a role
 * needs: Kafka implies it from Read, Write and Delete on the same resource. Nor is
 * IdempotentWrite on the cluster: since Kafka 3.0 (KIP-679) Write on the transactional id is
 * enough for a transactional producer.
 */
export type AclOperation = 'Read' | 'Write' | 'Create' | 'Delete' | 'Describe';

export interface RoleAcl {
  resource: 'Topic' | 'Group' | 'TransactionalId';
  pattern: 'literal' | 'prefixed';
  name: string;
  operation: AclOperation;
  /** Why the role needs it (shown in docs and in the test's failure report). */
  why: string;
  /** Only needed with ORDO_CREATE_TOPICS=true, or only to tidy up (restore groups expire by themselves). */
  optional?: 'create-topics' | 'cleanup';
}

export type AclRole = 'pipeline' | 'merge' | 'api' | 'ingest' | 'deliver';

export function roleAcls(role: AclRole, config: Pick<OrdoConfig, 'groupId' | 'nodeId' | 'topics' | 'allowedLatenessMs'>): RoleAcl[] {
  const t = config.topics;
  const acls: RoleAcl[] = [];
  const topic = (name: string, ops: AclOperation[], why: string): void => {
    for (const operation of ops) acls.push({ resource: 'Topic', pattern: 'literal', name, operation, why });
  };
  const created = (names: string[]): void => {
    for (const name of names) acls.push({ resource: 'Topic', pattern: 'literal', name, operation: 'Create', why: 'creates the topic if missing', optional: 'create-topics' });
  };
  const consumerGroup = (group: string, restores: boolean, why = 'consumer group; offsets committed in the transaction'): void => {
    acls.push({ resource: 'Group', pattern: 'literal', name: group, operation: 'Read', why });
    if (restores) {
      acls.push({ resource: 'Group', pattern: 'prefixed', name: `${group}-restore-`, operation: 'Read', why: 'one short-lived group per state restore' });
      acls.push({ resource: 'Group', pattern: 'prefixed', name: `${group}-restore-`, operation: 'Delete', why: 'deletes its restore groups when done', optional: 'cleanup' });
    }
  };

  // The schema id ledger (engine/schema-ledger.ts): read whole by every instance, appended to.
  const ledger = (group: string): void => {
    topic(t.schemas, ['Read', 'Write'], 'schema id ledger');
    created([t.schemas]);
    acls.push({ resource: 'Group', pattern: 'prefixed', name: `${schemaLedgerGroupId({ groupId: group, nodeId: config.nodeId })}-`, operation: 'Read', why: 'schema id ledger reader of this instance, one group per start (offsets never committed)' });
  };

  if (role === 'pipeline') {
    const stores = [META_STORE, ...pipelineTopics(config).storeNames];
    const changelogs = stores.map((store) => changelogTopic(config.groupId, store));
    topic(t.input, ['Read'], 'input');
    for (const name of [t.ordered, t.late]) topic(name, ['Read', 'Write'], 'output, and the dedupe/sequences stores are rebuilt from it');
    for (const name of [t.dlq, t.watermarks]) topic(name, ['Write'], 'output');
    topic(t.aggregates, ['Read', 'Write'], 'output, and the aggregates store restores from it');
    for (const name of changelogs) topic(name, ['Read', 'Write'], 'state store changelog');
    created([t.input, t.ordered, t.dlq, t.late, t.aggregates, t.watermarks, ...changelogs]);
    consumerGroup(config.groupId, true);
    acls.push({ resource: 'TransactionalId', pattern: 'prefixed', name: transactionalIdPrefix(config.groupId, t.input), operation: 'Write', why: 'one transactional producer per input partition' });
    ledger(config.groupId);
    // Accountability: re-sends dropped per transaction (receipts); deletions followed, and each
    // task's "swept" marker written to the deletions topic in its transaction.
    topic(t.duplicates, ['Write'], 'the re-sends a transaction dropped as duplicates (receipts)');
    topic(t.deletions, ['Read', 'Write'], 'subject deletions followed; sweep markers written in the task transaction');
    created([t.duplicates, t.deletions]);
    acls.push({ resource: 'Group', pattern: 'prefixed', name: `${pipelineDeletionsGroupId(config)}-`, operation: 'Read', why: 'the deletions reader of this worker, one group per start (offsets never committed)' });
  } else if (role === 'merge') {
    const group = mergeGroupId(config);
    const changelogs = [HELD_STORE, MERGE_META_STORE].map((store) => changelogTopic(group, store));
    for (const name of [t.ordered, t.watermarks]) topic(name, ['Read'], 'input');
    for (const name of [t.global, t.dlq]) topic(name, ['Write'], 'output');
    for (const name of changelogs) topic(name, ['Read', 'Write'], 'state store changelog');
    created([t.global, ...changelogs]);
    consumerGroup(group, true);
    acls.push({ resource: 'TransactionalId', pattern: 'literal', name: mergeTransactionalId(group), operation: 'Write', why: 'the one transactional producer' });
  } else if (role === 'ingest') {
    topic(t.input, ['Write'], 'each request is written in one transaction');
    created([t.input]);
    acls.push({ resource: 'TransactionalId', pattern: 'prefixed', name: `${ingestTransactionalIdPrefix(config)}-`, operation: 'Write', why: 'the transactional producers of this instance (ORDO_INGEST_PRODUCERS)' });
    ledger(ingestLedgerConfig(config).groupId);
  } else if (role === 'deliver') {
    for (const name of [t.ordered, t.global]) topic(name, ['Read'], 'the stream delivered to clients');
    for (const name of [t.sessions, t.nodes, t.forward, t.replies]) topic(name, ['Read', 'Write'], 'sessions, live nodes and forwarded requests of the deliver replicas');
    topic(t.deletions, ['Read'], 'deleted subjects answer 410 and leave the streams');
    created([t.sessions, t.nodes, t.forward, t.replies, t.deletions]);
    acls.push({ resource: 'Group', pattern: 'prefixed', name: `${deliverGroupPrefix(config)}-`, operation: 'Read', why: 'the readers of this replica (streams, sessions, nodes, forwards), each a group of its own per start (offsets never committed)' });
    acls.push({ resource: 'Group', pattern: 'prefixed', name: `${deliverGroupPrefix(config)}-`, operation: 'Delete', why: 'deletes the groups of its catch-up readers when they end', optional: 'cleanup' });
    ledger(deliverLedgerConfig(config).groupId);
  } else {
    topic(t.aggregates, ['Read'], 'the read model follows it');
    acls.push({ resource: 'Group', pattern: 'prefixed', name: `${apiGroupId(config)}-`, operation: 'Read', why: 'the readers of this replica (read model, replays, dead-letter scans), each a group of its own per start (offsets never committed)' });
    ledger(apiLedgerConfig(config).groupId);
    // Read-your-writes (api/consistency.ts): OffsetFetch of the pipeline's positions. Not Read,
    // which would let the api commit offsets for the pipeline's group.
    acls.push({ resource: 'Group', pattern: 'literal', name: config.groupId, operation: 'Describe', why: "read-your-writes: reads the pipeline group's committed positions" });
    // Dead-letter replay (src/replay): reads letters, writes them back with their replay record
    // in one transaction. Write on the input implies the Describe read-your-writes needs there.
    topic(t.input, ['Write'], 'dead-letter replay: the replayed events; read-your-writes: the committed positions on the input topic');
    topic(t.dlq, ['Read'], 'dead-letter replay: the letters');
    topic(t.replays, ['Read', 'Write'], 'dead-letter replay: what was replayed, followed by every replica');
    // Receipts and trails: an index over what the pipeline writes. Deletions: taken and followed.
    for (const name of [t.ordered, t.late, t.duplicates]) topic(name, ['Read'], 'receipts and trails index it');
    topic(t.deletions, ['Read', 'Write'], 'DELETE /v1/subjects writes a deletion; deleted subjects answer 410');
    created([t.replays, t.deletions]);
    acls.push({ resource: 'TransactionalId', pattern: 'literal', name: replayTransactionalId(config), operation: 'Write', why: 'dead-letter replay: the transactional producer of this replica' });
    // The partitioned read side (src/api/partitioned-read-side.ts): one group shared by every
    // replica (offsets never committed), and the replicas' heartbeats.
    acls.push({ resource: 'Group', pattern: 'literal', name: apiReadsGroupId(config), operation: 'Read', why: "the replicas' shared group over the aggregates topic: each holds its partitions (offsets never committed)" });
    topic(t.apiNodes, ['Read', 'Write'], 'the api replicas: addresses and partitions, for routing queries');
    created([t.apiNodes]);
  }
  return acls;
}
