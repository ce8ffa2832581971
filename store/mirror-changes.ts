/**
 * The changes the cluster mirror (mirror.ts) tells its consumers about, and how it gathers
 * one revision's changes: a unit's changes within one revision are netted into one, so a
 * transaction that takes an instance out of its count record and writes its own record shows
 * as one change of that instance (its counted entry replaced by the real one), never as a
 * delete followed by a create.
 */
import type { Unit } from '../proto/flotilla/v1/records.js';
import type { CacheChange, CacheEntry } from './cache.js';
import type { KeyKind, ParsedKey } from './keys.js';
import type { RecordKind, RecordTypes } from './records.js';

/** A record of the mirror: its kind (from its key), names, and decoded value. */
export type MirrorRecord =
  | {
      [K in RecordKind]: {
        readonly kind: K;
        readonly key: ParsedKey;
        readonly value: RecordTypes[K];
      };
    }[RecordKind]
  | { readonly kind: 'election'; readonly key: ParsedKey; readonly value: string }
  | { readonly kind: 'other'; readonly key: undefined; readonly value: null };

/** One change as consumers see it: the key's kind and names with the cache change. */
export interface MirrorChange {
  readonly kind: KeyKind | 'other';
  readonly parsed: ParsedKey | undefined;
  readonly change: CacheChange<MirrorRecord>;
}

/** A batch of changes at one revision (one watch response, or a re-list's difference). */
export interface MirrorEvent {
  readonly revision: bigint;
  /** True for a listing (the first, or a re-list after compaction). */
  readonly resync: boolean;
  readonly changes: readonly MirrorChange[];
}

/**
 * The change readers saw of unit `name`, from entry `before` to entry `after` (either may be
 * undefined: absent), or undefined when it is the same entry.
 */
export function unitChange(
  name: string,
  before: CacheEntry<Unit> | undefined,
  after: CacheEntry<Unit> | undefined,
  revision: bigint,
  synthetic: boolean,
): MirrorChange | undefined {
  if (before === after) return undefined;
  const parsed: ParsedKey = { kind: 'unit', name };
  const record = (e: CacheEntry<Unit>): MirrorRecord => ({
    kind: 'unit',
    key: parsed,
    value: e.value,
  });
  let change: CacheChange<MirrorRecord>;
  if (after !== undefined) {
    const value = record(after);
    const entry: CacheEntry<MirrorRecord> = { ...after, value };
    const put = { type: 'put' as const, key: after.key, value, entry, revision, synthetic };
    change = before === undefined ? put : { ...put, prev: record(before) };
  } else if (before !== undefined) {
    change = { type: 'delete', key: before.key, prev: record(before), revision, synthetic };
  } else {
    return undefined;
  }
  return { kind: 'unit', parsed, change };
}

/** One revision's changes as they are indexed, with each unit's changes netted. */
export class ChangeBatch {
  private list: (MirrorChange | undefined)[] = [];
  /** Unit name -> where its change is in `list`. */
  private readonly units = new Map<string, number>();

  get size(): number {
    return this.list.length;
  }

  /** The names of the units changed so far. */
  unitNames(): IterableIterator<string> {
    return this.units.keys();
  }

  push(change: MirrorChange): void {
    const name = change.kind === 'unit' ? change.parsed?.name : undefined;
    const at = name === undefined ? undefined : this.units.get(name);
    const first = at === undefined ? undefined : this.list[at];
    if (name === undefined || at === undefined || first === undefined) {
      if (name !== undefined) this.units.set(name, this.list.length);
      this.list.push(change);
      return;
    }
    if (first.change.revision !== change.change.revision) {
      this.units.set(name, this.list.length);
      this.list.push(change);
      return;
    }
    // One revision, two changes of one unit: what was before the first, what is after the last.
    const prev = first.change.prev;
    const next = change.change;
    if (next.type === 'delete' && prev === undefined) {
      this.list[at] = undefined; // created and gone within the revision
      this.units.delete(name);
      return;
    }
    let merged: CacheChange<MirrorRecord>;
    if (next.type === 'delete') {
      merged = { ...next, prev: prev ?? next.prev };
    } else {
      const { key, value, entry, revision, synthetic } = next;
      const put = { type: 'put' as const, key, value, entry, revision, synthetic };
      merged = prev === undefined ? put : { ...put, prev };
    }
    this.list[at] = { ...change, change: merged };
  }

  /** The changes gathered, in order; the batch starts empty again. */
  take(): MirrorChange[] {
    const out = this.list.filter((c): c is MirrorChange => c !== undefined);
    this.list = [];
    this.units.clear();
    return out;
  }
}
