/**
 * ClusterMirror: ONE list+watch cache of the whole cluster prefix per process (docs/architecture.md,
 * "Scale"; kube-apiserver's watch cache is the model). Every record is decoded once, as it
 * arrives, and filed in indexes that answer the scheduler's questions in proportion to the
 * answer: a unit by name, units in name order from any point (paging), the instances of one
 * template, a unit's placements, one machine's placements in name order, a unit's state and
 * its Global copies, machines in id order.
 *
 * One watch over the prefix means one revision for everything: a reader that reads the
 * indexes synchronously sees the cluster as of {@link ClusterMirror.revision}, never half of
 * a transaction. A writer waits for its write's revision ({@link ClusterMirror.waitFor}) and
 * then reads its own write.
 *
 * A template's count record (`instance-counts/<template>`) is filed as one unit per number it
 * holds, as if each had its own `units/` record (counted-units.ts): consumers see one `unit`
 * change per instance a count adds, removes or changes, and a unit's changes within one
 * revision netted into one (mirror-changes.ts).
 *
 * A value that does not decode is reported through `onError` and left out of every index
 * (the key is treated as absent), so a corrupt record never stops a daemon.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import type {
  Endpoint,
  LostMachine,
  Machine,
  MachineConfig,
  Placement,
  Rollout,
  SchedulerReplica,
  Service,
  Unit,
  UnitState,
  Unscheduled,
} from '../proto/flotilla/v1/records.js';
import type { InstanceCount } from '../proto/flotilla/v1/counts.js';
import type { ReschedulingPause } from '../proto/flotilla/v1/machines.js';
import type { SecretRecord } from '../proto/flotilla/v1/secrets.js';
import type { ScaleRequest } from '../proto/flotilla/v1/units.js';
import { WatchCache, type CacheChange, type CacheEntry, type CacheEvent } from './cache.js';
import { CountedUnits, type CountFiling, type Touched } from './counted-units.js';
import type { StoreError } from './errors.js';
import type { ParsedKey } from './keys.js';
import { Listeners, type Unsubscribe } from './listeners.js';
import {
  ChangeBatch,
  unitChange,
  type MirrorChange,
  type MirrorEvent,
  type MirrorRecord,
} from './mirror-changes.js';
import { codecs, type RecordCodec, type RecordTypes } from './records.js';
import type { Store } from './client.js';
import { SortedMap } from './sorted-map.js';
import { fileByKey, PlacedStates, setNested } from './unit-states.js';

export type { MirrorChange, MirrorEvent, MirrorRecord } from './mirror-changes.js';

/** A count change of at most this many numbers is filed at once, in its watch response's turn. */
const FILE_AT_ONCE = 2_000;

/** The longest stretch of filing a larger count change before the event loop gets a turn, ms. */
const FILE_SLICE_MS = 10;

/** Options of a {@link ClusterMirror}. */
export interface ClusterMirrorOptions {
  /** Keys per page of the listing. Default 2000 (halved by the store when a page is too large). */
  readonly pageSize?: number;
  /** Changes kept for watchers that resume from a past revision. Default 300,000. */
  readonly historySize?: number;
}

/**
 * The one list+watch mirror of a cluster prefix, with indexes. Create it, subscribe, then
 * `await ready()`. Index getters return live structures: read them, never change them.
 */
