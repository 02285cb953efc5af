import { AssignerProtocol, type PartitionAssigner } from 'kafkajs';

/** The assigner's name in the group protocol: every member of the group must offer it. */
export const STICKY_ASSIGNER = 'ordo-sticky';
const VERSION = 1;

/** What a member says about itself when it joins: its node id and how far its local store holds each partition. */
export interface MemberState {
  node: string;
  /** partition -> next offset to read (the store's checkpoint). */
  held: ReadonlyMap<number, bigint>;
}

export interface AssignerMember extends MemberState {
  memberId: string;
}

/** The member metadata's userData: JSON `{ node, held: { partition: nextOffset } }` (offsets as decimal strings). */
export function encodeMemberState(state: MemberState): Buffer {
  const held: Record<string, string> = {};
  for (const [partition, next] of [...state.held].sort((a, b) => a[0] - b[0])) held[String(partition)] = next.toString();
  return Buffer.from(JSON.stringify({ node: state.node, held }), 'utf8');
}

/** The userData of a member; undefined when it is not ours (another client, a garbled value): such a member holds nothing. */
export function decodeMemberState(userData: Buffer | null | undefined): MemberState | undefined {
  if (userData === null || userData === undefined || userData.length === 0) return undefined;
  let o: unknown;
  try {
    o = JSON.parse(userData.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof o !== 'object' || o === null) return undefined;
  const { node, held } = o as Record<string, unknown>;
  if (typeof node !== 'string' || typeof held !== 'object' || held === null || Array.isArray(held)) return undefined;
  const map = new Map<number, bigint>();
  for (const [key, value] of Object.entries(held)) {
    const partition = Number(key);
    if (!Number.isSafeInteger(partition) || partition < 0 || typeof value !== 'string' || !/^\d{1,20}$/.test(value)) return undefined;
    map.set(partition, BigInt(value));
  }
  return { node, held: map };
}

/**
 * Every partition to exactly one member, balanced (counts differ by at most one), and sticky:
 * partitions go first to the member whose store holds them furthest, strongest claims first,
 * as long as that member has room. So a restart or a scale-out moves as few partitions as
 * balance needs, and a moved partition goes where the least is left to read. Deterministic
 * (ties by partition and member id): every leader computes the same assignment.
 *
 * "Room": with P partitions and n members each gets ⌊P/n⌋, and exactly P mod n of them one
 * more. A claim is refused only when its member is full, which the property tests check.
 */
export function assign(members: readonly AssignerMember[], partitions: readonly number[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  const ids = [...new Set(members.map((m) => m.memberId))].sort();
  for (const id of ids) out.set(id, []);
  if (ids.length === 0) return out;
  const wanted = [...new Set(partitions)].sort((a, b) => a - b);
  const floor = Math.floor(wanted.length / ids.length);
  let extra = wanted.length % ids.length;
  const taken = new Set<number>();
  const room = (id: string): boolean => {
    const count = out.get(id)!.length;
    return count < floor || (count === floor && extra > 0);
  };
  const give = (id: string, partition: number): void => {
    const mine = out.get(id)!;
    if (mine.length === floor) extra -= 1;
    mine.push(partition);
    taken.add(partition);
  };
  const wantedSet = new Set(wanted);
  const claims: { partition: number; memberId: string; next: bigint }[] = [];
  for (const m of members) {
    for (const [partition, next] of m.held) if (wantedSet.has(partition)) claims.push({ partition, memberId: m.memberId, next });
  }
  claims.sort((a, b) => (a.next !== b.next ? (a.next > b.next ? -1 : 1) : a.partition - b.partition || (a.memberId < b.memberId ? -1 : a.memberId > b.memberId ? 1 : 0)));
  for (const claim of claims) if (!taken.has(claim.partition) && room(claim.memberId)) give(claim.memberId, claim.partition);
  for (const partition of wanted) {
    if (taken.has(partition)) continue;
    // The emptiest member with room (ties by id): floor is filled before anyone gets an extra.
    let best: string | undefined;
    for (const id of ids) if (room(id) && (best === undefined || out.get(id)!.length < out.get(best)!.length)) best = id;
    give(best!, partition);
  }
  for (const list of out.values()) list.sort((a, b) => a - b);
  return out;
}

/**
 * The kafkajs adapter: `state()` is asked at every join (the store's checkpoints then), and
 * the group leader runs `assign` per subscribed topic over every member's state.
 */
export function stickyAssigner(state: () => MemberState): PartitionAssigner {
  return ({ cluster }) => ({
    name: STICKY_ASSIGNER,
    version: VERSION,
    assign({ members, topics }) {
      const decoded: AssignerMember[] = members.map(({ memberId, memberMetadata }) => {
        const own = decodeMemberState(AssignerProtocol.MemberMetadata.decode(memberMetadata)?.userData);
        return { memberId, node: own?.node ?? memberId, held: own?.held ?? new Map() };
      });
      const byMember = new Map<string, Record<string, number[]>>(decoded.map((m) => [m.memberId, {}]));
      for (const topic of topics) {
        const partitions = cluster.findTopicPartitionMetadata(topic).map((p) => p.partitionId);
        // The held offsets are of this topic: the api group subscribes to one topic only.
        for (const [memberId, list] of assign(decoded, partitions)) byMember.get(memberId)![topic] = list;
      }
      return Promise.resolve(
        [...byMember].map(([memberId, assignment]) => ({
          memberId,
          memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: VERSION, assignment, userData: Buffer.alloc(0) }),
        })),
      );
    },
    protocol({ topics }) {
      return { name: STICKY_ASSIGNER, metadata: AssignerProtocol.MemberMetadata.encode({ version: VERSION, topics, userData: encodeMemberState(state()) }) };
    },
  });
}
