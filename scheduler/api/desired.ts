/**
 * SetDesiredState and DestroyUnits: what the user wants of existing units. Every name is
 * checked before anything is written, and all writes of a request are one transaction.
 */
import type { Unit } from '../../proto/flotilla/v1/records.js';
import type {
  DestroyUnitsRequest,
  DestroyUnitsResponse,
  SetDesiredStateRequest,
  SetDesiredStateResponse,
} from '../../proto/flotilla/v1/units.js';
import { MAX_TXN_OPS, type Versioned } from '../../store/index.js';
import type { ApiCluster } from './reads.js';
import type { UnitName, UnitStateName } from '../../unit/index.js';
import { ApiError } from '../gate/errors.js';
import { admitStart, type ActivatedUnit } from './admission.js';
import type { Rights } from '../gate/rights.js';
import { checkRecords } from './unit-rights.js';
import { recordBytes } from './quota.js';
import { queueServiceRemovals } from './service-records.js';
import {
  applyWrites,
  checkTxnSize,
  parseDesiredState,
  parseNames,
  queueUnitDelete,
  queueUnitPut,
  readUnits,
  readUnitsForRecovery,
  retryOnConflict,
} from './unit-writes.js';

/**
 * SetDesiredState; see units.proto. An instance of a submitted template that does not exist
 * yet is created with the template's file. INVALID_ARGUMENT for bad names or states,
 * NOT_FOUND for names that are neither units nor instances of submitted templates,
 * FAILED_PRECONDITION for loading or starting a template; in each case nothing is written.
 * Loading or starting instances passes admission first (admission.ts: the template's ceiling,
 * and what fits now unless `allow_pending`), then the quota guard (quota.ts); stopping and
 * unloading pass neither.
 */
export async function setDesiredState(
  cluster: ApiCluster,
  req: SetDesiredStateRequest,
  rights?: Rights,
): Promise<SetDesiredStateResponse> {
  const desired = parseDesiredState(req.desiredState);
  const names = parseNames(req.names);
  checkTxnSize(names.length, 'units');
  if (desired !== 'inactive') {
    const templates = names.filter((n) => n.isTemplate).map((n) => n.name);
    if (templates.length > 0) {
      throw new ApiError(
        'failed-precondition',
        `${templates.join(', ')}: a template cannot be ${desired}; name its instances instead (e.g. ${names.find((n) => n.isTemplate)?.name.replace('@.', '@1.') ?? ''})`,
      );
    }
  }
  const wanted = [...new Set([...names.map((n) => n.name), ...templatesOf(names)])];
  // Stopping and unloading are recovery: they get through while bulk work runs and while
  // this replica's mirror is behind etcd (lanes.ts). Starting is not.
  const recovery = desired !== 'launched';
  const run = <T>(fn: () => Promise<T>): Promise<T> =>
    recovery ? cluster.lanes.recovery(fn) : fn();

  return run(() =>
    retryOnConflict(
      cluster,
      () => setAttempt(cluster, names, wanted, desired, recovery, req.allowPending, rights),
      recovery,
    ),
  );
}

/** One read-decide-write of {@link setDesiredState}. */
async function setAttempt(
  cluster: ApiCluster,
  names: readonly UnitName[],
  wanted: readonly string[],
  desired: UnitStateName,
  recovery: boolean,
  allowPending: boolean,
  rights: Rights | undefined,
): Promise<SetDesiredStateResponse> {
  const { units, revision, warnings, view } = recovery
    ? await readUnitsForRecovery(cluster, wanted)
    : { ...(await readUnits(cluster, wanted)), warnings: [], view: cluster.mirror };
  const missing = names.filter((n) => !units.has(n.name) && !hasTemplate(n, units));
  if (missing.length > 0)
    throw notFound(
      missing.map((n) => n.name),
      true,
    );
  const writes: { record: Unit; current: Versioned<Unit> | undefined }[] = [];
  const response: SetDesiredStateResponse = { changed: [], unchanged: [], revision, warnings };
  for (const n of names) {
    const current = units.get(n.name);
    if (current !== undefined) {
      if (current.value.desiredState === desired) {
        response.unchanged.push(n.name);
        continue;
      }
      writes.push({ record: { ...current.value, desiredState: desired }, current });
    } else {
      const template = units.get(n.template);
      if (template === undefined) continue; // unreachable: checked above
      const record = cluster.instanceRecords.record(n.name, template.value, desired);
      writes.push({ record, current });
    }
    response.changed.push(n.name);
  }
  if (desired !== 'inactive') {
    const activated: ActivatedUnit[] = [];
    for (const w of writes) {
      const name = names.find((n) => n.name === w.record.name);
      if (name === undefined) continue;
      if (w.current !== undefined && w.current.value.desiredState !== 'inactive') continue;
      activated.push({ name, record: w.record, created: w.current === undefined });
    }
    // By role: a file someone else submitted runs with what the one who starts it may grant.
    checkRecords(
      cluster,
      rights,
      activated.map((a) => a.record),
      desired === 'launched' ? 'start' : 'load',
    );
    await admitStart(cluster, activated, allowPending);
    await cluster.quota.check(writes.reduce((sum, w) => sum + recordBytes(w.record), 0));
  }
  const written = await applyWrites(
    cluster,
    (batch) => writes.forEach((w) => queueUnitPut(cluster, batch, w.record, w.current, view)),
    revision,
    recovery,
  );
  return { ...response, revision: written };
}

