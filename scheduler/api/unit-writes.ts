/**
 * What every unit-writing handler shares: checking the unit files, names and desired states a
 * request gives, reading the current records of the units it names, and applying the writes
 * as one compare-and-swap transaction that is re-decided from fresh reads when someone else
 * wrote in between (so a concurrent request is never lost). Instance records built from
 * their template: instance-records.ts.
 */
import type { Unit } from '../../proto/flotilla/v1/records.js';
import type { SubmitUnitsRequest } from '../../proto/flotilla/v1/units.js';
import type { InstanceCount } from '../../proto/flotilla/v1/counts.js';
import {
  atomicTxn,
  codecs,
  instanceOf,
  isStoreError,
  MAX_TXN_OPS,
  queueUnitWrite,
  templateOf,
  type Batch,
  type CountedUnit,
  type CountView,
  type Versioned,
} from '../../store/index.js';
import { inSpans, instanceNumber } from '../../lib/number-ranges.js';
import {
  byteLength,
  checkUnitFileSize,
  excerpt,
  MAX_PROBLEMS,
  parseUnit,
  parseUnitName,
  SUBMIT_MAX_BYTES,
  submitTooLargeMessage,
  UNIT_NAME_MAX,
  UnitError,
  validateUnitFile,
} from '../../unit/index.js';
import type { UnitDefinition, UnitName, UnitStateName } from '../../unit/index.js';
import { ApiError, invalidUnits } from '../gate/errors.js';
import {
  fresh,
  freshOrBehind,
  RECOVERY_WAIT_MS,
  settle,
  unitRecords,
  type ApiCluster,
} from './reads.js';

/** The desired states a unit may have. */
export const UNIT_STATES: readonly UnitStateName[] = ['inactive', 'loaded', 'launched'];

/** How often a write is re-decided after a concurrent change before giving up (ABORTED). */
export const WRITE_ATTEMPTS = 5;

/** A submitted file that passed validation. */
export interface ValidFile {
  readonly name: string;
  readonly contents: string;
  readonly unit: UnitDefinition;
}

/**
 * Every file's problems in one INVALID_ARGUMENT (the first MAX_PROBLEMS across all files);
 * nothing is read before. Sizes are checked before anything is parsed: each file against
 * UNIT_FILE_MAX_BYTES, then all of them together against SUBMIT_MAX_BYTES (one submit is one
 * etcd transaction, which etcd refuses over its request limit).
 */
export function validateFiles(files: SubmitUnitsRequest['files']): ValidFile[] {
  const seen = new Set<string>();
  const twice = new Set<string>();
  for (const f of files) {
    if (seen.has(f.name)) twice.add(f.name);
    seen.add(f.name);
  }
  if (twice.size > 0) {
    const names = [...twice].map((n) => excerpt(n, UNIT_NAME_MAX));
    throw new ApiError('invalid-argument', `${names.join(', ')}: given more than once`);
  }
  const tooLarge = files.flatMap((f) => checkUnitFileSize(f.contents)?.withFile(f.name) ?? []);
  if (tooLarge.length > 0) throw invalidUnits(tooLarge.slice(0, MAX_PROBLEMS));
  const bytes = files.reduce((sum, f) => sum + byteLength(f.contents), 0);
  if (bytes > SUBMIT_MAX_BYTES) {
    throw new ApiError('invalid-argument', submitTooLargeMessage(files.length, bytes));
  }
  // Each file stops at MAX_PROBLEMS; so does the request, or 128 bad files would make a
  // message too long for a gRPC status.
  const errors: UnitError[] = [];
  for (const f of files) {
    if (errors.length >= MAX_PROBLEMS) break;
    errors.push(...validateUnitFile(f.name, f.contents));
  }
  if (errors.length > 0) throw invalidUnits(errors.slice(0, MAX_PROBLEMS));
  return files.map((f) => ({
    name: f.name,
    contents: f.contents,
    unit: parseUnit(f.name, f.contents),
  }));
}

/** `value` as a desired state; INVALID_ARGUMENT naming the accepted ones otherwise. */
export function parseDesiredState(value: string): UnitStateName {
  const found = UNIT_STATES.find((s) => s === value);
  if (found === undefined) {
    throw new ApiError(
      'invalid-argument',
      `desired state "${excerpt(value)}" is not one of ${UNIT_STATES.join(', ')}`,
    );
  }
  return found;
}

/**
 * Parses every name, collecting every problem into one INVALID_ARGUMENT; duplicates are
 * dropped (first occurrence kept), so `start a a` is `start a`.
 */
export function parseNames(names: readonly string[]): UnitName[] {
  if (names.length === 0) throw new ApiError('invalid-argument', 'no unit names given');
  const errors: UnitError[] = [];
  const parsed: UnitName[] = [];
  const seen = new Set<string>();
  for (const name of names) {
    if (seen.has(name)) continue;
    seen.add(name);
    try {
      parsed.push(parseUnitName(name));
    } catch (err) {
      if (!(err instanceof UnitError)) throw err;
      errors.push(err);
    }
  }
  if (errors.length > 0) throw invalidUnits(errors);
  return parsed;
}

/** Refuses requests that cannot fit in one etcd transaction. */
export function checkTxnSize(ops: number, what: string): void {
  if (ops > MAX_TXN_OPS) {
    throw new ApiError(
      'invalid-argument',
      `${ops} ${what} in one request: at most ${MAX_TXN_OPS} fit in one etcd transaction; split the request`,
    );
  }
}

