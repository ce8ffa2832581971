/**
 * A map that is also kept in key order: point reads through a hash map (O(1)), ordered walks
 * from any key through a B+ tree (O(log n + k)). The mirror's indexes need both: status of
 * one unit by name, and pages of units in name order.
 */
import BTreeModule from 'sorted-btree';

const BTree = BTreeModule.default;

/** Plain string order, the order etcd keeps keys in. */
export function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A string-keyed map with ordered iteration. */
export class SortedMap<V> {
  private readonly byKey = new Map<string, V>();
  private readonly ordered = new BTree<string, V>(undefined, compareNames);

  get size(): number {
    return this.byKey.size;
  }

  get(key: string): V | undefined {
    return this.byKey.get(key);
  }

  has(key: string): boolean {
    return this.byKey.has(key);
  }

  set(key: string, value: V): void {
    this.byKey.set(key, value);
    this.ordered.set(key, value);
  }

  delete(key: string): void {
    if (this.byKey.delete(key)) this.ordered.delete(key);
  }

  /** Keys in order. */
  keys(): IterableIterator<string> {
    return this.ordered.keys();
  }

  /** Entries in key order, from `from` (included) on. */
  entries(from?: string): IterableIterator<[string, V]> {
    return this.ordered.entries(from);
  }

  /**
   * Entries in no set order, by a Map's iterator: it may be walked across turns of the event
   * loop while the map changes (entries deleted meanwhile are skipped, new ones are visited).
   */
  unorderedEntries(): IterableIterator<[string, V]> {
    return this.byKey.entries();
  }
}