/**
 * DestroyUnits; see units.proto. Deletes units/<name> of every named unit (the leader then
 * removes their placements). NOT_FOUND, with nothing deleted, if any name is not a unit.
 */
export async function destroyUnits(
  cluster: ApiCluster,
  req: DestroyUnitsRequest,
): Promise<DestroyUnitsResponse> {
  const parsed = parseNames(req.names);
  const names = parsed.map((n) => n.name);
  checkTxnSize(names.length, 'units');
  // Destroying is recovery: it gets through while bulk work runs and while this replica's
  // mirror is behind etcd (lanes.ts); a destroyed template's scale-ups stop.
  for (const t of parsed.filter((n) => n.isTemplate)) cluster.lanes.supersede(t.name, 0);
  return cluster.lanes.recovery(() => destroyAll(cluster, parsed));
}

async function destroyAll(
  cluster: ApiCluster,
  parsed: readonly UnitName[],
): Promise<DestroyUnitsResponse> {
  const names = parsed.map((n) => n.name);
  let servicesDone = true;
  const destroyed = await retryOnConflict(
    cluster,
    async () => {
      const { units, warnings, view } = await readUnitsForRecovery(cluster, names);
      const missing = names.filter((n) => !units.has(n));
      if (missing.length > 0) throw notFound(missing, false);
      refuseOrphans(cluster, parsed, new Set(names));
      const revision = await applyWrites(
        cluster,
        (batch) => {
          for (const name of names) {
            const current = units.get(name);
            if (current !== undefined) queueUnitDelete(cluster, batch, current, view);
          }
          // A destroyed unit's rollout goes with it (while the transaction has room: a record
          // left over is overwritten by the next update of a unit of that name).
          for (const name of names) {
            if (batch.size >= MAX_TXN_OPS) break;
            if (cluster.mirror.rollouts.has(name)) batch.delete(cluster.store.keys.rollout(name));
          }
          // The services that list a destroyed unit lose it (and go with their last unit).
          servicesDone = queueServiceRemovals(cluster, batch, names);
        },
        0n,
        true,
      );
      return { destroyed: names, revision, warnings };
    },
    true,
  );
  if (!servicesDone) {
    // What did not fit in the destroy's transaction: the units are gone, their services follow.
    await retryOnConflict(
      cluster,
      () => applyWrites(cluster, (batch) => queueServiceRemovals(cluster, batch, names), 0n, true),
      true,
    ).catch(() => undefined);
  }
  // A destroyed template's last scale record goes too (left behind, it would only be stale).
  const { keys } = cluster.store;
  for (const t of parsed.filter((n) => n.isTemplate)) {
    await cluster.store.delete(keys.scale(t.name)).catch(() => undefined);
  }
  return destroyed;
}

/** NOT_FOUND naming every unknown unit. */
export function notFound(names: readonly string[], instancesToo: boolean): ApiError {
  const hint = instancesToo ? ' (nor instances of a submitted template)' : '';
  const what = names.length === 1 ? 'is not a submitted unit' : 'are not submitted units';
  return new ApiError('not-found', `${names.join(', ')} ${what}${hint}`);
}

function templatesOf(names: readonly UnitName[]): string[] {
  return names.filter((n) => n.isInstance).map((n) => n.template);
}

function hasTemplate(name: UnitName, units: ReadonlyMap<string, Versioned<Unit>>): boolean {
  return name.isInstance && units.has(name.template);
}

/** Instances named in a refusal, at most; the rest are counted. */
const ORPHANS_NAMED = 5;

/**
 * FAILED_PRECONDITION when a named template has instances that this request does not destroy
 * too: without their template they could be neither scaled up nor updated (issue 27). Costs
 * O(named templates x {@link ORPHANS_NAMED}) beyond the instances the request names itself.
 */
function refuseOrphans(
  cluster: ApiCluster,
  parsed: readonly UnitName[],
  named: ReadonlySet<string>,
): void {
  for (const t of parsed.filter((n) => n.isTemplate)) {
    const instances = cluster.mirror.instances.get(t.name);
    if (instances === undefined) continue;
    let left = instances.size;
    for (const n of named) if (instances.has(n)) left -= 1;
    if (left <= 0) continue;
    const shown: string[] = [];
    for (const i of instances) {
      if (shown.length >= ORPHANS_NAMED) break;
      if (!named.has(i)) shown.push(i);
    }
    const more = left > shown.length ? ` and ${left - shown.length} more` : '';
    const prefix = t.name.slice(0, t.name.indexOf('@'));
    throw new ApiError(
      'failed-precondition',
      `${t.name} has ${left} instance${left === 1 ? '' : 's'} (${shown.join(', ')}${more}): destroy them with it (flotctl destroy --with-instances ${t.name}) or first (flotctl scale ${prefix}=0)`,
    );
  }
}
