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
import type { NumberRange, Unit } from '../proto/flotilla/v1/records.js';
import { inSpans, instanceNumber, spanCount } from '../lib/number-ranges.js';
import type { CacheEntry } from './cache.js';
import type { Versioned } from './client.js';
import { instanceOf, numbersOf, subtractRanges } from './instance-counts.js';
import type { Keys } from './keys.js';
import type { SortedMap } from './sorted-map.js';

/** Numbers filed between two turns of the event loop, at most, by {@link CountedUnits.fileSteps}. */
export const FILE_STEP = 256;

/** What a change of a count record files: see {@link CountedUnits.change}. */
export interface CountFiling {
  readonly template: string;
  readonly next: CacheEntry<InstanceCount> | undefined;
  /** Numbers the count no longer holds. */
  readonly removed: readonly NumberRange[];
  /** Numbers whose counted entry is new or changes. */
  readonly refile: readonly NumberRange[];
  /** How many numbers in all. */
  readonly size: number;
}

/** Told of each instance name whose entry may change, with the function that files it. */
export type Touched = (name: string, apply: () => void) => void;

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
   * corrupt): from now on `counts` holds `next`. Returns the numbers to file, which
   * {@link CountedUnits.fileSteps} (all of them) or {@link CountedUnits.fileName} (one) then
   * file: O(numbers added or removed), or O(numbers) when the file, hash or desired state
   * changed (every counted instance then changes).
   */
  change(template: string, next: CacheEntry<InstanceCount> | undefined): CountFiling {
    const prev = this.counts.get(template);
    if (next === undefined) this.counts.delete(template);
    else this.counts.set(template, next);
    const before = prev?.value.ranges ?? [];
    const after = next?.value.ranges ?? [];
    const removed = subtractRanges(before, after);
    const changed = prev !== undefined && next !== undefined && !sameInstances(prev, next);
    // Without `next` nothing is added: its ranges are empty.
    const refile = next === undefined ? [] : changed ? after : subtractRanges(after, before);
    return {
      template,
      next,
      removed,
      refile,
      size: spanCount(removed) + spanCount(refile),
    };
  }

  /**
   * Files every number of `filing`, yielding every {@link FILE_STEP} numbers so a caller may
   * spread the work over turns. Calls `touched` with each instance name whose entry may
   * change, BEFORE it changes, with the function that files it. A number already filed (by
   * {@link CountedUnits.fileName}, or a real record of that name) is passed over.
   */
  *fileSteps(filing: CountFiling, touched: Touched): Generator<void, void, undefined> {
    let n = 0;
    for (const number of numbersOf(filing.removed)) {
      if (++n % FILE_STEP === 0) yield;
      this.removeNumber(filing, instanceOf(filing.template, number), touched);
    }
    for (const number of numbersOf(filing.refile)) {
      if (++n % FILE_STEP === 0) yield;
      this.addNumber(filing, instanceOf(filing.template, number), touched);
    }
  }

  /** Files `name` now if `filing` holds its number (before the rest of it). */
  fileName(filing: CountFiling, name: string, touched: Touched): void {
    const n = instanceNumber(name);
    if (n === undefined || instanceOf(filing.template, n) !== name) return;
    if (inSpans(filing.removed, n)) this.removeNumber(filing, name, touched);
    else if (inSpans(filing.refile, n)) this.addNumber(filing, name, touched);
  }

  private removeNumber(filing: CountFiling, name: string, touched: Touched): void {
    if (countedIn(this.units.get(name)) === undefined) return; // a real record wins, or gone
    touched(name, () => this.remove(filing.template, name));
  }

  private addNumber(filing: CountFiling, name: string, touched: Touched): void {
    const { next } = filing;
    if (next === undefined) return; // unreachable: refile is empty without next
    const shown = this.units.get(name);
    if (shown !== undefined) {
      if (countedIn(shown) === undefined) return; // a real record wins
      if (shown.modRevision === next.modRevision) return; // filed already
    }
    touched(name, () => this.add(filing.template, name, next));
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
