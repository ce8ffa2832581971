/**
 * The rollout record (`rollouts/<unit>`, docs/architecture.md) as the API starts it and
 * reports it: the defaults of an update, the record a new rollout starts from, and how far a
 * rollout is, counted from the mirror. The leader then steps it (driver.ts with the pure
 * step.ts); an operator's rollback starts from {@link reversed} (step.ts).
 */
import type { Rollout, Unit } from '../../proto/flotilla/v1/records.js';
import type { RolloutStatus } from '../../proto/flotilla/v1/units.js';
import type { ClusterMirror } from '../../store/index.js';
import { isTemplateName } from './step.js';

/** Defaults of `flotctl update`, documented in docs/cli.md. */
export const UPDATE_DEFAULTS = {
  parallelism: 1,
  delayMs: 0,
  monitorMs: 5_000,
  /** Nomad's healthy_deadline: time to become active and healthy, before the monitor. */
  healthyDeadlineMs: 300_000,
  failureAction: 'pause',
  order: 'stop-first',
} as const;

/** Instances counted by a status, at most: beyond, the counts say "at least". */
const COUNT_LIMIT = 200_000;

/** What an update chooses; the rest of the record is the rollout's own progress. */
export type RolloutOptions = Pick<
  Rollout,
  'parallelism' | 'delayMs' | 'monitorMs' | 'healthyDeadlineMs' | 'failureAction' | 'order'
>;

/** A rollout that still needs the leader (or an operator) to finish. */
export function isUnfinished(r: Rollout): boolean {
  return r.phase === 'running' || r.phase === 'paused';
}

/**
 * The record of a rollout of `unit` that starts at `now` (Unix ms): from the unit's current
 * record `from` to the file `to`, running, with no batch yet. `total` is 0: the caller counts
 * it ({@link rolloutStatus}).
 */
export function startedRollout(
  unit: string,
  from: Pick<Unit, 'hash' | 'file'>,
  to: { readonly hash: string; readonly file: string },
  options: RolloutOptions,
  now: bigint,
): Rollout {
  return {
    unit,
    fromHash: from.hash,
    fromFile: from.file,
    toHash: to.hash,
    toFile: to.file,
    ...options,
    phase: 'running',
    rollback: false,
    batch: [],
    failed: [],
    message: 'started',
    startedAt: now,
    updatedAt: now,
    nextBatchAt: 0n,
    total: 0,
    cursor: '',
  };
}

/** How far `r` is, counted from the mirror (O(instances of its template)). */
export function rolloutStatus(mirror: ClusterMirror, r: Rollout): RolloutStatus {
  const inBatch = new Set(r.batch.map((s) => s.unit));
  const failed = new Set(r.failed);
  let updated = 0;
  let pending = 0;
  let total = 0;
  const count = (name: string, unit: Unit): void => {
    total += 1;
    if (unit.hash !== r.toHash) pending += 1;
    else if (!inBatch.has(name) && !failed.has(name)) updated += 1;
  };
  if (isTemplateName(r.unit)) {
    for (const name of mirror.instances.get(r.unit) ?? []) {
      const e = mirror.units.get(name);
      if (e !== undefined) count(name, e.value);
      if (total >= COUNT_LIMIT) break;
    }
  } else {
    const e = mirror.units.get(r.unit);
    if (e !== undefined) count(r.unit, e.value);
  }
  return {
    rollout: r,
    updated,
    pending,
    inProgress: inBatch.size,
    failed: r.failed.length,
    total,
    revision: mirror.revision,
  };
}
