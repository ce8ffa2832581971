/**
 * Writing one unit record when its instance may be counted (instance-counts.ts): every
 * per-instance write (start, stop, set a desired state, submit a file of its own, destroy, a
 * rollout's step) goes through {@link queueUnitWrite}. For an instance only a count record
 * holds, the write MATERIALISES it: in the same transaction the count record is put without
 * its number (deleted when that was its last), compared with the revision the writer read,
 * and `units/<instance>` is created (or, for a destroy, nothing). Several instances of one
 * count in one batch become ONE put of the count record.
 *
 * A destroy of a real record also takes its number out of the count when the count holds it
 * too (the real record only hid it), so a destroyed instance never comes back counted.
 */
import type { InstanceCount } from '../proto/flotilla/v1/counts.js';
import type { NumberRange, Unit } from '../proto/flotilla/v1/records.js';
import { inSpans, instanceNumber } from '../lib/number-ranges.js';
import type { Batch } from './batch.js';
import type { Versioned } from './client.js';
import { countedIn } from './counted-units.js';
import { StoreError } from './errors.js';
import { instanceOf, MAX_COUNT_RANGES, removeNumbers } from './instance-counts.js';
import type { Keys } from './keys.js';
import { templateOf } from './mirror.js';
import { codecs } from './records.js';

/**
 * What a writer read: units (real, and counted ones marked `countedIn`) and count records.
 * The cluster mirror is one; a writer that read etcd itself passes what it read.
 */
export interface CountView {
  readonly units: { get(name: string): Versioned<Unit> | undefined };
  readonly counts: { get(template: string): Versioned<InstanceCount> | undefined };
}

/** One count record's edit within one batch. */
interface CountEdit {
  readonly count: Versioned<InstanceCount>;
  readonly removed: number[];
}

const edits = new WeakMap<Batch, Map<string, CountEdit>>();

/**
 * Queues writing unit `name`'s record: `next` (undefined: delete it) over `current`, the
 * record as the writer read it (undefined: absent). A real record is compared with its mod
 * revision as ever; a counted one is materialised (the module comment). Throws StoreError
 * `conflict` when the view no longer shows what the writer read, for the writer to decide
 * again.
 */
export function queueUnitWrite(
  keys: Keys,
  batch: Batch,
  view: CountView,
  name: string,
  next: Unit | undefined,
  current: Versioned<Unit> | undefined,
): void {
  const key = keys.unit(name);
  const json = next === undefined ? undefined : codecs.unit.encode(next);
  if (current === undefined) {
    if (json === undefined) return;
    if (view.units.get(name) !== undefined) throw changed(name);
    batch.putIfAbsent(key, json);
    return;
  }
  const template = countedIn(current);
  if (template === undefined) {
    if (json === undefined) batch.deleteIfModRevision(current.key, current.modRevision);
    else batch.putIfModRevision(current.key, json, current.modRevision);
    const t = json === undefined ? templateOf(name) : undefined;
    const n = instanceNumber(name);
    const count = t === undefined ? undefined : view.counts.get(t);
    if (count !== undefined && n !== undefined && inSpans(count.value.ranges, n)) {
      takeOut(keys, batch, count, n);
    }
    return;
  }
  const count = view.counts.get(template);
  const n = instanceNumber(name);
  if (view.units.get(name) !== current || count === undefined || n === undefined) {
    throw changed(name);
  }
  if (!inSpans(count.value.ranges, n)) throw changed(name);
  if (json !== undefined) batch.putIfAbsent(key, json);
  takeOut(keys, batch, count, n);
}

/** Puts the count record without `n` (and whatever else this batch took out of it). */
function takeOut(keys: Keys, batch: Batch, count: Versioned<InstanceCount>, n: number): void {
  let mine = edits.get(batch);
  if (mine === undefined) edits.set(batch, (mine = new Map()));
  let edit = mine.get(count.key);
  if (edit === undefined) mine.set(count.key, (edit = { count, removed: [] }));
  else if (edit.count.modRevision !== count.modRevision) {
    throw changed(count.value.template); // two reads of one count disagree: read again
  }
  edit.removed.push(n);
  let ranges = removeNumbers(count.value.ranges, edit.removed);
  ranges = unfragment(keys, batch, count.value, ranges, edit.removed);
  if (ranges.length === 0) {
    batch.set({ type: 'delete', key: count.key, condition: { modRevision: count.modRevision } });
    return;
  }
  const value = codecs['instance-count'].encode({ ...count.value, ranges });
  batch.set({
    type: 'put',
    key: count.key,
    value: Buffer.from(value),
    condition: { modRevision: count.modRevision },
  });
}

/**
 * Ranges within {@link MAX_COUNT_RANGES}: while taking numbers out left more, the numbers of
 * the smallest range become real records of their own (created from the count's record), so
 * the count stays bounded. Rare: it takes over 1,000 holes in one count.
 */
function unfragment(
  keys: Keys,
  batch: Batch,
  count: InstanceCount,
  ranges: NumberRange[],
  removed: number[],
): NumberRange[] {
  let out = ranges;
  while (out.length > MAX_COUNT_RANGES) {
    let smallest = 0;
    out.forEach((r, i) => {
      const s = out[smallest] as NumberRange;
      if (r.last - r.first < s.last - s.first) smallest = i;
    });
    const r = out[smallest] as NumberRange;
    for (let n = r.first; n <= r.last; n++) {
      const name = instanceOf(count.template, n);
      const { file, hash, desiredState } = count;
      const unit: Unit = { name, file, hash, desiredState };
      batch.putIfAbsent(keys.unit(name), codecs.unit.encode(unit));
      removed.push(n);
    }
    out = out.filter((_, i) => i !== smallest);
  }
  return out;
}

function changed(name: string): StoreError {
  return new StoreError(
    'conflict',
    `${name} changed since it was read (a scale or another write of its instances); read it again`,
  );
}
