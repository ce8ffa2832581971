/**
 * State reports: `states/<name>` under the agent's lease, so a lost machine's states vanish
 * with it. Reports are coalesced: {@link StateReporter.report} only records the latest state
 * and wakes one writer loop, which sends whatever changed since its last round in one
 * transaction. A burst of supervisor changes costs one write per unit at most, and a slow or
 * unreachable etcd never blocks a supervisor.
 *
 * Who may write a record: the agent a unit is placed on writes it unconditionally (the
 * placement is the authority); an agent still stopping a unit that moved away writes and
 * deletes the record only while it is under its own lease, so it never overwrites or deletes
 * the state the unit's new machine reports.
 */
import type { ICompare, IRequestOp } from 'etcd3';
import type { Logger } from 'pino';
import type { UnitState } from '../proto/flotilla/v1/records.js';
import { codecs, isStoreError, Waker, type Store } from '../store/index.js';

/** Options of {@link StateReporter}. */
export interface StateReporterOptions {
  /** The current lease, or undefined while unregistered (nothing is written then). */
  readonly lease: () => bigint | undefined;
  /** Whether `name` is placed on this machine now. */
  readonly isPlaced: (name: string) => boolean;
  /** Most keys per transaction. Default 100 (etcd allows 128 ops; guarded ones nest). */
  readonly batchSize?: number;
  /** Pause after a failed write before retrying. Default 500 ms. */
  readonly retryMs?: number;
  /** etcd says the lease is gone (before the presence noticed): re-register now. */
  readonly onLeaseLost?: () => void;
}

/** Coalescing writer of this agent's state records. */
export class StateReporter {
  /** What etcd should hold: the latest state of every unit with a record. */
  private readonly wanted = new Map<string, UnitState>();
  private readonly dirty = new Set<string>();
  private readonly waker = new Waker();
  private readonly idle = new Set<() => void>();
  private readonly batchSize: number;
  private readonly retryMs: number;
  private closed = false;
  private readonly loop: Promise<void>;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private readonly opts: StateReporterOptions,
  ) {
    this.batchSize = opts.batchSize ?? 100;
    this.retryMs = opts.retryMs ?? 500;
    this.loop = this.run();
  }

  /** Records `state` as the latest of its unit; written soon. Never blocks, never throws. */
  report(state: UnitState): void {
    if (this.closed) return;
    this.wanted.set(state.name, state);
    this.dirty.add(state.name);
    this.waker.wake();
  }

  /** The latest reported state of `name`. */
  get(name: string): UnitState | undefined {
    return this.wanted.get(name);
  }

  /** Deletes the record of `name` (if it is still this agent's); written soon. */
  remove(name: string): void {
    if (this.closed) return;
    this.wanted.delete(name);
    this.dirty.add(name);
    this.waker.wake();
  }

  /** Writes the latest state of `name` again (it was just placed here: now it is ours). */
  touch(name: string): void {
    if (this.closed || !this.wanted.has(name)) return;
    this.dirty.add(name);
    this.waker.wake();
  }

  /** Writes every state again: after a new lease, whose registration wrote none of them. */
  rewriteAll(): void {
    for (const name of this.wanted.keys()) this.dirty.add(name);
    this.waker.wake();
  }

  /** Resolves once nothing is left to write (or the reporter closed). For tests and shutdown. */
  flushed(): Promise<void> {
    if (this.dirty.size === 0 || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.idle.add(resolve));
  }

  /** Stops writing (pending reports are dropped: the lease, revoked or expiring, owns them). */
  async close(): Promise<void> {
    this.closed = true;
    this.waker.wake();
    await this.loop;
    for (const resolve of this.idle) resolve();
    this.idle.clear();
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      const lease = this.opts.lease();
      if (this.dirty.size === 0 || lease === undefined) {
        if (this.dirty.size === 0) this.settleIdle();
        await this.waker.sleep(this.dirty.size === 0 ? 60_000 : this.retryMs);
        continue;
      }
      const names = [...this.dirty].slice(0, this.batchSize);
      for (const name of names) this.dirty.delete(name);
      try {
        await this.write(names, lease);
      } catch (err) {
        for (const name of names) this.dirty.add(name);
        if (isStoreError(err, 'lease-lost')) this.opts.onLeaseLost?.();
        if (!this.closed) {
          const level = isStoreError(err, 'unavailable') || isStoreError(err, 'deadline');
          this.log[level ? 'debug' : 'warn']({ err }, 'cannot write unit states; retrying');
          await this.waker.sleep(this.retryMs);
        }
      }
    }
  }

  private settleIdle(): void {
    for (const resolve of this.idle) resolve();
    this.idle.clear();
  }

  /** One transaction for `names`: puts and deletes, guarded where the unit is not ours. */
  private async write(names: readonly string[], lease: bigint): Promise<void> {
    const ops: IRequestOp[] = [];
    for (const name of names) {
      const key = Buffer.from(this.store.keys.state(name));
      const state = this.wanted.get(name);
      const op: IRequestOp =
        state === undefined
          ? { request_delete_range: { key } }
          : {
              request_put: {
                key,
                value: Buffer.from(codecs.state.encode(state)),
                lease: lease.toString(),
              },
            };
      if (state !== undefined && this.opts.isPlaced(name)) {
        ops.push(op);
        continue;
      }
      const ours: ICompare = { key, target: 'Lease', result: 'Equal', lease: lease.toString() };
      ops.push({ request_txn: { compare: [ours], success: [op], failure: [] } });
    }
    await this.store.call(this.store.keys.dir('state'), (c) => c.kv.txn({ success: ops }));
  }
}
