/**
 * Endpoint records: `unit-endpoints/<machine>/<service>/<unit>/<port-name>` (keyed by this
 * machine first, so its etcd role may write no other machine's), one per Port= of each
 * unit this agent runs that declares `[X-Service]`, under the agent's lease (a lost machine's
 * endpoints vanish with it). A record exists only while its unit is active and, when it has a
 * health check, healthy: the record is the truth, never a sidekick's guess.
 *
 * - {@link EndpointPublisher.serve}: the reconciler says what a running unit serves (its
 *   declaration and the ports its placement holds), level-triggered on every pass.
 * - {@link EndpointPublisher.observe}: every state of every unit; a record follows the state.
 * - {@link EndpointPublisher.withdraw}: before any stop, restart or update, the records go
 *   FIRST (the call resolves once etcd deleted them, or after a bounded wait when it does not
 *   answer); the caller then waits DrainSec= before the stop signal.
 *
 * All writes go through one queue (a round at a time), so a put computed before a withdraw
 * can never land after its delete. A round compares what is wanted with what this agent
 * wrote: O(this machine's endpoints), never the cluster's. On every new lease everything is
 * written again (the old lease took its keys), and stale records of this machine (of units
 * it no longer serves, left by a previous agent process) are deleted, level-triggered.
 */
import type { Logger } from 'pino';
import type { Endpoint, PortAssignment, UnitState } from '../../proto/flotilla/v1/records.js';
import { atomicTxn, codecs, Waker, type Store } from '../../store/index.js';
import type { ServiceDeclaration } from '../../unit/index.js';

/** Options of {@link EndpointPublisher}. */
export interface EndpointPublisherOptions {
  readonly machineId: string;
  /** The machine's public address (the first of its record's addresses). */
  readonly address: string;
  /** The current lease, or undefined while unregistered (nothing is put then). */
  readonly lease: () => bigint | undefined;
  /** Pause after a failed round before the next. Default 500 ms. */
  readonly retryMs?: number;
  /** Longest a withdraw waits for etcd before the stop goes ahead anyway. Default 2000 ms. */
  readonly withdrawWaitMs?: number;
}

/** Operations per transaction (etcd allows 128). */
const BATCH = 100;

/** What one running unit serves, as the reconciler last said. */
interface Served {
  readonly decl: ServiceDeclaration;
  readonly ports: readonly PortAssignment[];
  readonly checked: boolean;
}

