/**
 * What every API handler reads: the replica's {@link ClusterMirror}, never etcd directly.
 * A handler reads the mirror synchronously, so its answer describes the cluster at one
 * revision (the mirror's, which it reports). A handler that wrote waits until the mirror
 * shows the write ({@link settle}) before it answers, so the client that wrote reads its own
 * write from this replica at once. Reads begin with {@link fresh}, so they also see writes made
 * elsewhere that finished before them.
 */
import type { RegistryOptions } from '../../registry/skopeo.js';
import type { Machine, MachineConfig, Placement, Unit } from '../../proto/flotilla/v1/records.js';
import { isStoreError, type ClusterMirror, type Store, type Versioned } from '../../store/index.js';
import { excerpt } from '../../unit/index.js';
import { pastDeadline } from '../../lib/sliced.js';
import type { ClusterRecords, DefinitionCache } from '../view/snapshot.js';
import { ApiError } from '../gate/errors.js';
import type { InstanceRecords } from './instance-records.js';
import type { QuotaGuard } from './quota.js';
import type { AdmissionLanes } from './lanes.js';

/** What handlers share: the store to write through, the mirror to read from, parsed files. */
export interface ApiCluster {
  readonly store: Store;
  readonly mirror: ClusterMirror;
  readonly definitions: DefinitionCache;
  /** Builds instance records from their template; one per server, like `definitions`. */
  readonly instanceRecords: InstanceRecords;
  /** Recovery writes before bulk work (lanes.ts); one per server. */
  readonly lanes: AdmissionLanes;
  /** How submits reach registries to pin images; REGISTRY_DEFAULTS when unset. */
  readonly registry?: RegistryOptions;
  /** The scheduler's `--max-instances`: every template's ceiling (admission.ts). */
  readonly maxInstances: number;
  /** Refuses writes that would take etcd past its quota's share (quota.ts). */
  readonly quota: QuotaGuard;
}

/** How long a handler waits for the mirror's first listing, or for its own write to show. */
export const MIRROR_WAIT_MS = 10_000;

/**
 * How long composing one page of a listing may take, ms. A page is composed in one turn of
 * the event loop (so it shows one revision), and at 100,000 units a page of 10,000 took
 * 150-250 ms on a 2-core host: long enough to starve the API's other calls and the replica's
 * watch. A page that reaches this budget ends early, with a token for the rest; clients
 * follow tokens, never count rows.
 */
export const PAGE_BUDGET_MS = 30;

/** The check of one page being composed: true once it took {@link PAGE_BUDGET_MS}. */
export function pageClock(): () => boolean {
  return pastDeadline(performance.now() + PAGE_BUDGET_MS);
}

/**
 * Waits until the mirror holds everything etcd held when the call began: a consistent read
 * (kube-apiserver's "consistent reads from cache"). It costs one O(1) round trip to etcd for
 * its current revision, and makes every read see every write that finished before it, made
 * through any replica or written by hand. UNAVAILABLE when etcd cannot be reached, or when
 * the mirror cannot catch up within {@link MIRROR_WAIT_MS}.
 */
export async function fresh(cluster: ApiCluster): Promise<void> {
  const revision = await cluster.store.revision();
  try {
    await cluster.mirror.waitFor(revision, MIRROR_WAIT_MS);
  } catch (err) {
    if (!isStoreError(err, 'deadline')) throw err;
    throw new ApiError(
      'unavailable',
      `this scheduler's copy of the cluster is more than ${MIRROR_WAIT_MS / 1000}s behind etcd (at revision ${cluster.mirror.revision} of ${revision}); try again, or another replica`,
    );
  }
}

/**
 * How long a recovery write (a scale down, stop, unload or destroy) waits for the mirror,
 * before and after writing, before it goes ahead from the mirror as it is.
 */
export const RECOVERY_WAIT_MS = 2_000;

