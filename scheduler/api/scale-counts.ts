/**
 * What a scale round writes to its template's count record (`instance-counts/<template>`,
 * store/instance-counts.ts): the numbers it creates, the counted numbers it destroys and the
 * counted instances it launches, as ONE put of that record (or its delete when no number is
 * left), compared with the revision the mirror showed (created only if absent). scale.ts
 * writes real instance records (those of an earlier version, or started by hand) as ever.
 *
 * New numbers go into the count when it gives them the template's current file: with no
 * count yet, or one whose file and hash are the template's. Otherwise (a rollout changed the
 * template since the count was written, or the numbers would need more than
 * MAX_COUNT_RANGES ranges) they are created as real records, as before counts existed.
 *
 * A round also folds up to {@link FOLD_LIMIT} kept real records that hold exactly what the
 * count gives (its file, its hash, launched) into it: deleted (compared with the revision
 * read) in the transaction that puts their numbers into the count, so readers see each one
 * change once, from its record to the same values counted. Records written by an earlier
 * version, or left by a rollout, return to the count this way, a scale at a time.
 */
import type { Unit } from '../../proto/flotilla/v1/records.js';
import type { InstanceCount } from '../../proto/flotilla/v1/counts.js';
import type { NumberRange } from '../../proto/flotilla/v1/records.js';
import { sameSpans } from '../../lib/number-ranges.js';
import {
  addNumbers,
  addRanges,
  codecs,
  countedIn,
  instanceOf,
  MAX_COUNT_RANGES,
  removeNumbers,
  toRanges,
  type BatchOp,
  type Versioned,
} from '../../store/index.js';
import type { UnitName } from '../../unit/index.js';
import type { ApiCluster } from './reads.js';

/** Real records folded into the count per scale round, at most (all in its transaction). */
export const FOLD_LIMIT = 100;

/** A numbered instance as scale reads it from the mirror. */
export interface NumberedInstance {
  readonly number: number;
  readonly record: Versioned<Unit>;
}

/** A round's change of the count record. */
export interface CountChange {
  /** The one op on the count record; undefined when it stays as it is. */
  readonly op: BatchOp | undefined;
  /** Deletes of the real records folded into the count: in the count op's transaction. */
  readonly folds: readonly BatchOp[];
  /** Numbers the op launches: created in the count, or counted and launched now. */
  readonly started: readonly NumberRange[];
  /** Counted numbers the op destroys. */
  readonly destroyed: readonly NumberRange[];
  /** Whether the op creates every number of `created`; if not, each needs a record of its own. */
  readonly createsAll: boolean;
}

/** What a scale round decided for the numbered instances. */
export interface RoundPlan {
  /** Kept (the lowest `count`), of which `idle` are not launched; only `keep` is folded. */
  readonly keep: readonly NumberedInstance[];
  readonly idle: readonly NumberedInstance[];
  readonly drop: readonly NumberedInstance[];
  /** The numbers to create, as ranges: a scale from 0 to 100,000 is one. */
  readonly created: readonly NumberRange[];
}

/**
 * The count record's part of a scale round (the module comment). Throws INVALID_ARGUMENT
 * (instanceRecords) when the template's file does not hold for a new instance, as a real
 * record would.
 */
export function countChange(
  cluster: ApiCluster,
  template: UnitName,
  record: Versioned<Unit> | undefined,
  round: RoundPlan,
): CountChange {
  const { keep, idle, drop, created } = round;
  const count = cluster.mirror.counts.get(template.name);
  const counted = (i: NumberedInstance): boolean => countedIn(i.record) !== undefined;
  const destroyed = toRanges(drop.filter(counted).map((i) => i.number));
  // Every dropped number leaves the count, also one a real record hid (it must not return).
  let ranges =
    count === undefined
      ? []
      : removeNumbers(
          count.value.ranges,
          drop.map((i) => i.number),
        );
  let started = toRanges(idle.filter(counted).map((i) => i.number));
  let createsAll = false;
  const sameFile =
    record !== undefined &&
    (count === undefined ||
      (count.value.hash === record.value.hash && count.value.file === record.value.file));
  if (sameFile && created.length > 0) {
    cluster.instanceRecords.checkNumbers(record.value, created, (n) =>
      instanceOf(template.name, n),
    );
    const grown = addRanges(ranges, created);
    if (grown.length <= MAX_COUNT_RANGES) {
      ranges = grown;
      started = addRanges(started, created);
      createsAll = true;
    }
  }
  // A new count takes the template's file; so do the records it folds in.
  const source = count?.value ?? record?.value;
  const folded =
    source === undefined
      ? []
      : keep
          .filter(
            (i) =>
              !counted(i) &&
              i.record.value.desiredState === 'launched' &&
              i.record.value.hash === source.hash &&
              i.record.value.file === source.file,
          )
          .slice(0, FOLD_LIMIT);
  const withFolds = addNumbers(
    ranges,
    folded.map((i) => i.number),
  );
  const folds = withFolds.length <= MAX_COUNT_RANGES ? folded : [];
  if (folds.length > 0) ranges = withFolds;
  const none: CountChange = {
    op: undefined,
    folds: [],
    started: [],
    destroyed: [],
    createsAll: false,
  };
  if (count === undefined && ranges.length === 0) return none;
  if (
    count !== undefined &&
    sameSpans(ranges, count.value.ranges) &&
    count.value.desiredState === 'launched'
  ) {
    return none;
  }
  const key = cluster.store.keys.instanceCount(template.name);
  if (ranges.length === 0 && count !== undefined) {
    return {
      op: { type: 'delete', key, condition: { modRevision: count.modRevision } },
      folds: [],
      started,
      destroyed,
      createsAll,
    };
  }
  if (source === undefined) return none; // unreachable: no count and no template grows nothing
  const value: InstanceCount = {
    template: template.name,
    file: source.file,
    hash: source.hash,
    desiredState: 'launched',
    ranges,
  };
  const json = codecs['instance-count'].encode(value);
  return {
    op: {
      type: 'put',
      key,
      value: Buffer.from(json),
      condition: count === undefined ? { absent: true } : { modRevision: count.modRevision },
    },
    folds: folds.map((i) => ({
      type: 'delete',
      key: i.record.key,
      condition: { modRevision: i.record.modRevision },
    })),
    started,
    destroyed,
    createsAll,
  };
}
