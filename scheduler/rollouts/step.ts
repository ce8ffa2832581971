/**
 * The pure half of a rolling update: given a rollout record, what the leader knows of the
 * instances in its batch, and the clock, decide the next record and which instance records
 * to rewrite. No I/O and no timers (the clock is an argument), so failover is a replay: a
 * new leader calls the same function on the same record and carries on.
 *
 * Semantics follow `docker service update`: batches of `parallelism` instances; the next
 * batch starts `delay` after the last one finished; an instance counts as done once it has
 * run on the new hash, active and healthy (or without a health check), for `monitor`; a
 * failure pauses the rollout or turns it into a rollback of every instance already updated.
 */
import { clip } from '../../lib/clip.js';
import { formatDuration } from '../../lib/duration.js';
import type { Rollout, RolloutStep } from '../../proto/flotilla/v1/records.js';

/**
 * An updated instance that is not done after this long (plus its monitor) has failed, when
 * the record names no deadline of its own (`healthyDeadlineMs` 0: written before it could).
 */
export const ROLLOUT_STEP_DEADLINE_MS = 300_000;

/** The record's `--healthy-deadline`, or the default for a record without one. */
export function healthyDeadlineOf(r: Rollout): bigint {
  return r.healthyDeadlineMs > 0n ? r.healthyDeadlineMs : BigInt(ROLLOUT_STEP_DEADLINE_MS);
}
/** Names kept in `Rollout.failed`. */
export const ROLLOUT_FAILED_KEPT = 20;
/** Characters of a rollout's message kept (it quotes instances' failure messages). */
export const ROLLOUT_MESSAGE_MAX = 1024;
/** Instances rewritten in one pass that do not run (no monitor needed), at most. */
export const ROLLOUT_IDLE_PER_PASS = 20;
/** The largest parallelism: a batch and its idle instances fit one etcd transaction. */
export const ROLLOUT_MAX_PARALLELISM = 100;

/** `web@.service`: a template, whose instances a rollout rolls (the name is valid). */
export function isTemplateName(name: string): boolean {
  const at = name.indexOf('@');
  return at > 0 && name[at + 1] === '.';
}

/** What the leader knows of one instance (from its mirror). */
export interface InstanceLook {
  /** Its units/ record's hash. */
  readonly hash: string;
  /** Desired launched: it must be seen running on the new hash before it counts. */
  readonly launched: boolean;
  /** The agent's report from the instance's current placement. */
  readonly state?: {
    readonly hash: string;
    readonly activeState: string;
    readonly subState: string;
    readonly health: string;
    readonly message: string;
  };
  /** Why it cannot be placed, when the leader could not place it. */
  readonly unscheduled?: string;
}

/** The inputs of one step. */
export interface StepInput {
  readonly rollout: Rollout;
  readonly now: number;
  /** An instance as the leader sees it; undefined once it is destroyed. */
  readonly look: (name: string) => InstanceLook | undefined;
  /**
   * Up to `limit` instance names whose record is not on `hash`, in name order after
   * `cursor` (wrapping around once), and the cursor to go on from.
   */
  readonly pending: (hash: string, cursor: string, limit: number) => PendingScan;
}

/** What {@link StepInput.pending} found. */
export interface PendingScan {
  readonly names: readonly string[];
  readonly cursor: string;
  /** True when every instance was looked at and none other is pending. */
  readonly exhausted: boolean;
}

/** The decision of one step. */
export interface StepResult {
  /** The next record; undefined when nothing changed. */
  readonly next: Rollout | undefined;
  /** Instances whose records are to be rewritten with `next.toFile` / `next.toHash`. */
  readonly rewrite: readonly string[];
  /** The template's own record goes back to `next.toFile` too (a rollback). */
  readonly rewriteTemplate: boolean;
  /** What happened, for the leader's log. */
  readonly notes: readonly string[];
}

type Verdict =
  | { readonly kind: 'done' }
  | { readonly kind: 'waiting'; readonly healthySince: bigint }
  | { readonly kind: 'failed'; readonly why: string };

/** Where one instance of the batch stands. */
export function judgeStep(
  step: RolloutStep,
  look: InstanceLook | undefined,
  r: Rollout,
  now: number,
): Verdict {
  if (look === undefined) return { kind: 'done' }; // destroyed meanwhile: nothing to update
  if (look.hash !== r.toHash)
    return { kind: 'failed', why: 'its record was changed by someone else' };
  if (!look.launched) return { kind: 'done' };
  const s = look.state;
  const onNew = s !== undefined && s.hash === r.toHash;
  if (onNew && (s.activeState === 'failed' || s.subState === 'auto-restart')) {
    return { kind: 'failed', why: s.message !== '' ? s.message : `${s.activeState}/${s.subState}` };
  }
  if (onNew && s.health === 'unhealthy') {
    return { kind: 'failed', why: `unhealthy${s.message !== '' ? `: ${s.message}` : ''}` };
  }
  if (look.unscheduled !== undefined)
    return { kind: 'failed', why: `cannot be placed: ${look.unscheduled}` };
  const good =
    onNew &&
    s.activeState === 'active' &&
    (s.subState === 'running' || s.subState === 'exited') &&
    (s.health === '' || s.health === 'healthy');
  if (good) {
    const since = step.healthySince > 0n ? step.healthySince : BigInt(now);
    if (BigInt(now) - since >= r.monitorMs) return { kind: 'done' };
    return { kind: 'waiting', healthySince: since };
  }
  const deadline = healthyDeadlineOf(r);
  if (BigInt(now) - step.startedAt > deadline + r.monitorMs) {
    const seen =
      s === undefined
        ? 'no state reported'
        : `${s.activeState}/${s.subState}${s.health !== '' ? `, ${s.health}` : ''}`;
    return {
      kind: 'failed',
      why: `not active and healthy within ${formatDuration(Number(deadline))} (${seen}); --healthy-deadline or UpdateHealthyDeadlineSec= gives instances longer`,
    };
  }
  return { kind: 'waiting', healthySince: 0n };
}

