/**
 * The mirror's side of `instance-counts/<template>` (instance-counts.ts): each number a count
 * record holds is filed in the mirror's `units` and `instances` indexes as if
 * `units/<template-prefix>@<n>.<type>` held the count's file, hash and desired state, so
 * every reader (the planner's cache, status, list-units, the fleet API, the console, watch)
 * sees the instances it saw when a scale wrote one record each.
 *
 * A change of a count files only the numbers it added or removed (the difference of the old
 * and new ranges); the entries of numbers it kept stay the same objects, with the same
 * revisions, so the leader does not plan them again. A real `units/` record of the same name
 * wins over a counted number: it is what readers see while it exists, and the counted entry
 * shows again when it is deleted while the count still holds the number.
 *
 * Counted entries carry `countedIn` (their template), so writers know to take the instance
 * out of the count before writing it (materialise.ts).
 */
import type { InstanceCount } from '../proto/flotilla/v1/counts.js';
import type { Unit } from '../proto/flotilla/v1/records.js';
import { inSpans, instanceNumber } from '../lib/number-ranges.js';
import type { CacheEntry } from './cache.js';
import type { Versioned } from './client.js';
import { instanceOf, numbersOf, subtractRanges } from './instance-counts.js';
import type { Keys } from './keys.js';
import type { SortedMap } from './sorted-map.js';

/** A mirror entry of an instance that only a count record holds. */
export interface CountedUnit extends CacheEntry<Unit> {
  /** The template whose `instance-counts/` record holds this instance. */
  readonly countedIn: string;
}

/** The template whose count record holds `entry`, when no real record of it exists. */
export function countedIn(entry: Versioned<Unit> | undefined): string | undefined {
  return (entry as Partial<CountedUnit> | undefined)?.countedIn;
}

/**
 * Files counted instances in the mirror's unit indexes. The caller reads what readers saw of
 * a name before and after (`units.get`) to tell consumers what changed.
 */
export class CountedUnits {
  /** Template name -> its count record. */
  readonly counts = new Map<string, CacheEntry<InstanceCount>>();

  constructor(
    private readonly keys: Keys,
    private readonly units: SortedMap<CacheEntry<Unit>>,
    private readonly instances: Map<string, Set<string>>,
  ) {}

  /**
   * The count record of `template` changed to `next` (undefined: deleted, or skipped as
   * corrupt). Calls `touched` with each instance name whose entry may change, BEFORE it
   * changes, then files it: O(numbers added or removed), or O(numbers) when the file, hash
   * or desired state changed (every counted instance then changes).
   */
  fileCount(
    template: string,
    next: CacheEntry<InstanceCount> | undefined,
    touched: (name: string, apply: () => void) => void,
  ): void {
    const prev = this.counts.get(template);
    if (next === undefined) this.counts.delete(template);
    else this.counts.set(template, next);
    const before = prev?.value.ranges ?? [];
    const after = next?.value.ranges ?? [];
    const removed = subtractRanges(before, after);
    const added = subtractRanges(after, before);
    for (const n of numbersOf(removed)) {
      const name = instanceOf(template, n);
      if (countedIn(this.units.get(name)) === undefined) continue; // a real record wins
      touched(name, () => this.remove(template, name));
    }
    const changed = prev !== undefined && next !== undefined && !sameInstances(prev, next);
    const refile = changed ? after : added;
    for (const n of numbersOf(refile)) {
      const name = instanceOf(template, n);
      const shown = this.units.get(name);
      if (shown !== undefined && countedIn(shown) === undefined) continue; // a real record wins
      if (next === undefined) continue; // unreachable: refile is empty without next
      touched(name, () => this.add(template, name, next));
    }
  }

  /**
   * A real `units/<name>` record was put (`entry`) or deleted (undefined): the real record is
   * filed, or on delete the counted entry shows again if the count still holds the number.
   */
  fileReal(name: string, template: string | undefined, entry: CacheEntry<Unit> | undefined): void {
    if (entry !== undefined) {
      this.units.set(name, entry);
      if (template !== undefined) member(this.instances, template, name, true);
      return;
    }
    const count = template === undefined ? undefined : this.counts.get(template);
    const n = instanceNumber(name);
    if (template !== undefined && count !== undefined && n !== undefined) {
      if (inSpans(count.value.ranges, n)) return this.add(template, name, count);
    }
    this.units.delete(name);
    if (template !== undefined) member(this.instances, template, name, false);
  }

  private add(template: string, name: string, count: CacheEntry<InstanceCount>): void {
    const { file, hash, desiredState } = count.value;
    const entry: CountedUnit = {
      key: this.keys.unit(name),
      value: { name, file, hash, desiredState },
      createRevision: count.modRevision,
      modRevision: count.modRevision,
      lease: 0n,
      countedIn: template,
    };
    this.units.set(name, entry);
    member(this.instances, template, name, true);
  }

  private remove(template: string, name: string): void {
    this.units.delete(name);
    member(this.instances, template, name, false);
  }
}

/** Whether two versions of a count give their instances the same record. */
function sameInstances(a: CacheEntry<InstanceCount>, b: CacheEntry<InstanceCount>): boolean {
  return (
    a.value.file === b.value.file &&
    a.value.hash === b.value.hash &&
    a.value.desiredState === b.value.desiredState
  );
}

function member(map: Map<string, Set<string>>, outer: string, name: string, on: boolean): void {
  let set = map.get(outer);
  if (on) {
    if (set === undefined) map.set(outer, (set = new Set()));
    set.add(name);
  } else if (set !== undefined) {
    set.delete(name);
    if (set.size === 0) map.delete(outer);
  }
}
