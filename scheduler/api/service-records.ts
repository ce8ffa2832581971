/**
 * `services/<name>` records, written by the API in the same transaction as the unit records
 * that declare them ([X-Service]): a submit adds the unit to its service's record (creating
 * it), a replace that renames or drops the declaration takes it out of the old one, and a
 * destroy takes it out (deleting the record with its last unit).
 *
 * Refused before anything is written: two services publishing one port (the routing mesh
 * listens on it on every machine, for one service), and two unit files of one service naming
 * different Publish= (which one would the mesh forward to?).
 *
 * Cost: O(services touched) reads of the mirror per request, plus one pass over the
 * services (not units or endpoints) when a declaration publishes a port or a destroy looks
 * for the services its units are in.
 */
import type { Service, Unit } from '../../proto/flotilla/v1/records.js';
import { codecs, MAX_TXN_OPS, type Batch, type CacheEntry } from '../../store/index.js';
import { parseUnit, type ServiceDeclaration } from '../../unit/index.js';
import { ApiError } from '../gate/errors.js';
import type { ApiCluster } from './reads.js';

/** One unit record a request writes: what it declared before and what it declares now. */
export interface DeclarationChange {
  readonly unit: string;
  readonly before: ServiceDeclaration | undefined;
  readonly after: ServiceDeclaration | undefined;
}

/** What the stored record `unit` declares, or undefined (also for a file that does not parse). */
export function storedDeclaration(unit: Unit | undefined): ServiceDeclaration | undefined {
  if (unit === undefined || !unit.file.includes('X-Service')) return undefined;
  try {
    return parseUnit(unit.name, unit.file).xService;
  } catch {
    return undefined;
  }
}

/** A record's wanted content, with the entry it replaces. */
interface Wanted {
  record: Service;
  current: CacheEntry<Service> | undefined;
  /** Declarations this request makes of the service, for the agreement check. */
  declaredBy: string | undefined;
}

/**
 * Queues the services/ writes for `changes` into `batch`, each guarded on the record as the
 * mirror holds it (so a concurrent writer makes the transaction retry). Throws
 * INVALID_ARGUMENT / FAILED_PRECONDITION refusals before queueing anything.
 */
export function queueServiceWrites(
  cluster: ApiCluster,
  batch: Batch,
  changes: readonly DeclarationChange[],
): void {
  const relevant = changes.filter((c) => c.before !== undefined || c.after !== undefined);
  if (relevant.length === 0) return;
  const services = cluster.mirror.services;
  const wanted = new Map<string, Wanted>();
  const touch = (name: string): Wanted => {
    let w = wanted.get(name);
    if (w === undefined) {
      const current = services.get(name);
      const record: Service = current?.value ?? {
        name,
        publish: 0,
        publishPortName: '',
        units: [],
      };
      w = { record: { ...record, units: [...record.units] }, current, declaredBy: undefined };
      wanted.set(name, w);
    }
    return w;
  };
  for (const c of relevant) {
    if (c.before !== undefined && c.before.name !== c.after?.name) {
      const w = touch(c.before.name);
      w.record.units = w.record.units.filter((u) => u !== c.unit);
    }
  }
  for (const c of relevant) {
    const d = c.after;
    if (d === undefined) continue;
    const w = touch(d.name);
    const others = w.record.units.filter((u) => u !== c.unit);
    const agreeWith = w.declaredBy ?? (others.length > 0 ? others[0] : undefined);
    if (agreeWith !== undefined) checkAgreement(c.unit, d, w.record, agreeWith);
    w.record.publish = d.publish;
    w.record.publishPortName = d.publishPortName;
    w.declaredBy = c.unit;
    if (!w.record.units.includes(c.unit)) w.record.units = [...w.record.units, c.unit].sort();
  }
  checkPublishConflicts(cluster, wanted);
  if (batch.size + wanted.size > MAX_TXN_OPS) {
    throw new ApiError(
      'invalid-argument',
      `these unit files and the ${wanted.size} service records they change need more than ${MAX_TXN_OPS} writes, more than one etcd transaction holds: split the request`,
    );
  }
  for (const [name, w] of wanted) {
    const key = cluster.store.keys.service(name);
    if (w.record.units.length === 0) {
      if (w.current !== undefined) batch.deleteIfModRevision(key, w.current.modRevision);
      continue;
    }
    if (w.current !== undefined && sameService(w.current.value, w.record)) continue;
    const json = codecs.service.encode(w.record);
    if (w.current === undefined) batch.putIfAbsent(key, json);
    else batch.putIfModRevision(key, json, w.current.modRevision);
  }
}

/**
 * Queues what destroying `units` does to their services, while the transaction has room:
 * each is taken out of the records that list it (a record left with none is deleted). One
 * pass over the services (their unit lists), not a parse of every file. Returns false when
 * some did not fit (the caller runs {@link queueServiceRemovals} again in a transaction of
 * its own after the destroy).
 */
export function queueServiceRemovals(
  cluster: ApiCluster,
  batch: Batch,
  units: readonly string[],
): boolean {
  const gone = new Set(units);
  for (const [name, entry] of cluster.mirror.services) {
    const left = entry.value.units.filter((u) => !gone.has(u));
    if (left.length === entry.value.units.length) continue;
    if (batch.size >= MAX_TXN_OPS) return false;
    const key = cluster.store.keys.service(name);
    if (left.length === 0) batch.deleteIfModRevision(key, entry.modRevision);
    else
      batch.putIfModRevision(
        key,
        codecs.service.encode({ ...entry.value, units: left }),
        entry.modRevision,
      );
  }
  return true;
}

function publishText(publish: number, portName: string): string {
  return publish === 0 ? 'no Publish=' : `Publish=${publish}:${portName}`;
}

function checkAgreement(unit: string, d: ServiceDeclaration, record: Service, other: string): void {
  if (d.publish === record.publish && d.publishPortName === record.publishPortName) return;
  throw new ApiError(
    'failed-precondition',
    `${unit} declares ${publishText(d.publish, d.publishPortName)} for service ${d.name}, but ${other} declares ${publishText(record.publish, record.publishPortName)} for it: unit files of one service must agree on Publish= (change one, or give one another Name=)`,
  );
}

/** Refuses a port published by two services (those written here, and those in the mirror). */
function checkPublishConflicts(cluster: ApiCluster, wanted: ReadonlyMap<string, Wanted>): void {
  const claims = new Map<number, string>();
  for (const [name, w] of wanted) {
    if (w.record.units.length === 0 || w.record.publish === 0) continue;
    const other = claims.get(w.record.publish);
    if (other !== undefined) throw publishTaken(name, w.record.publish, other);
    claims.set(w.record.publish, name);
  }
  if (claims.size === 0) return;
  for (const [name, entry] of cluster.mirror.services) {
    if (wanted.has(name)) continue;
    const claimer = claims.get(entry.value.publish);
    if (claimer !== undefined) throw publishTaken(claimer, entry.value.publish, name);
  }
}

function publishTaken(service: string, port: number, other: string): ApiError {
  return new ApiError(
    'failed-precondition',
    `service ${service} cannot publish port ${port}: service ${other} publishes it (the routing mesh gives a port to one service); choose another Publish=`,
  );
}

function sameService(a: Service, b: Service): boolean {
  return (
    a.publish === b.publish &&
    a.publishPortName === b.publishPortName &&
    a.units.length === b.units.length &&
    a.units.every((u, i) => u === b.units[i])
  );
}