/** The rollout that undoes `r`: from its target back to its source, over every instance. */
export function reversed(r: Rollout, now: number, message: string): Rollout {
  return {
    ...r,
    fromHash: r.toHash,
    fromFile: r.toFile,
    toHash: r.fromHash,
    toFile: r.fromFile,
    rollback: !r.rollback,
    // A rollback that fails stops where it is: rolling back and forth helps no one.
    failureAction: 'pause',
    phase: 'running',
    batch: [],
    failed: [],
    message,
    updatedAt: BigInt(now),
    nextBatchAt: 0n,
    cursor: '',
  };
}

/** One step of a running rollout; a paused or finished one is left alone. */
export function stepRollout(input: StepInput): StepResult {
  const { rollout: r, now } = input;
  const nothing: StepResult = { next: undefined, rewrite: [], rewriteTemplate: false, notes: [] };
  if (r.phase !== 'running') return nothing;
  const notes: string[] = [];
  const batch: RolloutStep[] = [];
  const failures: string[] = [];
  let changed = false;
  for (const step of r.batch) {
    const v = judgeStep(step, input.look(step.unit), r, now);
    if (v.kind === 'done') {
      changed = true;
      notes.push(`${step.unit} updated`);
    } else if (v.kind === 'failed') {
      changed = true;
      failures.push(step.unit);
      notes.push(`${step.unit} failed: ${v.why}`);
      batch.push(step);
    } else {
      if (v.healthySince !== step.healthySince) changed = true;
      batch.push({ ...step, healthySince: v.healthySince });
    }
  }
  if (failures.length > 0) {
    const failed = [...r.failed, ...failures].slice(-ROLLOUT_FAILED_KEPT);
    const all = notes.filter((n) => n.includes(' failed: ')).join('; ');
    const why = clip(all, ROLLOUT_MESSAGE_MAX, '…');
    if (r.failureAction === 'rollback') {
      const next = reversed(r, now, `rolling back: ${why}`);
      return { next: { ...next, failed }, rewrite: [], rewriteTemplate: true, notes };
    }
    const message = `paused: ${why}; fix the file and run flotctl update --force, or flotctl rollback`;
    return {
      next: { ...r, batch, failed, phase: 'paused', message, updatedAt: BigInt(now) },
      rewrite: [],
      rewriteTemplate: false,
      notes,
    };
  }
  let nextBatchAt = r.nextBatchAt;
  if (r.batch.length > 0 && batch.length === 0) {
    nextBatchAt = BigInt(now) + r.delayMs;
    changed = true;
  }
  const rewrite: string[] = [];
  let cursor = r.cursor;
  let message = r.message;
  if (batch.length === 0 && BigInt(now) >= nextBatchAt) {
    const scan = input.pending(
      r.toHash,
      r.cursor,
      Math.max(1, r.parallelism) + ROLLOUT_IDLE_PER_PASS,
    );
    for (const name of scan.names) {
      const look = input.look(name);
      if (look === undefined) continue;
      if (!look.launched) {
        rewrite.push(name); // nothing runs it: no need to watch it come up
      } else if (batch.length < Math.max(1, r.parallelism)) {
        rewrite.push(name);
        batch.push({ unit: name, startedAt: BigInt(now), healthySince: 0n });
      }
      if (batch.length >= Math.max(1, r.parallelism)) break;
    }
    const last = rewrite.at(-1);
    cursor = last ?? scan.cursor;
    if (rewrite.length > 0 || cursor !== r.cursor) changed = true;
    if (scan.names.length === 0 && scan.exhausted) {
      const what = r.rollback ? 'rolled back' : 'updated';
      const phase = r.rollback ? 'rolled-back' : 'completed';
      notes.push(`rollout of ${r.unit} ${phase}`);
      return {
        next: {
          ...r,
          batch: [],
          phase,
          cursor: '',
          message: `every instance ${what} to ${r.toHash.slice(0, 12)}`,
          updatedAt: BigInt(now),
        },
        rewrite: [],
        rewriteTemplate: false,
        notes,
      };
    }
    if (batch.length > 0) message = `updating ${batch.map((s) => s.unit).join(', ')}`;
  }
  if (!changed) return nothing;
  return {
    next: { ...r, batch, cursor, message, nextBatchAt, updatedAt: BigInt(now) },
    rewrite,
    rewriteTemplate: false,
    notes,
  };
}
