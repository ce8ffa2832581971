/**
 * State reports: `states/<name>` under the agent's lease, so a lost machine's states vanish
 * with it; a Global unit's copy reports to `states/<name>/<machine>` instead, because every
 * machine runs its own copy and one shared record would be overwritten by each and deleted
 * with the first lease to go. Reports are coalesced: {@link StateReporter.report} only records
 * the latest state and wakes one writer loop, which sends whatever changed since its last round
 * in one transaction. A burst of supervisor changes costs one write per unit at most, and a
 * slow or unreachable etcd never blocks a supervisor.
 *
 * Who may write a record: the agent a unit is placed on writes it unconditionally (the
 * placement is the authority); an agent still stopping a unit that moved away writes and
 * deletes the record only while it is under its own lease, so it never overwrites or deletes
 * the state the unit's new machine reports.
 *
 * Which key: the unit file says whether a unit is Global, so a state waits (unwritten) until
 * the reconciler has read the file of its unit, except that a unit already written keeps its
 * key until told. When a unit's key changes (its file's Global= changed) the old record, if it
 * is this agent's, is deleted in the same transaction as the new one is written.
 */
import type { ICompare, IRequestOp } from 'etcd3';
import type { Logger } from 'pino';
import type { UnitState } from '../proto/flotilla/v1/records.js';
import { codecs, isStoreError, Waker, type Store } from '../store/index.js';

/** Options of {@link StateReporter}. */
export interface StateReporterOptions {
  /** This agent's machine: the last segment of its Global units' state keys. */
  readonly machineId: string;
  /** The current lease, or undefined while unregistered (nothing is written then). */
  readonly lease: () => bigint | undefined;
  /** Whether `name` is placed on this machine now. */
  readonly isPlaced: (name: string) => boolean;
  /**
   * Whether `name` is a Global unit; undefined while its file is not known yet (its record
   * then waits: call {@link StateReporter.touch} once it is known or when it changes).
   */
  readonly isGlobal: (name: string) => boolean | undefined;
  /** Most operations per transaction. Default 100 (etcd allows 128; guarded ones nest). */
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
  /** Units with a state whose key is not known yet (see the module comment). */
  private readonly waiting = new Set<string>();
  /**
   * The keys each unit's record may be at, as far as this agent wrote them (one, or two
   * while a change of key has an unknown outcome): deleted, when not wanted, if still ours.
   */
  private readonly written = new Map<string, ReadonlySet<string>>();
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
    this.markDirty(state.name);
  }

  /** The latest reported state of `name`. */
  get(name: string): UnitState | undefined {
    return this.wanted.get(name);
  }

  /** Deletes the record of `name` (if it is still this agent's); written soon. */
  remove(name: string): void {
    if (this.closed) return;
    this.wanted.delete(name);
    this.markDirty(name);
  }

  /**
   * Writes the latest state of `name` again: it was just placed here (now it is ours), or
   * whether it is Global has just become known or changed.
   */
  touch(name: string): void {
    if (this.closed || !this.wanted.has(name)) return;
    this.markDirty(name);
  }

  /** Writes every state again: after a new lease, whose registration wrote none of them. */
  rewriteAll(): void {
    for (const name of this.wanted.keys()) this.dirty.add(name);
    this.waiting.clear();
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

  private markDirty(name: string): void {
    this.waiting.delete(name);
    this.dirty.add(name);
    this.waker.wake();
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      const lease = this.opts.lease();
      if (this.dirty.size === 0 || lease === undefined) {
        if (this.dirty.size === 0) this.settleIdle();
        await this.waker.sleep(this.dirty.size === 0 ? 60_000 : this.retryMs);
        continue;
      }
      const round = this.nextRound(lease);
      try {
        if (round.ops.length > 0) {
          await this.store.call(this.store.keys.dir('state'), (c) =>
            c.kv.txn({ success: round.ops }),
          );
        }
        for (const [name, key] of round.written) {
          if (key === undefined) this.written.delete(name);
          else this.written.set(name, new Set([key]));
        }
      } catch (err) {
        // The transaction may have been applied all the same: the new key may hold a record.
        for (const [name, key] of round.written) {
          this.dirty.add(name);
          if (key !== undefined) this.written.set(name, new Set([...this.keysOf(name), key]));
        }
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

  /**
   * The next transaction: dirty units taken in order until `batchSize` operations, each
   * leaving `dirty` (for `waiting` when its key is not known yet). `written` holds, for every
   * unit taken, the key its record is at once the transaction succeeds (undefined: none).
   */
  private nextRound(lease: bigint): {
    ops: IRequestOp[];
    written: Map<string, string | undefined>;
  } {
    const ops: IRequestOp[] = [];
    const written = new Map<string, string | undefined>();
    for (const name of this.dirty) {
      const planned = this.plan(name, lease);
      if (planned === 'wait') {
        this.dirty.delete(name);
        this.waiting.add(name);
        continue;
      }
      if (ops.length > 0 && ops.length + planned.ops.length > this.batchSize) break;
      this.dirty.delete(name);
      ops.push(...planned.ops);
      written.set(name, planned.key);
    }
    return { ops, written };
  }

  /**
   * The operations that bring `name`'s record to its latest state: a put (guarded where the
   * unit is not ours), a guarded delete of the record at its old key, or 'wait' when the key
   * of a state is not known yet.
   */
  private plan(name: string, lease: bigint): { ops: IRequestOp[]; key?: string } | 'wait' {
    const state = this.wanted.get(name);
    const old = [...this.keysOf(name)];
    const ours = (key: string, op: IRequestOp): IRequestOp => {
      const compare: ICompare = {
        key: Buffer.from(key),
        target: 'Lease',
        result: 'Equal',
        lease: lease.toString(),
      };
      return { request_txn: { compare: [compare], success: [op], failure: [] } };
    };
    const drop = (key: string): IRequestOp =>
      ours(key, { request_delete_range: { key: Buffer.from(key) } });
    if (state === undefined) return { ops: old.map(drop) };
    const global = this.opts.isGlobal(name);
    const key =
      global === undefined
        ? old[0]
        : global
          ? this.store.keys.globalState(name, this.opts.machineId)
          : this.store.keys.state(name);
    if (key === undefined) return 'wait';
    const put: IRequestOp = {
      request_put: {
        key: Buffer.from(key),
        value: Buffer.from(codecs.state.encode(state)),
        lease: lease.toString(),
      },
    };
    const ops = [this.opts.isPlaced(name) ? put : ours(key, put)];
    for (const other of old) if (other !== key) ops.push(drop(other));
    return { ops, key };
  }

  private keysOf(name: string): ReadonlySet<string> {
    return this.written.get(name) ?? new Set();
  }
}
