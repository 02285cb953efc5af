import { partitionOf } from '../kafka/partition-of.js';

/** What an api replica says about itself in its heartbeats (the `ordo-api-nodes` topic, NodeRegistry info). */
export interface ApiNodeInfo {
  /** Where its internal route answers (ORDO_API_ADVERTISED_URL). */
  url: string;
  /** Partitions of the aggregates topic the group assigned to it. */
  owned: number[];
  /** Every partition its store holds (owned or left from an earlier assignment): how far, the log end it saw, whether it is still restoring. */
  held: Record<string, { next: string; end: string | null; restoring: boolean }>;
  /** Aggregates it applied whose subject does not hash to the partition they came from: routers then fan single subjects out. */
  misplaced: number;
  /** The aggregates topic's partition count as it knows it (0: not known yet). */
  partitions: number;
}

/** The info of a heartbeat, or undefined when it is not an api replica's (or garbled): such a node is not routed to. */
export function decodeApiNodeInfo(info: unknown): ApiNodeInfo | undefined {
  if (typeof info !== 'object' || info === null || Array.isArray(info)) return undefined;
  const { url, owned, held, misplaced, partitions } = info as Record<string, unknown>;
  if (typeof url !== 'string' || !/^https?:\/\//.test(url)) return undefined;
  if (!Array.isArray(owned) || !owned.every(isPartition)) return undefined;
  if (typeof held !== 'object' || held === null || Array.isArray(held)) return undefined;
  for (const [p, h] of Object.entries(held as Record<string, unknown>)) {
    if (!isPartition(Number(p)) || typeof h !== 'object' || h === null) return undefined;
    const { next, end, restoring } = h as Record<string, unknown>;
    if (!isOffset(next) || (end !== null && !isOffset(end)) || typeof restoring !== 'boolean') return undefined;
  }
  if (typeof misplaced !== 'number' || !Number.isSafeInteger(misplaced) || misplaced < 0) return undefined;
  if (typeof partitions !== 'number' || !Number.isSafeInteger(partitions) || partitions < 0) return undefined;
  return info as ApiNodeInfo;
}

function isPartition(p: unknown): p is number {
  return typeof p === 'number' && Number.isSafeInteger(p) && p >= 0;
}

function isOffset(o: unknown): o is string {
  return typeof o === 'string' && /^\d{1,20}$/.test(o);
}

/** One node's share of a query. */
export interface Route {
  node: string;
  url: string;
  partitions: number[];
  /** Records behind the log end in those partitions, as its last heartbeat said. */
  lagRecords: number;
}

export interface RoutePlan {
  routes: Route[];
  /** Needed partitions no live node holds a consistent copy of. */
  missing: number[];
}

/**
 * The partitions a query needs: a subject's aggregates live in its input partition (the
 * pipeline keeps the index), so listed subjects need theirs only, unless some replica saw a
 * misplaced aggregate (a producer with another partitioner): then every partition, as for all subjects.
 */
export function neededPartitions(subjects: readonly string[] | undefined, partitions: number, misplaced: boolean): number[] {
  if (subjects === undefined || misplaced) return Array.from({ length: partitions }, (_, p) => p);
  return [...new Set(subjects.map((s) => partitionOf(s, partitions)))].sort((a, b) => a - b);
}

/**
 * Which live node serves each needed partition (pure): its owner unless the owner is still
 * restoring it, else the live node whose consistent copy is furthest ahead (stale but exact;
 * the answer's freshness says how stale). Two nodes claiming a partition (the registry lags
 * a rebalance by a heartbeat) are two holders: the one further ahead serves. Nodes in
 * `exclude` (they did not answer) are passed over; what nobody can serve is `missing`. Ties
 * go to `self` (no hop), then to the smaller node id, so every replica routes alike.
 */
export function routePartitions(needed: readonly number[], nodes: ReadonlyMap<string, ApiNodeInfo>, options: { self?: string; exclude?: ReadonlySet<string> } = {}): RoutePlan {
  const byNode = new Map<string, Route>();
  const missing: number[] = [];
  for (const p of [...new Set(needed)].sort((a, b) => a - b)) {
    let best: { node: string; info: ApiNodeInfo; next: bigint; owner: boolean; lag: number } | undefined;
    for (const [node, info] of nodes) {
      if (options.exclude?.has(node)) continue;
      const held = info.held[String(p)];
      if (held === undefined || held.restoring) continue;
      const next = BigInt(held.next);
      const owner = info.owned.includes(p);
      const lag = held.end === null ? 0 : Math.max(0, Number(BigInt(held.end) - next));
      const better =
        best === undefined ||
        (owner && !best.owner) ||
        (owner === best.owner && (next > best.next || (next === best.next && (node === options.self || (best.node !== options.self && node < best.node)))));
      if (better) best = { node, info, next, owner, lag };
    }
    if (best === undefined) {
      missing.push(p);
      continue;
    }
    const route = byNode.get(best.node) ?? { node: best.node, url: best.info.url, partitions: [], lagRecords: 0 };
    route.partitions.push(p);
    route.lagRecords += best.lag;
    byNode.set(best.node, route);
  }
  return { routes: [...byNode.values()].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0)), missing };
}