export class ClusterMirror {
  /**
   * Units by name: real `units/` records, and the instances count records hold, each filed
   * as if its own record existed (counted-units.ts; such entries have `countedIn`).
   */
  readonly units: SortedMap<CacheEntry<Unit>> = new SortedMap();
  /** Template name (`web@.service`) -> names of its instances (with records, or counted). */
  readonly instances = new Map<string, Set<string>>();
  /** `instance-counts/<template>`: template name -> its count record. */
  readonly counts: ReadonlyMap<string, CacheEntry<InstanceCount>>;
  /** Unit name -> machine id -> placement. */
  readonly placements = new Map<string, Map<string, CacheEntry<Placement>>>();
  /** Machine id -> unit name -> placement, in name order. */
  readonly placementsOn = new Map<string, SortedMap<CacheEntry<Placement>>>();
  /** `unit-states/<machine>/<name>`: the state of a unit that is not Global (get by name). */
  readonly states = new PlacedStates(this.placements);
  /** `unit-states/<machine>/<name>/global`: unit name -> machine id -> that copy's state. */
  readonly copies = new Map<string, Map<string, CacheEntry<UnitState>>>();
  readonly unscheduled = new Map<string, CacheEntry<Unscheduled>>();
  readonly machines: SortedMap<CacheEntry<Machine>> = new SortedMap();
  readonly configs = new Map<string, CacheEntry<MachineConfig>>();
  /** By full key. */
  readonly control = new Map<string, CacheEntry<ReschedulingPause>>();
  /** Template name -> the last scale asked of it. */
  readonly scales = new Map<string, CacheEntry<ScaleRequest>>();
  /** `rollouts/<name>`: the latest rollout of each template or plain unit. */
  readonly rollouts = new Map<string, CacheEntry<Rollout>>();
  /** Names of the rollouts in phase `running`: all the leader's rollout driver looks at. */
  readonly runningRollouts = new Set<string>();
  /** `lost-machines/<id>`: machines the leader saw vanish, kept a while (at most 1,000). */
  readonly lostMachines: SortedMap<CacheEntry<LostMachine>> = new SortedMap();
  /** `schedulers/<replica>`: the running scheduler replicas, by replica id. */
  readonly schedulers = new Map<string, CacheEntry<SchedulerReplica>>();
  /** `services/<name>`: services that submitted units declare, in name order. */
  readonly services: SortedMap<CacheEntry<Service>> = new SortedMap();
  /**
   * `unit-endpoints/<machine>/<service>/...`: service -> `<machine>/<unit>/<port-name>` ->
   * endpoint, in that order (a service's listing pages through it).
   */
  readonly endpoints: SortedMap<SortedMap<CacheEntry<Endpoint>>> = new SortedMap();
  /** Unit name -> `<service>/<machine>/<port-name>` -> endpoint: what `status UNIT` shows. */
  readonly endpointsOfUnit = new Map<string, Map<string, CacheEntry<Endpoint>>>();
  /** `secrets/<name>`: sealed secrets (names and sizes for listings; values stay sealed). */
  readonly secrets = new Map<string, CacheEntry<SecretRecord>>();
  /** Election keys, by full key, values as stored. */
  readonly election = new Map<string, CacheEntry<string>>();
  private readonly cache: WatchCache<MirrorRecord>;
  private readonly counted: CountedUnits;
  private readonly events = new Listeners<MirrorEvent>();
  /** The latest changes in revision order, from `historyFrom` on without a gap. */
  private history: MirrorChange[] = [];
  private historyFrom = 0n;
  private readonly historySize: number;
  private closed = false;

  constructor(
    private readonly store: Store,
    opts: ClusterMirrorOptions = {},
  ) {
    this.historySize = opts.historySize ?? 300_000;
    this.counted = new CountedUnits(store.keys, this.units, this.instances);
    this.counts = this.counted.counts;
    this.cache = new WatchCache(store, {
      prefix: store.keys.prefix,
      codec: mirrorCodec(store),
      pageSize: opts.pageSize ?? 2_000,
    });
    // One watch response is one batch: its changes are indexed before anyone hears of them.
    const pending = new ChangeBatch();
    this.cache.on((e) => this.onCacheEvent(e, pending));
    this.cache.onRevision((revision) => {
      if (pending.size === 0) return;
      const changes = pending.take();
      for (const change of changes) this.remember(change);
      if (changes.length > 0) this.events.emit({ revision, resync: false, changes });
    });
  }

  /** Resolves after the first listing is indexed. */
  ready(): Promise<void> {
    return this.cache.ready();
  }

  /**
   * Every change up to this revision is indexed. While a large count change is filed over
   * several turns, the revision before it (the watch cache's hold): readers that wait for its
   * revision wait for all of it.
   */
  get revision(): bigint {
    return this.cache.revision;
  }

  /** Resolves once the mirror has indexed `revision` (read-your-writes). */
  waitFor(revision: bigint, timeoutMs?: number): Promise<void> {
    return this.cache.waitFor(revision, timeoutMs);
  }

  /** Batches of changes, in revision order, each after the indexes hold it. */
  on(fn: (event: MirrorEvent) => void): Unsubscribe {
    return this.events.on(fn);
  }

