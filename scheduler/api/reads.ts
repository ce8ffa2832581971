/**
 * Reads the API makes straight from etcd, each pinned to one revision so that a response (or
 * every page of a listing) describes one moment of the cluster. Many small reads go into as
 * few transactions as etcd allows (at most 128 operations each) instead of one call per key.
 */
import type { IRequestOp } from 'etcd3';
import type { Machine, MachineConfig, Placement, Unit } from '../../proto/flotilla/v1/records.js';
import {
  big,
  codecs,
  MAX_TXN_OPS,
  prefixRangeEnd,
  type KeyValue,
  type RecordCodec,
  type Store,
  type Versioned,
} from '../../store/index.js';
import { toKeyValue } from '../../store/client.js';
import type { ClusterRecords } from '../snapshot.js';
import { ApiError } from './errors.js';

/** A key range [start, end); `end` undefined means the single key `start`. */
export interface KeyRange {
  readonly start: string;
  readonly end?: Buffer;
}

/** What a range read returns: the keys, whether more follow, and the revision read at. */
export interface RangeResult {
  readonly kvs: KeyValue[];
  readonly more: boolean;
  readonly revision: bigint;
}

/** The range end that includes `key` itself but nothing after it: [first, spanEnd(last)). */
export function spanEnd(key: string): Buffer {
  return Buffer.concat([Buffer.from(key), Buffer.from([0])]);
}

/** The range end of every key starting with `prefix`. */
export function prefixEnd(prefix: string): Buffer {
  return prefixRangeEnd(Buffer.from(prefix));
}

/** One range read: keys in [start, end) in key order, at most `limit` (0: all). */
export async function rangeAt(
  store: Store,
  range: { start: string | Buffer; end: Buffer },
  opts: { revision?: bigint; limit?: number; keysOnly?: boolean } = {},
): Promise<RangeResult> {
  const key = typeof range.start === 'string' ? Buffer.from(range.start) : range.start;
  const req = {
    key,
    range_end: range.end,
    ...(opts.limit === undefined || opts.limit === 0 ? {} : { limit: opts.limit }),
    ...(opts.revision === undefined ? {} : { revision: opts.revision.toString() }),
    ...(opts.keysOnly === true ? { keys_only: true } : {}),
  };
  const res = await store.call(key.toString('utf8'), (c) => c.kv.range(req));
  return { kvs: res.kvs.map(toKeyValue), more: res.more, revision: big(res.header.revision) };
}

/**
 * Several range reads at one revision (the current one unless given, then pinned for every
 * chunk), in transactions of at most 128 reads. Result i holds range i's keys in key order.
 */
export async function rangesAt(
  store: Store,
  ranges: readonly KeyRange[],
  revision?: bigint,
): Promise<{ results: KeyValue[][]; revision: bigint }> {
  const results: KeyValue[][] = [];
  let rev = revision;
  for (let i = 0; i < ranges.length; i += MAX_TXN_OPS) {
    const chunk = ranges.slice(i, i + MAX_TXN_OPS);
    const pinned = rev;
    const success: IRequestOp[] = chunk.map((r) => ({
      request_range: {
        key: Buffer.from(r.start),
        ...(r.end === undefined ? {} : { range_end: r.end }),
        ...(pinned === undefined ? {} : { revision: pinned.toString() }),
      },
    }));
    const res = await store.call(chunk[0]?.start, (c) =>
      c.kv.txn({ compare: [], success, failure: [] }),
    );
    rev ??= big(res.header.revision);
    chunk.forEach((_r, j) => {
      results.push((res.responses[j]?.response_range?.kvs ?? []).map(toKeyValue));
    });
  }
  return { results, revision: rev ?? (await store.revision()) };
}

/** The values of `keys` at one revision; absent keys are absent from the map. */
export async function getAt(
  store: Store,
  keys: readonly string[],
  revision?: bigint,
): Promise<{ values: Map<string, KeyValue>; revision: bigint }> {
  const { results, revision: rev } = await rangesAt(
    store,
    keys.map((start) => ({ start })),
    revision,
  );
  const values = new Map<string, KeyValue>();
  for (const kvs of results) for (const kv of kvs) values.set(kv.key, kv);
  return { values, revision: rev };
}

/** Decodes a key-value as a record, keeping the revisions for compare-and-swap. */
export function decodeKv<T>(codec: RecordCodec<T>, kv: KeyValue): Versioned<T> {
  return {
    key: kv.key,
    value: codec.decode(kv.key, kv.value),
    createRevision: kv.createRevision,
    modRevision: kv.modRevision,
    lease: kv.lease,
  };
}

/** The last segment of a key: the unit name or machine id it is about. */
export function lastSegment(key: string): string {
  return key.slice(key.lastIndexOf('/') + 1);
}

/**
 * Machine ids the cluster knows at `revision`: live agents (machines/) and machines an
 * operator configured (machine-metadata/). Keys only, so it costs O(machines).
 */
export async function knownMachines(store: Store, revision?: bigint): Promise<Set<string>> {
  const dirs = [store.keys.dir('machine'), store.keys.dir('machine-metadata')];
  const ids = new Set<string>();
  let rev = revision;
  for (const dir of dirs) {
    const res = await rangeAt(
      store,
      { start: dir, end: prefixEnd(dir) },
      { ...(rev === undefined ? {} : { revision: rev }), keysOnly: true },
    );
    rev ??= res.revision;
    for (const kv of res.kvs) ids.add(lastSegment(kv.key));
  }
  return ids;
}

/** {@link ClusterRecords} as read from etcd at `revision`; its maps may be edited (Plan does). */
export interface StoredCluster extends ClusterRecords {
  readonly revision: bigint;
  readonly machines: Map<string, Machine>;
  readonly configs: Map<string, MachineConfig>;
  readonly units: Map<string, Unit>;
  readonly placements: Map<string, Map<string, Placement>>;
}

/**
 * Reads units/, placements/, machines/ and machine-metadata/ at one revision: what
 * `buildSnapshot` (scheduler/snapshot.ts) turns into the planner's snapshot, as the leader
 * does from its cache.
 */
export async function readCluster(store: Store): Promise<StoredCluster> {
  const k = store.keys;
  const machinesList = await store.list(k.dir('machine'));
  const revision = machinesList.revision;
  const [configsList, placementsList, unitsList] = await Promise.all([
    store.list(k.dir('machine-metadata'), { revision }),
    store.list(k.dir('placement'), { revision }),
    store.list(k.dir('unit'), { revision }),
  ]);
  const machines = new Map<string, Machine>();
  for (const kv of machinesList.items) {
    const id = lastSegment(kv.key);
    machines.set(id, { ...codecs.machine.decode(kv.key, kv.value), id });
  }
  const configs = new Map<string, MachineConfig>();
  for (const kv of configsList.items) {
    configs.set(lastSegment(kv.key), codecs['machine-metadata'].decode(kv.key, kv.value));
  }
  const units = new Map<string, Unit>();
  for (const kv of unitsList.items) {
    units.set(lastSegment(kv.key), codecs.unit.decode(kv.key, kv.value));
  }
  const placements = new Map<string, Map<string, Placement>>();
  for (const kv of placementsList.items) {
    const parsed = k.parse(kv.key);
    if (parsed?.kind !== 'placement' || parsed.machine === undefined) continue;
    const p = { ...codecs.placement.decode(kv.key, kv.value), machine: parsed.machine };
    let byMachine = placements.get(parsed.name);
    if (byMachine === undefined) placements.set(parsed.name, (byMachine = new Map()));
    byMachine.set(parsed.machine, p);
  }
  return { revision, units, machines, configs, placements };
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
