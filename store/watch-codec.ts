/**
 * etcd's Watch messages, encoded and decoded by hand for the one stream every replica and
 * agent keeps open. Through etcd3's generic decoder each change cost a plain object per
 * message, four int64 fields turned into decimal strings by the `long` library (its slow
 * division loop: the largest single cost of a follower's ingestion in a 100,000-instance
 * scale) and then into bigints, and the key as a Buffer and then a string. Here a change is
 * read straight into the store's {@link KeyValue}: the key as a string, the value as a view
 * of the message's bytes (as before), revisions from their varints.
 *
 * Only what the watchers use is read (the header's revision, created, canceled and its
 * reason, the compact revision, and the events); any other field is skipped by its wire type,
 * so fields a newer etcd adds are ignored as protobuf requires.
 */
import type { KeyValue } from './client.js';
import { prefixRangeEnd } from './keys.js';

/** The gRPC method the codec is for. */
export const WATCH_METHOD = '/etcdserverpb.Watch/Watch';

/** One change: the key's new state (a delete's key-value has the key and revision only). */
export interface WatchEvent {
  readonly type: 'put' | 'delete';
  readonly kv: KeyValue;
  /** The value before the change, when the watch asked for it (`prevKv`) and etcd had it. */
  readonly prev: KeyValue | undefined;
}

/** One message of the stream. */
export interface WatchResponse {
  /** etcd's revision when it sent the message (a progress notification's point). */
  readonly revision: bigint;
  readonly created: boolean;
  readonly canceled: boolean;
  readonly cancelReason: string;
  /** Above 0 when the start revision was compacted: the oldest revision etcd still has. */
  readonly compactRevision: bigint;
  readonly events: WatchEvent[];
}

/** What a stream asks etcd. */
export type WatchRequest =
  | {
      readonly create: {
        /** Every key under it is watched. */
        readonly prefix: string;
        /** 0n (or absent): from now. */
        readonly startRevision?: bigint;
        readonly progressNotify?: boolean;
        readonly prevKv?: boolean;
      };
    }
  | { readonly progress: true };

const VARINT = 0;
const FIXED64 = 1;
const BYTES = 2;
const FIXED32 = 5;

/** Encodes a request (small and rare: a few per stream). */
export function encodeWatchRequest(request: WatchRequest): Buffer {
  if ('progress' in request) return Buffer.from([tag(3, BYTES), 0]);
  const c = request.create;
  const key = Buffer.from(c.prefix);
  const body: number[] = [];
  pushBytes(body, 1, key);
  pushBytes(body, 2, prefixRangeEnd(key));
  if ((c.startRevision ?? 0n) > 0n) {
    body.push(tag(3, VARINT));
    pushVarint(body, c.startRevision ?? 0n);
  }
  if (c.progressNotify === true) body.push(tag(4, VARINT), 1);
  if (c.prevKv === true) body.push(tag(6, VARINT), 1);
  const out: number[] = [tag(1, BYTES)];
  pushVarint(out, BigInt(body.length));
  return Buffer.from([...out, ...body]);
}

function tag(field: number, wire: number): number {
  return (field << 3) | wire;
}

function pushBytes(out: number[], field: number, bytes: Buffer): void {
  out.push(tag(field, BYTES));
  pushVarint(out, BigInt(bytes.length));
  for (const b of bytes) out.push(b);
}

function pushVarint(out: number[], value: bigint): void {
  let v = BigInt.asUintN(64, value);
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
}

/**
 * Decodes one message; a malformed one throws (gRPC then fails the stream, and the watcher
 * opens another, as for any stream error).
 */
export function decodeWatchResponse(buf: Buffer): WatchResponse {
  const r = new Reader(buf);
  const end = buf.length;
  let revision = 0n;
  let created = false;
  let canceled = false;
  let cancelReason = '';
  let compactRevision = 0n;
  const events: WatchEvent[] = [];
  while (r.pos < end) {
    const t = r.uint32();
    switch (t) {
      case tag(1, BYTES):
        revision = header(r, r.fieldEnd(end));
        break;
      case tag(3, VARINT):
        created = r.uint32() !== 0;
        break;
      case tag(4, VARINT):
        canceled = r.uint32() !== 0;
        break;
      case tag(5, VARINT):
        compactRevision = r.int64();
        break;
      case tag(6, BYTES):
        cancelReason = r.string(r.fieldEnd(end));
        break;
      case tag(11, BYTES):
        events.push(event(r, r.fieldEnd(end)));
        break;
      default:
        r.skip(t & 7, end);
    }
  }
  return { revision, created, canceled, cancelReason, compactRevision, events };
}