  /**
   * The changes from revision `from` on, in order, if the mirror still holds every one of
   * them; undefined when some are older than it keeps (or were only seen as a re-list).
   * Watchers resume from here instead of making etcd replay its history, which etcd 3.4 does
   * slowly for a watcher far behind.
   */
  changesSince(from: bigint): readonly MirrorChange[] | undefined {
    if (this.historyFrom === 0n || from < this.historyFrom) return undefined;
    let lo = 0;
    let hi = this.history.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.history[mid]?.change.revision ?? 0n) < from) lo = mid + 1;
      else hi = mid;
    }
    return this.history.slice(lo);
  }

  /** Records in etcd that do not decode (skipped): how many, and the first `limit` keys. */
  corrupt(limit: number): { count: number; keys: string[] } {
    return this.cache.corrupt(limit);
  }

  /** Problems the mirror recovers from by itself (etcd away, a corrupt record). */
  onError(fn: (error: StoreError) => void): Unsubscribe {
    return this.cache.onError(fn);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.events.clear();
    await this.cache.close();
  }

  private onCacheEvent(e: CacheEvent<MirrorRecord>, pending: ChangeBatch): void {
    if (e.type !== 'resync') return this.index(e, pending);
    const batch = new ChangeBatch();
    for (const c of e.changes) this.index(c, batch);
    const changes = batch.take();
    // A listing says what is, not what happened: history starts again after it.
    this.history = [];
    this.historyFrom = e.revision + 1n;
    this.events.emit({ revision: e.revision, resync: true, changes });
  }

  private remember(change: MirrorChange): void {
    this.history.push(change);
    if (this.history.length <= this.historySize * 1.25) return;
    // Trimmed in bulk, so each change is copied a bounded number of times.
    const dropped = this.history.length - this.historySize;
    const first = this.history[dropped];
    this.history = this.history.slice(dropped);
    // The oldest revision kept may be only partly kept: start after it.
    if (first !== undefined) this.historyFrom = first.change.revision + 1n;
  }

  /** Files one change in the indexes and adds what consumers see of it to `out`. */
  private index(change: CacheChange<MirrorRecord>, out: ChangeBatch): void {
    const record = change.type === 'put' ? change.value : change.prev;
    const entry = change.type === 'put' ? change.entry : undefined;
    const parsed = record.key;
    if (record.kind === 'unit') return this.indexUnit(record.key, change, record.value, out);
    if (record.kind === 'instance-count') {
      out.push({ kind: record.kind, parsed, change });
      const e = entry === undefined ? undefined : { ...entry, value: record.value };
      const filing = this.counted.change(record.key.name, e);
      // Consumers hear of the instances it holds as units, one change per instance.
      const touched: Touched = (name, apply) =>
        this.fileInstance(out, change.revision, change.synthetic, name, apply);
      if (filing.size <= FILE_AT_ONCE || change.synthetic) {
        const steps = this.counted.fileSteps(filing, touched);
        while (steps.next().done !== true);
        return;
      }
      // Names this revision changed before the count are filed now, so each of them is still
      // one netted change (a real record replaced by a counted one never shows as absent).
      for (const name of [...out.unitNames()]) this.counted.fileName(filing, name, touched);
      this.fileLater(filing, change.revision);
      return;
    }
    if (parsed !== undefined) this.file(record, entry, change.key);
    out.push({ kind: record.kind, parsed, change });
  }

  /** Files a counted instance through `apply`, adding what readers saw change to `out`. */
  private fileInstance(
    out: ChangeBatch,
    revision: bigint,
    synthetic: boolean,
    name: string,
    apply: () => void,
  ): void {
    const before = this.units.get(name);
    apply();
    const shown = unitChange(name, before, this.units.get(name), revision, synthetic);
    if (shown !== undefined) out.push(shown);
  }

  /**
   * Files a large count change (a scale of thousands: about 9 µs a number, so a million took
   * 9 s in one turn) in slices of {@link FILE_SLICE_MS}, each slice's changes one batch at the
   * count's revision. The watch cache holds later revisions meanwhile and its `revision` stays
   * before the count's, so a reader that waits for it sees all of it; a reader that does not
   * wait sees the instances appear or go a slice at a time, as when a scale was written in
   * many transactions.
   */
  private fileLater(filing: CountFiling, revision: bigint): void {
    const batch = new ChangeBatch(); // take() empties it for the next slice
    const steps = this.counted.fileSteps(filing, (name, apply) =>
      this.fileInstance(batch, revision, false, name, apply),
    );
    const run = async (): Promise<void> => {
      for (let done = false; !done;) {
        await nextTurn();
        if (this.closed) return;
        const end = performance.now() + FILE_SLICE_MS;
        do done = steps.next().done === true;
        while (!done && performance.now() < end);
        const changes = batch.take();
        for (const c of changes) this.remember(c);
        if (changes.length > 0) this.events.emit({ revision, resync: false, changes });
      }
    };
    this.cache.hold(run());
  }

  /**
   * A real unit record changed. Consumers see the cache's change, unless a counted instance
   * of that name was shown before or is shown after (a real record took its place, or went
   * and left it): then the change from what was shown to what is.
   */
  private indexUnit(
    parsed: ParsedKey,
    change: CacheChange<MirrorRecord>,
    value: Unit,
    out: ChangeBatch,
  ): void {
    const name = parsed.name;
    const before = this.units.get(name);
    const e = change.type === 'put' ? { ...change.entry, value } : undefined;
    this.counted.fileReal(name, templateOf(name), e);
    const after = this.units.get(name);
    const counted = (x: CacheEntry<Unit> | undefined): boolean =>
      x !== undefined && 'countedIn' in x;
    if (!counted(before) && !counted(after)) {
      out.push({ kind: 'unit', parsed, change });
      return;
    }
    const shown = unitChange(name, before, after, change.revision, change.synthetic);
    if (shown !== undefined) out.push(shown);
  }

  private file(
    record: MirrorRecord,
    entry: CacheEntry<MirrorRecord> | undefined,
    key: string,
  ): void {
    const typed = <T>(value: T): CacheEntry<T> | undefined =>
      entry === undefined ? undefined : { ...entry, value };
    switch (record.kind) {
      case 'unit':
      case 'instance-count':
        return; // index() files them
      case 'placement': {
        const { name, machine = '' } = record.key;
        const e = typed(record.value);
        setNested(this.placements, name, machine, e);
        let onMachine = this.placementsOn.get(machine);
        if (e !== undefined) {
          if (onMachine === undefined)
            this.placementsOn.set(machine, (onMachine = new SortedMap()));
          onMachine.set(name, e);
        } else if (onMachine !== undefined) {
          onMachine.delete(name);
          if (onMachine.size === 0) this.placementsOn.delete(machine);
        }
        return;
      }
      case 'state': {
        // A legacy `states/<name>` names its machine only in its value.
        const { name, machine = record.value.machine, global = false } = record.key;
        const e = typed(record.value);
        if (global) fileByKey(this.copies, name, machine, key, e);
        else this.states.file(name, machine, key, e);
        return;
      }
      case 'unscheduled':
        return setOrDelete(this.unscheduled, record.key.name, typed(record.value));
      case 'machine': {
        const e = typed(record.value);
        if (e === undefined) this.machines.delete(record.key.name);
        else this.machines.set(record.key.name, e);
        return;
      }
      case 'machine-metadata':
        return setOrDelete(this.configs, record.key.name, typed(record.value));
      case 'control':
        return setOrDelete(
          this.control,
          this.store.keys.dir('control') + record.key.name,
          typed(record.value),
        );
      case 'scale':
        return setOrDelete(this.scales, record.key.name, typed(record.value));
      case 'rollout': {
        const e = typed(record.value);
        if (e?.value.phase === 'running') this.runningRollouts.add(record.key.name);
        else this.runningRollouts.delete(record.key.name);
        return setOrDelete(this.rollouts, record.key.name, e);
      }
      case 'lost-machine': {
        const e = typed(record.value);
        if (e === undefined) this.lostMachines.delete(record.key.name);
        else this.lostMachines.set(record.key.name, e);
        return;
      }
      case 'scheduler':
        return setOrDelete(this.schedulers, record.key.name, typed(record.value));
      case 'service': {
        const e = typed(record.value);
        if (e === undefined) this.services.delete(record.key.name);
        else this.services.set(record.key.name, e);
        return;
      }
      case 'endpoint': {
        const { service = '', machine = '', name, port = '' } = record.key;
        const e = typed(record.value);
        let of = this.endpoints.get(service);
        const at = `${machine}/${name}/${port}`;
        if (e !== undefined) {
          if (of === undefined) this.endpoints.set(service, (of = new SortedMap()));
          of.set(at, e);
        } else if (of !== undefined && of.get(at)?.key === key) {
          // Only the entry of the deleted key: a legacy and a new key may hold one endpoint.
          of.delete(at);
          if (of.size === 0) this.endpoints.delete(service);
        }
        return fileByKey(this.endpointsOfUnit, name, `${service}/${machine}/${port}`, key, e);
      }
      case 'secret':
        return setOrDelete(this.secrets, record.key.name, typed(record.value));
      case 'election':
        return setOrDelete(
          this.election,
          this.store.keys.election() + record.key.name,
          typed(record.value),
        );
      case 'other':
        return;
    }
  }
}

