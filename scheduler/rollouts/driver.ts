/**
 * The leader's rollout driver: on every engine pass it steps each running rollout (the
 * mirror's `runningRollouts` index, so a cluster with no rollout running costs nothing) with
 * the pure {@link stepRollout}, and writes the decision in one fenced transaction: the
 * instance records it rewrites (each compared with the revision the mirror showed) and the
 * rollout record. A new leader finds the record where the last one left it and carries on.
 */
import type { Logger } from 'pino';
import type { Rollout, Unit, UnitState } from '../../proto/flotilla/v1/records.js';
import {
  atomicTxn,
  codecs,
  isStoreError,
  queueUnitWrite,
  type Batch,
  templateOf,
  type CacheEntry,
  type ClusterMirror,
  type Fence,
  type Store,
} from '../../store/index.js';
import { isTemplateName, stepRollout, type InstanceLook, type PendingScan } from './step.js';

/** Instance records looked at per pending scan, at most (the cursor goes on next pass). */
const SCAN_LIMIT = 10_000;

/** One machine's copy of a Global unit runs `hash`, active and healthy. */
function isUpCopy(s: UnitState, hash: string): boolean {
  return (
    s.hash === hash && s.activeState === 'active' && (s.health === '' || s.health === 'healthy')
  );
}

/**
 * What a step needs of the leader's term (leader/leadership.ts's Term is one): the fence its
 * transaction compares, and the signal that says the term is over.
 */
export interface LeaderTerm {
  readonly fence: Fence;
  readonly signal: AbortSignal;
}

/** Steps running rollouts for the leader. */
export class RolloutDriver {
  constructor(
    private readonly store: Store,
    private readonly mirror: ClusterMirror,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** One step of every running rollout. Throws what the store throws (fenced: deposed). */
  async pass(term: LeaderTerm): Promise<void> {
    for (const name of [...this.mirror.runningRollouts]) {
      if (term.signal.aborted) return;
      const entry = this.mirror.rollouts.get(name);
      if (entry !== undefined) await this.step(term, entry);
    }
  }

  private async step(term: LeaderTerm, entry: CacheEntry<Rollout>): Promise<void> {
    const r = entry.value;
    const isTemplate = isTemplateName(r.unit);
    const result = stepRollout({
      rollout: r,
      now: this.now(),
      look: (name) => this.look(name),
      pending: (hash, cursor, limit) =>
        isTemplate
          ? this.pendingInstances(r.unit, hash, cursor, limit)
          : this.pendingPlain(r.unit, hash),
    });
    const next = result.next;
    if (next === undefined) return;
    const { keys } = this.store;
    const rewrite = (b: Batch, e: CacheEntry<Unit>): void => {
      const record: Unit = { ...e.value, file: next.toFile, hash: next.toHash };
      // A counted instance leaves its count record in the same transaction (materialised).
      queueUnitWrite(keys, b, this.mirror, record.name, record, e);
    };
    const log = this.logger.child({ rollout: r.unit, to: next.toHash.slice(0, 12) });
    // All or nothing: the record says which instances are in flight, so it and their
    // records change together or not at all (at most 100 + 20 instances, the template and the
    // record: within one transaction of 128).
    let res;
    try {
      res = await atomicTxn(
        this.store,
        (b) => {
          for (const name of result.rewrite) {
            const e = this.mirror.units.get(name);
            if (e !== undefined) rewrite(b, e);
          }
          const template = isTemplate ? this.mirror.units.get(r.unit) : undefined;
          if (result.rewriteTemplate && template !== undefined) rewrite(b, template);
          const json = codecs.rollout.encode(next);
          b.putIfModRevision(keys.rollout(r.unit), json, entry.modRevision);
        },
        { fence: term.fence },
      );
    } catch (err) {
      if (!isStoreError(err, 'conflict')) throw err;
      // Someone (an operator's update or rollback) wrote meanwhile: decide again next pass.
      log.info({ keys: err.message }, 'rollout step lost to a concurrent write; retrying');
      return;
    }
    for (const note of result.notes) log.info(note);
    if (result.rewrite.length > 0) log.info({ units: result.rewrite }, 'rolling instances');
    if (next.phase !== r.phase)
      log.warn({ phase: next.phase, message: next.message }, 'rollout phase');
    if (res.revision > 0n) await this.mirror.waitFor(res.revision, 10_000).catch(() => undefined);
  }

  private look(name: string): InstanceLook | undefined {
    const e = this.mirror.units.get(name);
    if (e === undefined) return undefined;
    const placements = this.mirror.placements.get(name);
    const placed = placements?.values().next().value;
    let state = this.mirror.states.get(name)?.value;
    let reported =
      state !== undefined && placed !== undefined && state.machine === placed.value.machine;
    const copies = this.mirror.copies.get(name);
    if (copies !== undefined && copies.size > 0) {
      // A Global unit is up when every machine's copy is: judge it by its worst copy.
      const all = [...copies.values()].map((c) => c.value);
      state = all.find((s) => !isUpCopy(s, e.value.hash)) ?? all[0];
      reported = state !== undefined;
    }
    const unscheduled = this.mirror.unscheduled.get(name)?.value.summary;
    return {
      hash: e.value.hash,
      launched: e.value.desiredState === 'launched',
      ...(reported && state !== undefined ? { state } : {}),
      ...(unscheduled !== undefined ? { unscheduled } : {}),
    };
  }

  private pendingPlain(name: string, hash: string): PendingScan {
    const e = this.mirror.units.get(name);
    const names = e !== undefined && e.value.hash !== hash ? [name] : [];
    return { names, cursor: '', exhausted: true };
  }

  /**
   * Instances of `template` not on `hash`, in name order after `cursor`, then from the start
   * up to it. Looks at no more than {@link SCAN_LIMIT} records, so one pass stays bounded.
   */
  private pendingInstances(
    template: string,
    hash: string,
    cursor: string,
    limit: number,
  ): PendingScan {
    const prefix = template.slice(0, template.indexOf('@') + 1);
    const names: string[] = [];
    let looked = 0;
    let last = cursor;
    const walk = (from: string, until: string | undefined): boolean => {
      for (const [name, e] of this.mirror.units.entries(from)) {
        if (!name.startsWith(prefix) || (until !== undefined && name > until)) return true;
        if (name === cursor && from === cursor) continue;
        if (++looked > SCAN_LIMIT || names.length >= limit) return false;
        last = name;
        if (name !== template && templateOf(name) === template && e.value.hash !== hash)
          names.push(name);
      }
      return true;
    };
    let complete = walk(cursor === '' ? prefix : cursor, undefined);
    if (complete && cursor !== '' && names.length < limit) complete = walk(prefix, cursor);
    return { names, cursor: complete ? cursor : last, exhausted: complete && names.length === 0 };
  }
}
