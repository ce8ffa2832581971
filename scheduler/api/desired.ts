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
import {
  applyWrites,
  checkTxnSize,
  parseDesiredState,
  parseNames,
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
 */
export async function setDesiredState(
  cluster: ApiCluster,
  req: SetDesiredStateRequest,
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
    retryOnConflict(cluster, () => setAttempt(cluster, names, wanted, desired, recovery), recovery),
  );
}

/** One read-decide-write of {@link setDesiredState}. */
async function setAttempt(
  cluster: ApiCluster,
  names: readonly UnitName[],
  wanted: readonly string[],
  desired: UnitStateName,
  recovery: boolean,
): Promise<SetDesiredStateResponse> {
  const { units, revision, warnings } = recovery
    ? await readUnitsForRecovery(cluster, wanted)
    : { ...(await readUnits(cluster, wanted)), warnings: [] };
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
  const written = await applyWrites(
    cluster,
    (batch) => writes.forEach((w) => queueUnitPut(cluster.store, batch, w.record, w.current)),
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
  const destroyed = await retryOnConflict(
    cluster,
    async () => {
      const { units, warnings } = await readUnitsForRecovery(cluster, names);
      const missing = names.filter((n) => !units.has(n));
      if (missing.length > 0) throw notFound(missing, false);
      const revision = await applyWrites(
        cluster,
        (batch) => {
          for (const name of names) {
            const current = units.get(name);
            if (current !== undefined) batch.deleteIfModRevision(current.key, current.modRevision);
          }
          // A destroyed unit's rollout goes with it (while the transaction has room: a record
          // left over is overwritten by the next update of a unit of that name).
          for (const name of names) {
            if (batch.size >= MAX_TXN_OPS) break;
            if (cluster.mirror.rollouts.has(name)) batch.delete(cluster.store.keys.rollout(name));
          }
        },
        0n,
        true,
      );
      return { destroyed: names, revision, warnings };
    },
    true,
  );
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
