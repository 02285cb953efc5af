import { KafkaJSError, type Kafka, type Producer, type ProducerConfig } from 'kafkajs';

/**
 * How the `n`-th transaction commit fails: `lost-response` commits, then reports an error (a
 * lost EndTxn response: the outcome is unknown to the caller); `coordinator-gone` fails
 * before committing, as kafkajs does while a restarted broker's transaction coordinator is
 * not found yet ("Failed to find group coordinator").
 */
export type CommitFault = 'lost-response' | 'coordinator-gone';

/** Wraps `kafka` so that the commits numbered in `failOn` (1-based, across all its producers) fail as given. */
export function faultyCommits(base: Kafka, failOn: Map<number, CommitFault>): { kafka: Kafka; injected: () => number } {
  let commits = 0;
  let injected = 0;
  const producer = base.producer.bind(base);
  const wrapped = Object.create(base) as Kafka;
  wrapped.producer = (config?: ProducerConfig): Producer => {
    const p = producer(config);
    const transaction = p.transaction.bind(p);
    p.transaction = async () => {
      const tx = await transaction();
      const commit = tx.commit.bind(tx);
      tx.commit = async () => {
        commits += 1;
        const fault = failOn.get(commits);
        if (fault === 'coordinator-gone') {
          injected += 1;
          throw new KafkaJSError('simulated: Failed to find group coordinator', { retriable: false });
        }
        await commit();
        if (fault === 'lost-response') {
          injected += 1;
          throw new KafkaJSError('simulated: EndTxn response lost after the commit happened', { retriable: true });
        }
      };
      return tx;
    };
    return p;
  };
  return { kafka: wrapped, injected: () => injected };
}

/** Wraps `kafka` so that the `n`-th transaction commit really commits, then reports an error (a lost EndTxn response). */
export function lossyCommits(base: Kafka, failOn: Set<number>): { kafka: Kafka; injected: () => number } {
  return faultyCommits(base, new Map([...failOn].map((n) => [n, 'lost-response' as const])));
}
