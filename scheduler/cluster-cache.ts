/**
 * The scheduler's mirror of the cluster: one {@link WatchCache} per record directory (units,
 * machines, machine metadata, placements, states, unscheduled). Every replica keeps it warm,
 * leader or not, so a newly elected leader plans at once. The caches list, then watch; after a
 * compaction or a reconnect they re-list by themselves and emit a 'resync', which this cache
 * passes on like any other change, so the level-triggered engine simply plans again.
 */
import type { Logger } from 'pino';
import type {
  Machine,
  MachineConfig,
  Placement,
  Unit,
  UnitState,
  Unscheduled,
} from '../proto/flotilla/v1/records.js';
import type { ReschedulingPause } from '../proto/flotilla/v1/machines.js';
import {
  codecs,
  Listeners,
  WatchCache,
  type CacheEntry,
  type CacheEvent,
  type Keys,
  type RecordKind,
  type RecordTypes,
  type Store,
  type Unsubscribe,
} from '../store/index.js';
import { buildSnapshot, DefinitionCache, type BuiltSnapshot } from './snapshot.js';

/** What changed, as far as planning is concerned. */
export interface ClusterChange {
  readonly kind: RecordKind;
  /** True for a re-list after a compaction or reconnect (or the first listing). */
  readonly resync: boolean;
}

/** A machine appeared or vanished (its presence key was written or deleted). */
export type MachineEvent =
  { readonly type: 'seen'; readonly id: string } | { readonly type: 'lost'; readonly id: string };

/** One pass's view: the planner's snapshot and the entries needed for compare-and-swap. */
export interface ClusterView extends BuiltSnapshot {
  /** Unit name -> machine id -> the placement entry (with its mod revision). */
  readonly placements: ReadonlyMap<string, ReadonlyMap<string, CacheEntry<Placement>>>;
  /** Unit name -> its unscheduled/ entry. */
  readonly unscheduled: ReadonlyMap<string, CacheEntry<Unscheduled>>;
}

/** Kinds whose changes can change a plan (states and unscheduled records cannot). */
const PLANNING_KINDS: ReadonlySet<RecordKind> = new Set([
  'unit',
  'machine',
  'machine-metadata',
  'placement',
]);

/**
 * The scheduler's list+watch mirror of units/, machines/, machine-metadata/, placements/,
 * states/, unscheduled/, and control/ (operators' requests to the leader).
 */
export class ClusterCache {
  readonly units: WatchCache<Unit>;
  readonly machines: WatchCache<Machine>;
  readonly configs: WatchCache<MachineConfig>;
  readonly placements: WatchCache<Placement>;
  /** By full key: `states/<name>`, and `states/<name>/<machine>` for a Global unit's copies. */
  readonly states: WatchCache<UnitState>;
  readonly unscheduled: WatchCache<Unscheduled>;
  readonly control: WatchCache<ReschedulingPause>;
  private readonly keys: Keys;
  private readonly definitions = new DefinitionCache();
  private readonly changes = new Listeners<ClusterChange>();
  private readonly machineEvents = new Listeners<MachineEvent>();
  private readonly reported = new Set<string>();

