/**
 * State reports: `unit-states/<machine>/<name>` under the agent's lease, so a lost machine's
 * states vanish with it, and keyed by this machine first, so its etcd role may write nothing
 * else (store/etcd-auth.ts); a Global unit's copy reports to
 * `unit-states/<machine>/<name>/global`, which tells readers it is one copy of many. Reports are coalesced: {@link StateReporter.report} only records
 * the latest state and wakes one writer loop, which sends whatever changed since its last round
 * in one transaction. A burst of supervisor changes costs one write per unit at most, and a
 * slow or unreachable etcd never blocks a supervisor.
 *
 * Who may write a record (store/owned.ts): an agent puts a unit's record only while etcd holds
 * the unit's placement on its machine, or the record is still under the agent's own lease; it
 * deletes one only in the latter case. etcd checks both inside the write, not the agent's
 * mirror of its placements, which lags after a partition: an agent back under a new lease
 * never overwrites or deletes the state the unit's new machine reports.
 *
 * Level-triggered: every `verifyMs` one read-only transaction compares the mod revision of
 * each record the agent wrote with what etcd holds; a record deleted or overwritten by anyone
 * else is written again (if it is still this agent's to write; if not, the agent stops
 * checking it until the unit's state or placement changes).
 *
 * Which key: the unit file says whether a unit is Global, so a state waits (unwritten) until
 * the reconciler has read the file of its unit, except that a unit already written keeps its
 * key until told. When a unit's key changes (its file's Global= changed) the old record, if it
 * is this agent's, is deleted in the same transaction as the new one is written.
 */
import type { Logger } from 'pino';
import type { UnitState } from '../../proto/flotilla/v1/records.js';
import {
  changedRecords,
  codecs,
  isStoreError,
  Waker,
  writeOwned,
  type OwnedOp,
  type Store,
} from '../../store/index.js';