/** The current unit records of `names`, from the mirror, and the revision they are as of. */
export async function readUnits(
  cluster: ApiCluster,
  names: readonly string[],
): Promise<{ units: Map<string, Versioned<Unit>>; revision: bigint }> {
  await fresh(cluster);
  return { units: unitRecords(cluster.mirror, names), revision: cluster.mirror.revision };
}

/**
 * {@link readUnits} for recovery writes (stop, unload, destroy): served while the mirror is
 * behind etcd. Then the named records (at most 128 and their templates) and the count
 * records of their templates are read from etcd itself, so every guard of the write is
 * exact, and the answer carries a warning. `view` is what was read, for {@link queueUnitPut}.
 */
export async function readUnitsForRecovery(
  cluster: ApiCluster,
  names: readonly string[],
): Promise<{
  units: Map<string, Versioned<Unit>>;
  revision: bigint;
  warnings: string[];
  view: CountView;
}> {
  const { revision, warning } = await freshOrBehind(cluster);
  if (warning === undefined) {
    return {
      units: unitRecords(cluster.mirror, names),
      revision: cluster.mirror.revision,
      warnings: [],
      view: cluster.mirror,
    };
  }
  const { store } = cluster;
  const units = new Map<string, Versioned<Unit>>();
  const counts = new Map<string, Versioned<InstanceCount>>();
  const templates = new Set(names.flatMap((n) => templateOf(n) ?? []));
  await Promise.all(
    [...templates].map(async (t) => {
      const count = await store.getRecord(codecs['instance-count'], store.keys.instanceCount(t));
      if (count !== undefined) counts.set(t, count);
    }),
  );
  await Promise.all(
    names.map(async (name) => {
      const record =
        (await store.getRecord(codecs.unit, store.keys.unit(name))) ??
        countedRecord(store.keys, counts, name);
      if (record !== undefined) units.set(name, record);
    }),
  );
  return { units, revision, warnings: [warning], view: { units, counts } };
}

/** Instance `name` as the count record of its template holds it, if it does. */
function countedRecord(
  keys: ApiCluster['store']['keys'],
  counts: ReadonlyMap<string, Versioned<InstanceCount>>,
  name: string,
): CountedUnit | undefined {
  const template = templateOf(name);
  const n = instanceNumber(name);
  const count = template === undefined ? undefined : counts.get(template);
  if (template === undefined || n === undefined || count === undefined) return undefined;
  if (!inSpans(count.value.ranges, n) || instanceOf(template, n) !== name) return undefined;
  const { file, hash, desiredState } = count.value;
  return {
    key: keys.unit(name),
    value: { name, file, hash, desiredState },
    createRevision: count.modRevision,
    modRevision: count.modRevision,
    lease: 0n,
    countedIn: template,
  };
}

/**
 * Encodes a unit and queues it: created only if absent, or replaced only if unchanged since
 * read. An instance only a count record holds is taken out of it in the same transaction
 * (store/materialise.ts); `view` is what `current` was read from (the mirror by default).
 */
export function queueUnitPut(
  cluster: Pick<ApiCluster, 'store' | 'mirror'>,
  batch: Batch,
  unit: Unit,
  current: Versioned<Unit> | undefined,
  view: CountView = cluster.mirror,
): void {
  queueUnitWrite(cluster.store.keys, batch, view, unit.name, unit, current);
}

/** Queues deleting `current` (as {@link queueUnitPut} writes: a counted instance too). */
export function queueUnitDelete(
  cluster: Pick<ApiCluster, 'store' | 'mirror'>,
  batch: Batch,
  current: Versioned<Unit>,
  view: CountView = cluster.mirror,
): void {
  queueUnitWrite(cluster.store.keys, batch, view, current.value.name, undefined, current);
}

/**
 * Runs `attempt` (read, decide, then write with {@link atomicTxn}) until its transaction
 * applies; a guard that failed because of a concurrent write (or a mirror behind etcd) starts
 * the attempt over once the mirror has caught up (a `recovery` attempt reads for itself, see
 * {@link readUnitsForRecovery}). After {@link WRITE_ATTEMPTS} the conflict is reported
 * (ABORTED).
 */
export async function retryOnConflict<T>(
  cluster: ApiCluster,
  attempt: () => Promise<T>,
  recovery = false,
): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (err) {
      if (!isStoreError(err, 'conflict') || i >= WRITE_ATTEMPTS) throw err;
      // A recovery attempt reads what it needs from etcd when the mirror lags: no waiting.
      if (!recovery) await fresh(cluster);
    }
  }
}

/**
 * Applies `build`'s writes in one transaction and waits until the mirror shows them (a
 * `recovery` write waits at most RECOVERY_WAIT_MS); the revision it wrote at, or `fallback`
 * when there was nothing to write.
 */
export async function applyWrites(
  cluster: ApiCluster,
  build: (batch: Batch) => void,
  fallback: bigint,
  recovery = false,
): Promise<bigint> {
  const result = await atomicTxn(cluster.store, build);
  if (result.transactions === 0) return fallback;
  await settle(cluster.mirror, result.revision, recovery ? RECOVERY_WAIT_MS : undefined);
  return result.revision;
}
