import { apiNodesTopicSpec } from '../../src/api/partitioned-read-side.js';
import { describe, expect, it } from 'vitest';
import { formatPlan, topicPlan } from '../../src/commands/topics.js';
import { loadConfig } from '../../src/config/config.js';
import { mergeTopicSpecs } from '../../src/engine/merge-worker.js';
import { schemaLedgerTopicSpec } from '../../src/engine/schema-ledger.js';
import { workerTopicSpecs } from '../../src/engine/worker.js';
import { pipelineTopics } from '../../src/roles/pipeline.js';
import { deliverTopicSpecs } from '../../src/roles/deliver.js';
import { deletionsTopicSpec, duplicatesTopicSpec, replaysTopicSpec } from '../../src/accountability/topics.js';
import { contents, readDoc } from '../support/markdown.js';
import { topicTable, topicVariable } from '../support/topic-table.js';

const config = loadConfig({ ORDO_GROUP_ID: 'g', ORDO_TOPIC_PARTITIONS: '12' });

describe('ordo topics', () => {
  it('lists every topic the pipeline and merge engines create, once, with the api role reading the aggregates and the ingest writing the input', () => {
    const plan = topicPlan(config, 12);
    const engine = [
      ...workerTopicSpecs({ groupId: 'g', ...pipelineTopics(config) }, 12),
      ...mergeTopicSpecs({ groupId: 'g-merge', globalTopic: config.topics.global, watermarksTopic: config.topics.watermarks, dlqTopic: config.topics.dlq, storeNames: ['held', 'merge-meta'] }, 12),
      schemaLedgerTopicSpec(config.topics.schemas),
      ...deliverTopicSpecs(config),
      deletionsTopicSpec(config),
      replaysTopicSpec(config),
      duplicatesTopicSpec(config, 12),
      apiNodesTopicSpec(config),
    ];
    expect(new Set(plan.map((t) => t.topic))).toEqual(new Set(engine.map((t) => t.topic)));
    expect(plan).toHaveLength(new Set(plan.map((t) => t.topic)).size);
    for (const name of Object.values(config.topics)) expect(plan.map((t) => t.topic)).toContain(name);
    expect(plan.find((t) => t.topic === 'usage-aggregates')).toMatchObject({ partitions: 12, compacted: true, roles: ['pipeline', 'api'] });
    expect(plan.find((t) => t.topic === 'ordo-schemas')).toMatchObject({ partitions: 1, compacted: true, roles: ['pipeline', 'api', 'ingest', 'deliver'] });
    expect(plan.find((t) => t.topic === 'usage-events')).toMatchObject({ partitions: 12, roles: ['pipeline', 'ingest'] });
    expect(plan.find((t) => t.topic === 'usage-events-global')).toMatchObject({ partitions: 1, roles: ['merge', 'deliver'] });
    expect(plan.find((t) => t.topic === 'ordo-deliver-sessions')).toMatchObject({ partitions: 1, compacted: true, roles: ['deliver'] });
    expect(plan.find((t) => t.topic === 'ordo-deliver-forward')).toMatchObject({ partitions: 1, configs: { 'retention.ms': '3600000' }, roles: ['deliver'] });
    expect(plan.find((t) => t.topic === 'usage-events-ordered')).toMatchObject({ partitions: 12, compacted: false, roles: ['pipeline', 'merge', 'deliver', 'api'] });
    expect(plan.find((t) => t.topic === 'ordo-deletions')).toMatchObject({ partitions: 1, compacted: true, roles: ['pipeline', 'api', 'deliver'] });
    expect(plan.find((t) => t.topic === 'ordo-dlq-replays')).toMatchObject({ partitions: 1, compacted: true, roles: ['api'] });
    expect(plan.find((t) => t.topic === 'usage-events-duplicates')).toMatchObject({ partitions: 12, configs: { 'retention.ms': '604800000' }, roles: ['pipeline', 'api'] });
    const changelogs = plan.filter((t) => t.topic.endsWith('-changelog'));
    expect(changelogs.every((t) => t.compacted && t.mustMatchPartitions)).toBe(true);
  });

  it('prints a table with the replication factor and cleanup policy', () => {
    const table = formatPlan(topicPlan(config, 12), 3).split('\n');
    expect(table[0]).toMatch(/^topic\s+partitions\s+replication\s+cleanup\.policy\s+roles$/);
    expect(table).toContainEqual(expect.stringMatching(/^g-meta-changelog\s+12\s+3\s+compact\s+pipeline$/));
  });
});

describe('the topics in the docs', () => {
  it('docs/operations.md#topics has the table the code gives: every topic, its partitions, policy and roles', () => {
    expect(readDoc('docs/operations.md')).toContain(topicTable());
  });

  it('names each topic by the variable that really renames it', () => {
    const defaults = loadConfig({});
    for (const t of topicPlan(defaults, 3)) {
      const variable = topicVariable(defaults, t.topic);
      const renamed = topicPlan(loadConfig({ [variable]: 'renamed' }), 3).map((p) => p.topic);
      expect(renamed, `${variable} renames ${t.topic}`).not.toContain(t.topic);
    }
  });

  it("README's topic table has a row for every topic and no other", () => {
    const readme = readDoc('README.md');
    const section = readme.slice(readme.indexOf('### Topics'), readme.indexOf('### Schema'));
    const names = section
      .split('\n')
      .filter((line) => line.startsWith('| `'))
      .flatMap((line) => [...(line.split('|')[1] ?? '').matchAll(/`([^`]+)`/g)].map((m) => m[1]!.replace('<group>', config.groupId)));
    expect(names.sort()).toEqual(topicPlan(config, 12).map((t) => t.topic).sort());
  });

  it('docs/operations.md lists its sections in its contents', () => {
    const runbook = readDoc('docs/operations.md');
    expect(runbook).toContain(`## Contents\n\n${contents(runbook)}\n\n## `);
  });
});