/**
 * {@link fresh} for recovery writes: they get through while this replica's mirror is behind
 * etcd. Waits at most {@link RECOVERY_WAIT_MS}; then, instead of failing, returns the warning
 * the answer carries (undefined when the mirror caught up), with etcd's revision. Safe because every recovery write
 * is compare-and-swap on the records' mod revisions (docs/architecture.md, "Recovery always
 * works"): a record that changed since the mirror saw it makes the write fail, never lose a
 * change. UNAVAILABLE only when etcd itself cannot be reached.
 */
export async function freshOrBehind(
  cluster: ApiCluster,
): Promise<{ readonly revision: bigint; readonly warning: string | undefined }> {
  const revision = await cluster.store.revision();
  try {
    await cluster.mirror.waitFor(revision, RECOVERY_WAIT_MS);
    return { revision, warning: undefined };
  } catch (err) {
    if (!isStoreError(err, 'deadline')) throw err;
    return { revision, warning: behindWarning(cluster.mirror.revision, revision) };
  }
}

/** What a recovery answer says when it was served while the mirror lagged. */
export function behindWarning(mirrorRevision: bigint, etcdRevision: bigint): string {
  return `this scheduler's copy of the cluster is behind etcd (at revision ${mirrorRevision} of ${etcdRevision}); the write was served anyway, checked against etcd record by record, but this answer may miss changes made since revision ${mirrorRevision}: check with flotctl list-units in a moment, or ask another replica`;
}

/**
 * After a write at `revision`: waits until the mirror shows it (at most `timeoutMs`), so the
 * writer's next read on this replica sees it. A mirror that lags longer (etcd slow) does not
 * fail the write, which has happened; the answer only comes before the mirror shows it.
 */
export async function settle(
  mirror: ClusterMirror,
  revision: bigint,
  timeoutMs = MIRROR_WAIT_MS,
): Promise<void> {
  if (revision <= 0n) return;
  try {
    await mirror.waitFor(revision, timeoutMs);
  } catch (err) {
    if (!isStoreError(err, 'deadline')) throw err;
  }
}

/** The unit records of `names` as the mirror holds them (absent names are absent). */
export function unitRecords(
  mirror: ClusterMirror,
  names: readonly string[],
): Map<string, Versioned<Unit>> {
  const units = new Map<string, Versioned<Unit>>();
  for (const name of names) {
    const entry = mirror.units.get(name);
    if (entry !== undefined) units.set(name, entry);
  }
  return units;
}

/**
 * Machine ids the cluster knows: live agents (machines/), machines an operator configured
 * (machine-metadata/), machines that still hold placements (a lost machine, whose units
 * the leader has not moved yet) and machines recently lost (lost-machines/). O(machines).
 */
export function knownMachines(mirror: ClusterMirror): Set<string> {
  const ids = new Set<string>(mirror.machines.keys());
  for (const id of mirror.configs.keys()) ids.add(id);
  for (const id of mirror.placementsOn.keys()) ids.add(id);
  for (const id of mirror.lostMachines.keys()) ids.add(id);
  return ids;
}

/**
 * What a listing of one machine's units must say when that machine is gone: that it is lost,
 * since when, and how many of its units are no longer placed there. Empty for a live machine.
 */
export function lostMachineWarnings(mirror: ClusterMirror, id: string, now: number): string[] {
  if (mirror.machines.has(id)) return [];
  const lost = mirror.lostMachines.get(id)?.value;
  const left = mirror.placementsOn.get(id)?.size ?? 0;
  if (lost === undefined) {
    return left === 0
      ? []
      : [`machine ${id} is gone (its agent's lease ended); its units are moved elsewhere`];
  }
  return [`machine ${id} is lost: ${lostSummary(lost.lostUnixMs, lost.units, left, now)}`];
}