/** Writes and deletes this machine's endpoint records. */
export class EndpointPublisher {
  private readonly served = new Map<string, Served>();
  private readonly states = new Map<string, UnitState>();
  /** Key -> record, for every endpoint that should exist now. */
  private readonly wanted = new Map<string, Endpoint>();
  /** Unit -> its wanted keys. */
  private readonly keysOf = new Map<string, string[]>();
  /** Key -> the JSON and lease this agent last put (deleted keys are absent). */
  private readonly written = new Map<string, { readonly json: string; readonly lease: bigint }>();
  /** Unit -> since when its endpoints have been wanted (Unix ms). */
  private readonly since = new Map<string, number>();
  private queue: Promise<void> = Promise.resolve();
  private readonly waker = new Waker();
  private readonly retryMs: number;
  private readonly withdrawWaitMs: number;
  private dirty = false;
  private closed = false;
  private readonly loop: Promise<void>;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private readonly opts: EndpointPublisherOptions,
  ) {
    this.retryMs = opts.retryMs ?? 500;
    this.withdrawWaitMs = opts.withdrawWaitMs ?? 2_000;
    this.loop = this.run();
  }

  /**
   * `unit` runs here and serves `decl` on `ports` (its placement's); `checked`: it has a
   * health check, so it serves only while healthy. Idempotent; a changed port or tag rewrites.
   */
  serve(
    unit: string,
    decl: ServiceDeclaration | undefined,
    ports: readonly PortAssignment[],
    checked: boolean,
  ): void {
    if (decl === undefined) return this.forget(unit);
    const before = this.served.get(unit);
    if (before !== undefined && before.decl === decl && samePorts(before.ports, ports)) return;
    this.served.set(unit, { decl, ports, checked });
    this.update(unit);
  }

  /** A unit's latest state (from the UnitManager): its endpoints follow it. */
  observe(state: UnitState): void {
    const served = this.served.has(state.name);
    // States of units that serve nothing are kept only while they run (for a serve to come).
    if (served || state.activeState === 'active') this.states.set(state.name, state);
    else this.states.delete(state.name);
    if (served) this.update(state.name);
  }

  /**
   * Deletes `unit`'s endpoints and resolves once etcd has (or {@link withdrawWaitMs} passed):
   * call before stopping it. Returns its DrainSec= when it had endpoints (wait that long
   * before the stop signal), else 0. The unit serves again only after a new {@link serve}.
   */
  async withdraw(unit: string): Promise<number> {
    // Wanted keys are written or being written: either way the stop must wait for the delete.
    const had = (this.keysOf.get(unit)?.length ?? 0) > 0;
    const drainMs = this.served.get(unit)?.decl.drainMs ?? 0;
    this.forget(unit);
    if (this.closed) return 0;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.withdrawWaitMs);
    });
    // A round that fails is retried by the loop; the stop goes ahead after the bounded wait.
    await Promise.race([this.flush().catch(() => timeout), timeout]);
    clearTimeout(timer);
    return had ? drainMs : 0;
  }

  /** Writes every wanted record again (a new lease: the old one took them with it). */
  rewriteAll(): void {
    this.written.clear();
    this.wake();
  }

  /**
   * Deletes the records of this machine that no unit here serves (a previous agent's): one
   * listing of this machine's directory. Level-triggered: call after every registration.
   */
  async removeStale(): Promise<void> {
    const stale: string[] = [];
    const { items } = await this.store.list(this.store.keys.endpointsOn(this.opts.machineId));
    for (const kv of items) if (!this.wanted.has(kv.key)) stale.push(kv.key);
    if (stale.length === 0) return;
    this.log.info({ endpoints: stale.length }, 'removing endpoints of units no longer here');
    await this.enqueue(async () => {
      for (let i = 0; i < stale.length; i += BATCH) {
        const chunk = stale.slice(i, i + BATCH).filter((k) => !this.wanted.has(k));
        await atomicTxn(this.store, (b) => chunk.forEach((k) => b.delete(k)));
        for (const k of chunk) this.written.delete(k);
      }
    });
  }

  /** Stops writing; records stay until deleted or their lease goes. */
  async close(): Promise<void> {
    this.closed = true;
    this.waker.wake();
    await this.loop;
    await this.queue.catch(() => undefined);
  }

  private forget(unit: string): void {
    if (!this.served.delete(unit) && !this.keysOf.has(unit)) return;
    this.update(unit);
  }

  /** Recomputes the wanted records of `unit` from what it serves and its state. */
  private update(unit: string): void {
    for (const key of this.keysOf.get(unit) ?? []) this.wanted.delete(key);
    this.keysOf.delete(unit);
    const s = this.served.get(unit);
    const state = this.states.get(unit);
    const up =
      s !== undefined &&
      state !== undefined &&
      state.activeState === 'active' &&
      state.subState === 'running' &&
      (!s.checked || state.health === 'healthy');
    if (!up) this.since.delete(unit);
    else {
      const since = this.since.get(unit) ?? Date.now();
      this.since.set(unit, since);
      const keys: string[] = [];
      for (const want of s.decl.ports) {
        const port = s.ports.find((p) => p.name === want.name)?.number ?? 0;
        if (port <= 0) continue;
        const key = this.store.keys.endpoint(s.decl.name, this.opts.machineId, unit, want.name);
        keys.push(key);
        this.wanted.set(key, {
          service: s.decl.name,
          unit,
          machine: this.opts.machineId,
          address: this.opts.address,
          port,
          portName: want.name,
          tags: [...s.decl.tags],
          health: s.checked ? 'passing' : 'none',
          sinceUnixMs: BigInt(since),
        });
      }
      this.keysOf.set(unit, keys);
    }
    this.wake();
  }

  private wake(): void {
    this.dirty = true;
    this.waker.wake();
  }

  /** Runs `fn` after every write queued before it (one round at a time). */
  private enqueue(fn: () => Promise<void>): Promise<void> {
    const next = this.queue.then(fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** A round now, after those queued: resolves once it wrote (rejects when etcd refused). */
  private flush(): Promise<void> {
    this.dirty = false;
    return this.enqueue(() => this.round());
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      if (!this.dirty) {
        await this.waker.sleep(60_000);
        continue;
      }
      try {
        await this.flush();
      } catch (err) {
        this.dirty = true;
        this.log.debug({ err }, 'endpoint write failed: retrying');
        await this.waker.sleep(this.retryMs);
      }
    }
  }

  /** Puts what is wanted and not written (under the current lease), deletes the rest. */
  private async round(): Promise<void> {
    const lease = this.opts.lease();
    const ops: { key: string; json?: string }[] = [];
    for (const key of this.written.keys()) if (!this.wanted.has(key)) ops.push({ key });
    if (lease !== undefined) {
      for (const [key, record] of this.wanted) {
        const json = codecs.endpoint.encode(record);
        const w = this.written.get(key);
        if (w === undefined || w.json !== json || w.lease !== lease) ops.push({ key, json });
      }
    } else if (this.wanted.size > 0) this.dirty = true; // put once registered
    for (let i = 0; i < ops.length; i += BATCH) {
      const chunk = ops.slice(i, i + BATCH);
      await atomicTxn(this.store, (b) => {
        for (const op of chunk) {
          if (op.json === undefined) b.delete(op.key);
          else b.put(op.key, op.json, { lease: lease as bigint });
        }
      });
      for (const op of chunk) {
        if (op.json === undefined) this.written.delete(op.key);
        else this.written.set(op.key, { json: op.json, lease: lease as bigint });
      }
    }
  }
}

function samePorts(a: readonly PortAssignment[], b: readonly PortAssignment[]): boolean {
  return (
    a.length === b.length && a.every((p, i) => p.number === b[i]?.number && p.name === b[i]?.name)
  );
}
