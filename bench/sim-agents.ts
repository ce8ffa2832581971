/**
 * Simulated agents for the scale benchmark: one WatchCache over the whole placements/
 * directory stands in for every agent's watch of its own placements/<machine>/ directory, and
 * for each placement a `unit-states/<machine>/<unit>` record is written as a real agent's StateReporter
 * (agent/sync/state-reporter.ts) would once the unit runs: active/running, on that machine, with
 * the placement's hash, under that machine's lease. When the placement goes away the state
 * is deleted, as the agent does after stopping the unit.
 *
 * Writes are coalesced per unit (only its latest wanted state is written) and sent in
 * transactions of up to 128 ops, several in flight; a unit is never in two transactions at
 * once, so its writes land in the order its placements changed. The counters the benchmark
 * waits on (placed, reported) are kept up to date on every change, so waiting costs nothing
 * in proportion to the cluster.
 */
import type { Placement, UnitState } from '../proto/flotilla/v1/records.js';
import {
  atomicTxn,
  codecs,
  MAX_TXN_OPS,
  WatchCache,
  type CacheChange,
  type Store,
} from '../store/index.js';

/** Options of {@link SimAgents}. */
export interface SimAgentsOptions {
  /** The lease of a live machine; undefined once it is gone (nothing is written for it). */
  readonly leaseOf: (machine: string) => bigint | undefined;
  /** Units whose name starts with this are counted in `placed` and `reported`. */
  readonly countedPrefix: string;
  /** Transactions in flight at most. Default 4. */
  readonly inFlight?: number;
}

/** What a placement asks of its machine's agent. */
interface Wanted {
  readonly machine: string;
  readonly hash: string;
  readonly desired: string;
}

/** The agents of every simulated machine, as one writer of states/. */
export class SimAgents {
  /** Unit -> the machine it is placed on now. */
  private readonly placedOn = new Map<string, string>();
  /** Unit -> when its current placement was seen (Unix ms). */
  private readonly placedAtMs = new Map<string, number>();
  private readonly wanted = new Map<string, Wanted>();
  /** Unit -> the machine whose active state for it is in etcd. */
  private readonly reportedOn = new Map<string, string>();
  /** Counted units whose state is reported from the machine they are placed on. */
  private readonly inSync = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly busy = new Set<string>();
  private readonly maxInFlight: number;
  private inFlight = 0;
  private placedCount = 0;
  private changeCount = 0;
  private closed = false;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Failed transactions (retried); the last error, for the report. */
  failures = 0;
  lastError: unknown;

  private constructor(
    private readonly store: Store,
    private readonly cache: WatchCache<Placement>,
    private readonly opts: SimAgentsOptions,
  ) {
    this.maxInFlight = opts.inFlight ?? 4;
    cache.on((e) => {
      if (e.type === 'resync') e.changes.forEach((c) => this.apply(c));
      else this.apply(e);
      this.pump();
    });
  }

  /** Starts watching placements/; resolves once the first listing is applied. */
  static async start(store: Store, opts: SimAgentsOptions): Promise<SimAgents> {
    const cache = new WatchCache(store, {
      prefix: store.keys.dir('placement'),
      codec: codecs.placement,
    });
    const agents = new SimAgents(store, cache, opts);
    await cache.ready();
    return agents;
  }

  /** Counted units that have a placement. */
  get placed(): number {
    return this.placedCount;
  }

  /** Counted units reported active from the machine they are placed on. */
  get reported(): number {
    return this.inSync.size;
  }

  /** Grows with every placement seen and every state written: whether anything still moves. */
  get changes(): number {
    return this.changeCount;
  }

  /** The machine `unit` is placed on now. */
  machineOf(unit: string): string | undefined {
    return this.placedOn.get(unit);
  }

  /** When the current placement of `unit` was seen (Unix ms). */
  placedAt(unit: string): number | undefined {
    return this.placedAtMs.get(unit);
  }

  /** Whether `unit` is reported active from the machine it is placed on. */
  isReported(unit: string): boolean {
    const placed = this.placedOn.get(unit);
    return placed !== undefined && this.reportedOn.get(unit) === placed;
  }

  /** The units placed on `machines` now. */
  unitsOn(machines: ReadonlySet<string>): string[] {
    return [...this.placedOn].filter(([, m]) => machines.has(m)).map(([u]) => u);
  }