/** `lost 2min ago (at 16:20:01Z), 3 of its 4 units moved, 1 still placed there` and the like. */
export function lostSummary(lostMs: bigint, units: number, left: number, now: number): string {
  const when = `lost ${age(Number(lostMs), now)} ago (at ${new Date(Number(lostMs)).toISOString().slice(11, 19)}Z)`;
  if (units === 0) return `${when}, no units were placed on it`;
  const moved = Math.max(0, units - left);
  const of = `${moved} of its ${units} unit${units === 1 ? '' : 's'} moved`;
  return left === 0 ? `${when}, ${of}` : `${when}, ${of}, ${left} still placed there`;
}

function age(sinceMs: number, nowMs: number): string {
  const s = Math.max(0, Math.round((nowMs - sinceMs) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}min`;
  return `${Math.floor(s / 3600)}h`;
}

/** {@link ClusterRecords} copied out of the mirror; its maps may be edited (Plan does). */
export interface StoredCluster extends ClusterRecords {
  readonly revision: bigint;
  readonly machines: Map<string, Machine>;
  readonly configs: Map<string, MachineConfig>;
  readonly units: Map<string, Unit>;
  readonly placements: Map<string, Map<string, Placement>>;
}

/**
 * The records `buildSnapshot` (scheduler/view/snapshot.ts) turns into the planner's snapshot, as
 * the leader sees them: a dry run (Plan) plans from what the leader would.
 */
export function readCluster(mirror: ClusterMirror): StoredCluster {
  const machines = new Map<string, Machine>();
  for (const [id, e] of mirror.machines.entries()) machines.set(id, { ...e.value, id });
  const configs = new Map<string, MachineConfig>();
  for (const [id, e] of mirror.configs) configs.set(id, e.value);
  const units = new Map<string, Unit>();
  for (const [name, e] of mirror.units.entries()) units.set(name, e.value);
  const placements = new Map<string, Map<string, Placement>>();
  for (const [name, byMachine] of mirror.placements) {
    const copy = new Map<string, Placement>();
    for (const [machine, e] of byMachine) copy.set(machine, { ...e.value, machine });
    placements.set(name, copy);
  }
  return { revision: mirror.revision, units, machines, configs, placements };
}

/**
 * The machine `query` names: an exact id, or else the one id it is a prefix of. NOT_FOUND
 * when none matches, INVALID_ARGUMENT when the prefix is ambiguous.
 */
export function resolveMachine(ids: ReadonlySet<string>, query: string): string {
  if (query === '') throw new ApiError('invalid-argument', 'no machine given');
  if (ids.has(query)) return query;
  const matches = [...ids].filter((id) => id.startsWith(query)).sort();
  const [only] = matches;
  if (only !== undefined && matches.length === 1) return only;
  if (matches.length === 0) throw new ApiError('not-found', `machine ${query} is not known`);
  const shown = matches.slice(0, 5).join(', ');
  throw new ApiError(
    'invalid-argument',
    `machine prefix ${query} is ambiguous: it matches ${matches.length} machines (${shown})`,
  );
}

/** How many corrupt keys a warning names; the rest are counted. */
export const WARNING_KEYS = 5;

/**
 * Warnings for listings: records in etcd that do not decode, which every read skips as if
 * absent. Names a few keys (bounded, escaped excerpts) so a user can find and fix them; the
 * replica's log says why each did not decode.
 */
export function corruptRecordWarnings(mirror: ClusterMirror): string[] {
  const { count, keys } = mirror.corrupt(WARNING_KEYS);
  if (count === 0) return [];
  const named = keys.map((k) => excerpt(k, 160)).join(', ');
  const more = count > keys.length ? ` and ${count - keys.length} more` : '';
  const what = count === 1 ? '1 record in etcd does not' : `${count} records in etcd do not`;
  return [
    `${what} decode and ${count === 1 ? 'is' : 'are'} ignored: ${named}${more}; the scheduler's log says why; rewrite or delete ${count === 1 ? 'it' : 'them'} (etcdctl del KEY)`,
  ];
}