  /** Starts listing and watching every directory at once. */
  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
  ) {
    this.keys = store.keys;
    this.units = this.mirror('unit');
    this.machines = this.mirror('machine');
    this.configs = this.mirror('machine-metadata');
    this.placements = this.mirror('placement');
    this.states = this.mirror('state');
    this.unscheduled = this.mirror('unscheduled');
    this.control = this.mirror('control');
    this.machines.on((e) => this.onMachineEvent(e));
  }

  /** Resolves once every directory has been listed. */
  async ready(): Promise<void> {
    await Promise.all(this.all().map((c) => c.ready()));
  }

  /** Calls `fn` on every change that may change a plan (units, machines, metadata, placements). */
  onChange(fn: (change: ClusterChange) => void): Unsubscribe {
    return this.changes.on(fn);
  }

  /** Calls `fn` when a machine appears or vanishes, including those a re-list discovers. */
  onMachine(fn: (event: MachineEvent) => void): Unsubscribe {
    return this.machineEvents.on(fn);
  }

  /** Ids of the machines present now. */
  liveMachines(): string[] {
    return this.machines.entries().flatMap((e) => this.idOf(e.key) ?? []);
  }

  /**
   * Waits until the placement and unscheduled mirrors hold everything etcd holds now, at
   * least as far as creations and updates go: a new leader calls this before its first pass,
   * so it sees every placement its predecessor wrote (all of them precede the predecessor's
   * key deletion, which this replica has already seen). Deletions it may still lag behind
   * are harmless: a write conditioned on them fails and the next pass corrects it.
   */
  async catchUp(timeoutMs = 20_000): Promise<void> {
    await Promise.all(
      [this.placements, this.unscheduled].map(async (cache) => {
        const listing = await this.store.list(cache.prefix);
        let max = 0n;
        for (const kv of listing.items) if (kv.modRevision > max) max = kv.modRevision;
        if (max > 0n) await cache.waitFor(max, timeoutMs);
      }),
    );
  }

  /** The view one pass plans from. Parses each unit file once per version. */
  view(): ClusterView {
    const machines = new Map<string, Machine>();
    for (const e of this.machines.entries()) {
      const id = this.idOf(e.key);
      if (id !== undefined) machines.set(id, e.value);
    }
    const configs = new Map<string, MachineConfig>();
    for (const e of this.configs.entries()) {
      const parsed = this.keys.parse(e.key);
      if (parsed?.kind === 'machine-metadata') configs.set(parsed.name, e.value);
    }
    const units = new Map<string, Unit>();
    for (const e of this.units.entries()) {
      const parsed = this.keys.parse(e.key);
      if (parsed?.kind === 'unit') units.set(parsed.name, e.value);
    }
    const placements = new Map<string, Map<string, CacheEntry<Placement>>>();
    for (const e of this.placements.entries()) {
      const parsed = this.keys.parse(e.key);
      if (parsed?.kind !== 'placement' || parsed.machine === undefined) continue;
      let byMachine = placements.get(parsed.name);
      if (byMachine === undefined) placements.set(parsed.name, (byMachine = new Map()));
      byMachine.set(parsed.machine, e);
    }
    const unscheduled = new Map<string, CacheEntry<Unscheduled>>();
    for (const e of this.unscheduled.entries()) {
      const parsed = this.keys.parse(e.key);
      if (parsed?.kind === 'unscheduled') unscheduled.set(parsed.name, e);
    }
    const plain = new Map(
      [...placements].map(([name, m]) => [name, new Map([...m].map(([id, e]) => [id, e.value]))]),
    );
    const built = buildSnapshot({ machines, configs, units, placements: plain }, this.definitions);
    this.reportInvalid(built);
    return { ...built, placements, unscheduled };
  }

  /** Stops every watch. Idempotent. */
  async close(): Promise<void> {
    this.changes.clear();
    this.machineEvents.clear();
    await Promise.all(this.all().map((c) => c.close()));
  }

  private all(): Pick<WatchCache<unknown>, 'ready' | 'close'>[] {
    return [
      this.units,
      this.machines,
      this.configs,
      this.placements,
      this.states,
      this.unscheduled,
      this.control,
    ];
  }

  /** The list+watch cache of `kind`'s directory; changes of planning kinds feed onChange. */
  private mirror<K extends RecordKind>(kind: K): WatchCache<RecordTypes[K]> {
    const cache = new WatchCache(this.store, { prefix: this.keys.dir(kind), codec: codecs[kind] });
    cache.onError((err) =>
      this.logger.warn({ err, prefix: cache.prefix, code: err.code }, 'cluster cache: retrying'),
    );
    if (PLANNING_KINDS.has(kind)) {
      cache.on((e) => this.changes.emit({ kind, resync: e.type === 'resync' }));
    }
    return cache;
  }

  private onMachineEvent(e: CacheEvent<Machine>): void {
    const changes = e.type === 'resync' ? e.changes : [e];
    for (const c of changes) {
      const id = this.idOf(c.key);
      if (id === undefined) continue;
      if (c.type === 'delete') this.machineEvents.emit({ type: 'lost', id });
      else if (c.prev === undefined) this.machineEvents.emit({ type: 'seen', id });
    }
  }

  private idOf(key: string): string | undefined {
    const parsed = this.keys.parse(key);
    return parsed?.kind === 'machine' ? parsed.name : undefined;
  }

  /** Logs each unparseable unit version once, not on every pass. */
  private reportInvalid(built: BuiltSnapshot): void {
    for (const u of built.invalid) {
      const key = `${u.name}\u0000${u.problem}`;
      if (this.reported.has(key)) continue;
      if (this.reported.size > 10_000) this.reported.clear();
      this.reported.add(key);
      this.logger.error(
        { unit: u.name, problem: u.problem },
        'stored unit file does not parse; leaving it alone',
      );
    }
  }
}