function header(r: Reader, end: number): bigint {
  let revision = 0n;
  while (r.pos < end) {
    const t = r.uint32();
    if (t === tag(3, VARINT)) revision = r.int64();
    else r.skip(t & 7, end);
  }
  return r.done(end, revision);
}

const EMPTY = Buffer.alloc(0);

function event(r: Reader, end: number): WatchEvent {
  let type: WatchEvent['type'] = 'put';
  let kv: KeyValue | undefined;
  let prev: KeyValue | undefined;
  while (r.pos < end) {
    const t = r.uint32();
    switch (t) {
      case tag(1, VARINT):
        type = r.uint32() === 1 ? 'delete' : 'put';
        break;
      case tag(2, BYTES):
        kv = keyValue(r, r.fieldEnd(end));
        break;
      case tag(3, BYTES):
        prev = keyValue(r, r.fieldEnd(end));
        break;
      default:
        r.skip(t & 7, end);
    }
  }
  if (kv === undefined) throw new Error('malformed etcd watch message: an event without its key');
  return r.done(end, { type, kv, prev });
}

function keyValue(r: Reader, end: number): KeyValue {
  let key = '';
  let value: Buffer = EMPTY;
  let createRevision = 0n;
  let modRevision = 0n;
  let version = 0n;
  let lease = 0n;
  while (r.pos < end) {
    const t = r.uint32();
    switch (t) {
      case tag(1, BYTES):
        key = r.string(r.fieldEnd(end));
        break;
      case tag(2, VARINT):
        createRevision = r.int64();
        break;
      case tag(3, VARINT):
        modRevision = r.int64();
        break;
      case tag(4, VARINT):
        version = r.int64();
        break;
      case tag(5, BYTES):
        value = r.bytes(r.fieldEnd(end));
        break;
      case tag(6, VARINT):
        lease = r.int64();
        break;
      default:
        r.skip(t & 7, end);
    }
  }
  return r.done(end, { key, value, createRevision, modRevision, version, lease });
}

/**
 * One message's bytes and the position read up to. A nested message or a field of bytes is
 * read up to the end {@link fieldEnd} gives; nothing is allocated but what is returned.
 */
class Reader {
  pos = 0;

  constructor(private readonly buf: Buffer) {}

  /** A varint that fits 32 bits (tags, lengths, booleans, enums). */
  uint32(): number {
    let value = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const b = this.byte();
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return value > 0xffffffff ? this.bad('a 32-bit varint overflows') : value;
    }
    return this.bad('a 32-bit varint is too long');
  }

  /**
   * An int64 varint. Revisions (below 2^49) are summed as numbers; only a longer one (a lease
   * id, which is random over 63 bits) is summed as a bigint.
   */
  int64(): bigint {
    let low = 0;
    let shift = 0;
    for (; shift < 49; shift += 7) {
      const b = this.byte();
      low += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return BigInt(low);
    }
    let value = BigInt(low);
    for (; shift < 70; shift += 7) {
      const b = this.byte();
      value |= BigInt(b & 0x7f) << BigInt(shift);
      if (b < 0x80) return BigInt.asIntN(64, value);
    }
    return this.bad('an int64 varint is too long');
  }

  /** Reads a length-delimited field's length: where it ends (within `end`, its container's). */
  fieldEnd(end: number): number {
    const length = this.uint32();
    const fieldEnd = this.pos + length;
    return fieldEnd > end ? this.bad('a field runs past its message') : fieldEnd;
  }

  string(end: number): string {
    const s = this.buf.toString('utf8', this.pos, end);
    this.pos = end;
    return s;
  }

  /** A view of the message's bytes, as gRPC's decoders give (no copy). */
  bytes(end: number): Buffer {
    const b = this.buf.subarray(this.pos, end);
    this.pos = end;
    return b;
  }

  skip(wire: number, end: number): void {
    switch (wire) {
      case VARINT:
        while (this.byte() >= 0x80);
        return;
      case FIXED64:
        return this.advance(8, end);
      case BYTES:
        this.pos = this.fieldEnd(end);
        return;
      case FIXED32:
        return this.advance(4, end);
      default:
        this.bad(`unknown wire type ${wire}`);
    }
  }

  /** `value`, once a nested message was read exactly to its end. */
  done<T>(end: number, value: T): T {
    return this.pos === end ? value : this.bad('a field runs past its message');
  }

  private advance(n: number, end: number): void {
    if (this.pos + n > end) this.bad('a field runs past its message');
    this.pos += n;
  }

  private byte(): number {
    if (this.pos >= this.buf.length) this.bad('a varint runs past its message');
    return this.buf[this.pos++] ?? 0;
  }

  private bad(why: string): never {
    throw new Error(`malformed etcd watch message: ${why} at byte ${this.pos}`);
  }
}
