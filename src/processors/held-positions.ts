import type { StoreCodec } from '../model/store.js';
import type { HeldPosition } from './order.js';

const VERSION = 1;

/**
 * The reorder store's one value, compact: a version byte, the stamp nodes once, then per
 * held event (by offset) the offset and stamp time as varint deltas and the node's index.
 * A few bytes per held event, so rewriting the whole set with a batch stays cheap.
 */
export const heldPositionsCodec: StoreCodec<HeldPosition[]> = {
  encode(positions) {
    const sorted = [...positions].sort((a, b) => (a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0));
    const nodes = [...new Set(sorted.map((p) => p.stamp.node))];
    const index = new Map(nodes.map((node, i) => [node, i]));
    const out = new Writer();
    out.byte(VERSION);
    out.varint(BigInt(nodes.length));
    for (const node of nodes) out.text(node);
    out.varint(BigInt(sorted.length));
    let offset = 0n;
    let time = 0n;
    for (const p of sorted) {
      out.varint(p.offset - offset);
      out.varint(zigzag(p.stamp.time - time));
      out.varint(BigInt(index.get(p.stamp.node)!));
      offset = p.offset;
      time = p.stamp.time;
    }
    return out.done();
  },
  decode(bytes) {
    const input = new Reader(bytes);
    const version = input.byte();
    if (version !== VERSION) throw new Error(`held positions: unknown format version ${version}`);
    const nodes: string[] = [];
    for (let n = Number(input.varint()); n > 0; n--) nodes.push(input.text());
    const positions: HeldPosition[] = [];
    let offset = 0n;
    let time = 0n;
    for (let n = Number(input.varint()); n > 0; n--) {
      offset += input.varint();
      time += unzigzag(input.varint());
      const node = nodes[Number(input.varint())];
      if (node === undefined) throw new Error('held positions: node index out of range');
      positions.push({ offset, stamp: { time, node } });
    }
    if (!input.atEnd) throw new Error('held positions: trailing bytes');
    return positions;
  },
};

function zigzag(n: bigint): bigint {
  return n < 0n ? (-n << 1n) - 1n : n << 1n;
}

function unzigzag(n: bigint): bigint {
  return n & 1n ? -((n + 1n) >> 1n) : n >> 1n;
}

class Writer {
  private readonly bytes: number[] = [];

  byte(b: number): void {
    this.bytes.push(b);
  }

  varint(n: bigint): void {
    if (n < 0n) throw new RangeError(`varint of a negative number: ${n}`);
    while (n >= 0x80n) {
      this.bytes.push(Number(n & 0x7fn) | 0x80);
      n >>= 7n;
    }
    this.bytes.push(Number(n));
  }

  text(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.varint(BigInt(b.length));
    for (const x of b) this.bytes.push(x);
  }

  done(): Buffer {
    return Buffer.from(this.bytes);
  }
}

class Reader {
  private at = 0;

  constructor(private readonly bytes: Buffer) {}

  get atEnd(): boolean {
    return this.at === this.bytes.length;
  }

  byte(): number {
    const b = this.bytes[this.at++];
    if (b === undefined) throw new Error('held positions: truncated');
    return b;
  }

  varint(): bigint {
    let n = 0n;
    for (let shift = 0n; ; shift += 7n) {
      if (shift > 70n) throw new Error('held positions: varint too long');
      const b = this.byte();
      n |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return n;
    }
  }

  text(): string {
    const length = Number(this.varint());
    if (this.at + length > this.bytes.length) throw new Error('held positions: truncated');
    const s = this.bytes.toString('utf8', this.at, this.at + length);
    this.at += length;
    return s;
  }
}