/** The template an instance name belongs to (`web@3.service` -> `web@.service`), if any. */
export function templateOf(name: string): string | undefined {
  const at = name.indexOf('@');
  const dot = name.lastIndexOf('.');
  if (at <= 0 || dot <= at + 1) return undefined;
  return name.slice(0, at + 1) + name.slice(dot);
}

/** Decodes any key under the prefix by its kind; keys outside the layout decode as 'other'. */
function mirrorCodec(store: Store): RecordCodec<MirrorRecord> {
  return {
    type: 'cluster record',
    encode: () => {
      throw new Error('the cluster mirror only reads');
    },
    decode: (key, raw) => {
      const parsed = store.keys.parse(key);
      if (parsed === undefined) return { kind: 'other', key: undefined, value: null };
      if (parsed.kind === 'election') {
        return { kind: 'election', key: parsed, value: raw.toString() };
      }
      const kind = parsed.kind;
      const codec = codecs[kind] as RecordCodec<RecordTypes[typeof kind]>;
      return { kind, key: parsed, value: codec.decode(key, raw) } as MirrorRecord;
    },
  };
}

function setOrDelete<K, V>(map: Map<K, V>, key: K, value: V | undefined): void {
  if (value === undefined) map.delete(key);
  else map.set(key, value);
}