/** Options of {@link StateReporter}. */
export interface StateReporterOptions {
  /** This agent's machine: the first segment of its state keys. */
  readonly machineId: string;
  /** The current lease, or undefined while unregistered (nothing is written then). */
  readonly lease: () => bigint | undefined;
  /**
   * Whether `name` is a Global unit; undefined while its file is not known yet (its record
   * then waits: call {@link StateReporter.touch} once it is known or when it changes).
   */
  readonly isGlobal: (name: string) => boolean | undefined;
  /** Most operations per transaction. Default 100 (etcd allows 128; guarded ones nest). */
  readonly batchSize?: number;
  /** Pause after a failed write before retrying. Default 500 ms. */
  readonly retryMs?: number;
  /** How often the records written are compared with etcd's. Default 5000 ms. */
  readonly verifyMs?: number;
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
  /**
   * Where each unit's record is, and the mod revision of its last write there, for every
   * record this agent wrote and nobody is known to have changed since: what
   * {@link verify} checks.
   */
  private readonly owned = new Map<string, { readonly key: string; readonly revision: bigint }>();
  private readonly waker = new Waker();
  private readonly idle = new Set<() => void>();
  private readonly batchSize: number;
  private readonly retryMs: number;
  private readonly verifyMs: number;
  private closed = false;
  private readonly loop: Promise<void>;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private readonly opts: StateReporterOptions,
  ) {
    this.batchSize = opts.batchSize ?? 100;
    this.retryMs = opts.retryMs ?? 500;
    this.verifyMs = opts.verifyMs ?? 5_000;
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
    let verifyAt = Date.now() + this.verifyMs;
    while (!this.closed) {
      const lease = this.opts.lease();
      if (this.dirty.size > 0 && lease !== undefined) {
        await this.write(lease);
        continue;
      }
      if (this.dirty.size === 0) this.settleIdle();
      const now = Date.now();
      if (lease !== undefined && now >= verifyAt) {
        verifyAt = now + this.verifyMs;
        await this.verify();
        continue;
      }
      // Unregistered, nothing can be written or checked: look again soon (a lease wakes it).
      await this.waker.sleep(lease === undefined ? this.retryMs : verifyAt - now);
    }
  }

  /** One transaction of the next dirty units; on failure, they stay dirty and it pauses. */
  private async write(lease: bigint): Promise<void> {
    const round = this.nextRound(lease);
    try {
      const result = await writeOwned(this.store, round.ops);
      for (const [name, { key, put }] of round.units) {
        if (key === undefined) this.written.delete(name);
        else this.written.set(name, new Set([key]));
        if (key !== undefined && put !== undefined && result.applied[put] === true) {
          this.owned.set(name, { key, revision: result.revision });
        } else {
          this.owned.delete(name); // not ours (any more): nothing to keep up
        }
      }
    } catch (err) {
      // The transaction may have been applied all the same: the new key may hold a record.
      for (const [name, { key }] of round.units) {
        this.dirty.add(name);
        this.owned.delete(name);
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

  /**
   * Compares every record this agent wrote with etcd's; the ones someone else deleted or
   * overwrote since are written again (each only if it is still this agent's to write).
   */
  private async verify(): Promise<void> {
    const names = new Map<string, string>();
    const expected = new Map<string, bigint>();
    for (const [name, { key, revision }] of this.owned) {
      names.set(key, name);
      expected.set(key, revision);
    }
    if (expected.size === 0) return;
    try {
      for (const key of await changedRecords(this.store, expected)) {
        const name = names.get(key);
        if (name === undefined || this.owned.get(name)?.revision !== expected.get(key)) continue;
        this.owned.delete(name);
        this.log.info({ unit: name, key }, 'state record changed by another writer: rewriting');
        this.markDirty(name);
      }
    } catch (err) {
      this.log.debug({ err }, 'cannot check unit states; checking again later');
    }
  }

  private settleIdle(): void {
    for (const resolve of this.idle) resolve();
    this.idle.clear();
  }

  /**
   * The next transaction: dirty units taken in order until `batchSize` operations, each
   * leaving `dirty` (for `waiting` when its key is not known yet). `units` holds, for every
   * unit taken, the key its record is at once the transaction succeeds (undefined: none) and
   * the index of the op putting it there.
   */
  private nextRound(lease: bigint): {
    ops: OwnedOp[];
    units: Map<string, { key: string | undefined; put: number | undefined }>;
  } {
    const ops: OwnedOp[] = [];
    const units = new Map<string, { key: string | undefined; put: number | undefined }>();
    for (const name of this.dirty) {
      const planned = this.plan(name, lease);
      if (planned === 'wait') {
        this.dirty.delete(name);
        this.waiting.add(name);
        continue;
      }
      if (ops.length > 0 && ops.length + planned.ops.length > this.batchSize) break;
      this.dirty.delete(name);
      const put = planned.key === undefined ? undefined : ops.length;
      ops.push(...planned.ops);
      units.set(name, { key: planned.key, put });
    }
    return { ops, units };
  }

  /**
   * The operations that bring `name`'s record to its latest state: a put (first, when there
   * is one; claimed by the unit's placement here), a delete of the record at its old key, or
   * 'wait' when the key of a state is not known yet. etcd applies each only where the record
   * is this agent's (store/owned.ts).
   */
  private plan(name: string, lease: bigint): { ops: OwnedOp[]; key?: string } | 'wait' {
    const state = this.wanted.get(name);
    const old = [...this.keysOf(name)];
    const drop = (key: string): OwnedOp => ({ type: 'delete', key, lease });
    if (state === undefined) return { ops: old.map(drop) };
    const global = this.opts.isGlobal(name);
    const key =
      global === undefined
        ? old[0]
        : global
          ? this.store.keys.globalState(name, this.opts.machineId)
          : this.store.keys.state(this.opts.machineId, name);
    if (key === undefined) return 'wait';
    const ops: OwnedOp[] = [
      {
        type: 'put',
        key,
        value: codecs.state.encode(state),
        lease,
        claim: this.store.keys.placement(this.opts.machineId, name),
      },
    ];
    for (const other of old) if (other !== key) ops.push(drop(other));
    return { ops, key };
  }

  private keysOf(name: string): ReadonlySet<string> {
    return this.written.get(name) ?? new Set();
  }
}