  /** Their leases are gone: etcd deleted their states with them, and nothing is written there. */
  machinesGone(machines: ReadonlySet<string>): void {
    for (const [unit, machine] of this.reportedOn) {
      if (!machines.has(machine)) continue;
      this.reportedOn.delete(unit);
      this.resync(unit);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    await this.cache.close();
  }

  private apply(change: CacheChange<Placement>): void {
    const parsed = this.store.keys.parse(change.key);
    if (parsed?.kind !== 'placement' || parsed.machine === undefined) return;
    const { name, machine } = parsed;
    this.changeCount += 1;
    const counted = name.startsWith(this.opts.countedPrefix);
    if (change.type === 'put') {
      if (counted && !this.placedOn.has(name)) this.placedCount += 1;
      this.placedOn.set(name, machine);
      this.placedAtMs.set(name, Date.now());
      const p = change.value;
      this.wanted.set(name, { machine, hash: p.hash, desired: p.desiredState || 'launched' });
    } else {
      if (this.placedOn.get(name) !== machine) return; // an older placement, already replaced
      if (counted) this.placedCount -= 1;
      this.placedOn.delete(name);
      this.placedAtMs.delete(name);
      this.wanted.delete(name);
    }
    this.resync(name);
    this.dirty.add(name);
  }

  /** Recomputes whether a counted unit is reported from where it is placed. */
  private resync(unit: string): void {
    if (!unit.startsWith(this.opts.countedPrefix)) return;
    const placed = this.placedOn.get(unit);
    if (placed !== undefined && this.reportedOn.get(unit) === placed) this.inSync.add(unit);
    else this.inSync.delete(unit);
  }

  /** Starts transactions while there is work and room for them. */
  private pump(): void {
    while (!this.closed && this.inFlight < this.maxInFlight && this.dirty.size > 0) {
      const batch = this.nextBatch();
      if (batch.length === 0) return;
      this.inFlight += 1;
      void this.send(batch).finally(() => {
        this.inFlight -= 1;
        this.pump();
      });
    }
  }

  /** Up to 128 dirty units not in flight, each with the one op that brings its state up to date. */
  private nextBatch(): { unit: string; put?: Wanted & { lease: bigint } }[] {
    const batch: { unit: string; put?: Wanted & { lease: bigint } }[] = [];
    for (const unit of this.dirty) {
      if (batch.length >= MAX_TXN_OPS) break;
      if (this.busy.has(unit)) continue;
      this.dirty.delete(unit);
      const want = this.wanted.get(unit);
      const reported = this.reportedOn.get(unit);
      if (want === undefined) {
        if (reported !== undefined) batch.push({ unit });
        continue;
      }
      const lease = this.opts.leaseOf(want.machine);
      if (lease === undefined || reported === want.machine) continue; // gone, or up to date
      batch.push({ unit, put: { ...want, lease } });
    }
    for (const { unit } of batch) this.busy.add(unit);
    return batch;
  }

  private async send(batch: { unit: string; put?: Wanted & { lease: bigint } }[]): Promise<void> {
    const k = this.store.keys;
    try {
      await atomicTxn(this.store, (b) => {
        for (const { unit, put } of batch) {
          // Each machine reports under its own key: a move deletes the old machine's record.
          const was = this.reportedOn.get(unit);
          if (was !== undefined && was !== put?.machine) b.delete(k.state(was, unit));
          if (put !== undefined) {
            b.putRecord(codecs.state, k.state(put.machine, unit), stateOf(unit, put), {
              lease: put.lease,
            });
          }
        }
      });
      this.changeCount += 1;
      for (const { unit, put } of batch) {
        if (put === undefined) this.reportedOn.delete(unit);
        else this.reportedOn.set(unit, put.machine);
        this.busy.delete(unit);
        this.resync(unit);
      }
    } catch (err) {
      // A lease revoked under the transaction fails all of it: retry, without the dead ones.
      this.failures += 1;
      this.lastError = err;
      for (const { unit } of batch) {
        this.busy.delete(unit);
        this.dirty.add(unit);
      }
      await new Promise<void>((resolve) => {
        this.retryTimer = setTimeout(resolve, 200);
      });
    }
  }
}

/** The record a real agent reports for a unit it runs (units/supervisor/run.ts's running state). */
function stateOf(unit: string, want: Wanted): UnitState {
  const running = want.desired === 'launched';
  return {
    name: unit,
    machine: want.machine,
    hash: want.hash,
    loadState: 'loaded',
    image: '',
    activeState: running ? 'active' : 'inactive',
    subState: running ? 'running' : 'dead',
    containerId: `flotilla-${want.machine.slice(0, 8)}-${unit}`,
    pid: running ? 4242 : 0,
    exitStatus: -1,
    exitSignal: '',
    restarts: 0,
    since: BigInt(Date.now()),
    message: '',
    health: '',
    healthFailures: 0,
    healthChecks: [],
    restartReason: '',
  };
}
