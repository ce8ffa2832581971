/**
 * Leader election in etcd, the standard recipe: each replica grants a lease (TTL default 5 s)
 * and creates `<prefix>election/<lease-id>` under it; the candidate whose key has the lowest
 * create revision leads, the others wait for the keys before theirs to vanish. A term is
 * identified by the leader's key and its create revision: the {@link Fence} every write of
 * the leader compares (store's fencedTxn), so a deposed leader writes nothing.
 *
 * A term ends, and its AbortSignal fires, as soon as this replica knows or must assume it is
 * no longer leader: its key was deleted, etcd said the lease is gone, no renewal succeeded
 * within the TTL (etcd unreachable: the lease may expire any moment, and a successor may be
 * elected then), a fenced write was refused, or it resigned. It then campaigns again with a
 * fresh lease.
 */
import type { Logger } from 'pino';
import {
  fencedTxn,
  Listeners,
  stringCodec,
  toStoreError,
  WatchCache,
  Waker,
  type CacheEntry,
  type Fence,
  type Store,
  type Unsubscribe,
} from '../../store/index.js';
import { SchedulerError } from '../errors.js';

/** Options of {@link Leadership}. */
export interface LeadershipOptions {
  /** This replica's name (default in the daemon: hostname:pid), shown as the leader's name. */
  readonly name: string;
  /** Election lease TTL in whole seconds, at least 1. Default 5. */
  readonly ttlSeconds?: number;
  /** Announced with the candidacy, e.g. `{ api: '127.0.0.1:4700' }`. */
  readonly info?: Readonly<Record<string, string>>;
  /** Pause before campaigning again after etcd refused or failed. Default 1000 ms. */
  readonly retryMs?: number;
}

/** One leader term. `signal` aborts (with the reason) the moment the term ends. */
export interface Term {
  readonly fence: Fence;
  readonly leaseId: bigint;
  readonly signal: AbortSignal;
  /** Unix ms when this replica learnt it leads. */
  readonly since: number;
}

/** What a {@link Leadership} reports. */
export type LeadershipEvent =
  | { readonly type: 'elected'; readonly term: Term }
  | { readonly type: 'deposed'; readonly term: Term; readonly reason: string };

/** The JSON value of an election key. */
export interface CandidateValue {
  readonly name: string;
  readonly pid: number;
  readonly info: Readonly<Record<string, string>>;
  /** What the leader publishes about itself (e.g. a rescheduling pause); absent for others. */
  readonly status?: unknown;
}

/** Who leads: the candidate with the lowest create revision. */
export interface LeaderInfo extends CandidateValue {
  readonly key: string;
  readonly revision: bigint;
}

interface Candidacy {
  readonly lease: bigint;
  readonly key: string;
  readonly revision: bigint;
  validUntil: number;
  ended: string | undefined;
  timer: NodeJS.Timeout | undefined;
}

/**
 * Campaigns for leadership until closed.
 *
 * @example
 *   const leadership = new Leadership(store, { name: 'sched-1' }, logger);
 *   leadership.on((e) => (e.type === 'elected' ? engine.lead(e.term) : undefined));
 *   leadership.start();
 *   // ...at shutdown: resigns, so a successor takes over at once instead of after the TTL.
 *   await leadership.close();
 */
export class Leadership {
  readonly name: string;
  readonly ttlSeconds: number;
  private readonly info: Readonly<Record<string, string>>;
  private readonly retryMs: number;
  private readonly cache: WatchCache<string>;
  private readonly events = new Listeners<LeadershipEvent>();
  private readonly waker = new Waker();
  private current: Candidacy | undefined;
  private leading: { term: Term; abort: AbortController; candidacy: Candidacy } | undefined;
  private status: unknown;
  private closed = false;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly store: Store,
    opts: LeadershipOptions,
    private readonly logger: Logger,
  ) {
    this.name = opts.name;
    this.ttlSeconds = opts.ttlSeconds ?? 5;
    if (!Number.isInteger(this.ttlSeconds) || this.ttlSeconds < 1) {
      throw new RangeError(`election TTL must be a whole number of seconds >= 1`);
    }
    this.info = opts.info ?? {};
    this.retryMs = opts.retryMs ?? 1_000;
    this.cache = new WatchCache(store, { prefix: store.keys.election(), codec: stringCodec });
    this.cache.on(() => this.evaluate());
    this.cache.onError((err) =>
      this.logger.warn({ err, code: err.code }, 'election watch: retrying'),
    );
  }

  /** The current term while this replica leads, else undefined. */
  get term(): Term | undefined {
    return this.leading?.term;
  }

  /** Subscribes to elections and depositions of this replica. */
  on(fn: (event: LeadershipEvent) => void): Unsubscribe {
    return this.events.on(fn);
  }

  /** Starts campaigning (idempotent). */
  start(): void {
    this.loop ??= this.run();
  }

  /** Who leads as this replica's election mirror sees it; undefined when nobody does. */
  leader(): LeaderInfo | undefined {
    return lowest(this.cache.entries());
  }

  /** Ends `term` because a write under it was refused (the fence no longer holds). */
  deposed(term: Term, reason: string): void {
    if (this.leading?.term === term) this.endCandidacy(this.leading.candidacy, reason);
  }

  /** Publishes `status` in the term's election key (see {@link readLeader}); fenced. */
  async announce(term: Term, status: unknown): Promise<void> {
    this.status = status;
    const value = this.encode();
    await fencedTxn(this.store, term.fence, (b) =>
      b.put(term.fence.key, value, { lease: term.leaseId }),
    );
  }

  /**
   * Stops campaigning. With `resign` (default) the lease is revoked so the key vanishes now
   * and a successor takes over at once; without, the key expires with the lease (what a
   * crash looks like, for tests).
   */
  async close(opts: { resign?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.current !== undefined) this.endCandidacy(this.current, 'shutting down');
    this.waker.wake();
    await this.loop;
    const c = this.current; // the loop may have entered a new candidacy meanwhile
    if ((opts.resign ?? true) && c !== undefined && !this.store.isClosed) {
      await this.revoke(c.lease);
      this.logger.info({ key: c.key }, 'resigned from the election');
    }
    await this.cache.close();
    this.events.clear();
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      let c: Candidacy;
      try {
        c = await this.enter();
      } catch (err) {
        if (this.closed) break;
        this.logger.warn({ err: toStoreError(err) }, 'cannot campaign; retrying');
        await this.waker.sleep(this.retryMs);
        continue;
      }
      this.current = c;
      if (this.closed) {
        this.endCandidacy(c, 'shutting down');
        break;
      }
      this.logger.info({ key: c.key, revision: c.revision }, 'campaigning for leadership');
      this.armExpiry(c);
      this.evaluate();
      await this.keepAlive(c);
      if (!this.closed) void this.revoke(c.lease);
    }
  }

  /** Grants a lease and creates this candidate's key under it. */
  private async enter(): Promise<Candidacy> {
    const sentAt = Date.now();
    const grant = await this.store.grantLease(this.ttlSeconds, this.store.keys.election());
    const lease = grant.lease;
    const key = this.store.keys.election() + lease.toString(16).padStart(16, '0');
    try {
      const revision = await this.store.createUnderLease(key, this.encode(), lease);
      if (revision === undefined) {
        throw new SchedulerError('election', `election key ${key} already exists`);
      }
      const ttlMs = Math.min(this.ttlSeconds, grant.ttlSeconds) * 1000;
      return {
        lease,
        key,
        revision,
        validUntil: sentAt + ttlMs,
        ended: undefined,
        timer: undefined,
      };
    } catch (err) {
      void this.revoke(lease);
      throw err;
    }
  }

  /**
   * Has the store's lease worker renew the lease every TTL/3 until the candidacy ends: from
   * its own connection and event loop, so a long pass or a large watch batch on this thread
   * cannot make the election lease expire.
   */
  private async keepAlive(c: Candidacy): Promise<void> {
    const interval = (this.ttlSeconds * 1000) / 3;
    // A renewal etcd answers late still counts (validUntil is from when it was sent): the
    // deadline only says when to log it, so it is the store's call deadline, as before.
    const deadlineMs = this.store.options.callTimeoutMs;
    const stop = this.store.leases.keep(
      c.lease,
      { intervalMs: interval, retryMs: Math.min(500, interval), deadlineMs },
      (e) => {
        if (c.ended !== undefined) return;
        if (e.type === 'renewed') {
          const until = e.sentAt + Math.min(this.ttlSeconds, e.ttl) * 1000;
          c.validUntil = Math.max(c.validUntil, until);
          this.armExpiry(c);
        } else if (e.type === 'lost') {
          this.endCandidacy(c, 'etcd reports the election lease expired');
        } else {
          this.logger.warn({ err: e.error, key: c.key }, 'election lease renewal failed');
        }
      },
    );
    while (!this.closed && c.ended === undefined) await this.waker.sleep(60_000);
    stop();
  }

  /** Ends the candidacy when the lease was last confirmed more than a TTL ago. */
  private armExpiry(c: Candidacy): void {
    clearTimeout(c.timer);
    const ms = Math.max(0, c.validUntil - Date.now());
    c.timer = setTimeout(() => {
      // A timer that fires after a long task may have renewals queued behind it (the worker's
      // messages are read in the poll phase, after timers): read them before deciding.
      setImmediate(() => {
        if (c.ended !== undefined) return;
        if (Date.now() < c.validUntil) return this.armExpiry(c);
        this.endCandidacy(c, `no lease renewal within ${this.ttlSeconds} s (etcd unreachable?)`);
      });
    }, ms);
    c.timer.unref();
  }

  /** Re-decides from the election mirror whether this candidate leads. */
  private evaluate(): void {
    const c = this.current;
    if (c === undefined || c.ended !== undefined || this.closed) return;
    const mine = this.cache.get(c.key);
    if (mine === undefined || mine.createRevision !== c.revision) {
      // Not seen yet, or seen and gone: only the latter ends the candidacy.
      if (this.cache.revision >= c.revision) this.endCandidacy(c, 'the election key was deleted');
      return;
    }
    const first = lowest(this.cache.entries());
    if (first?.key === c.key) {
      if (this.leading === undefined) this.elect(c);
    } else if (this.leading !== undefined) {
      this.endCandidacy(c, `${first?.name ?? 'another candidate'} holds an earlier key`);
    }
  }

  private elect(c: Candidacy): void {
    const abort = new AbortController();
    const term: Term = {
      fence: { key: c.key, revision: c.revision },
      leaseId: c.lease,
      signal: abort.signal,
      since: Date.now(),
    };
    this.leading = { term, abort, candidacy: c };
    this.logger.info({ key: c.key, epoch: c.revision.toString() }, 'elected leader');
    this.events.emit({ type: 'elected', term });
  }

  private endCandidacy(c: Candidacy, reason: string): void {
    if (c.ended !== undefined) return;
    c.ended = reason;
    clearTimeout(c.timer);
    const leading = this.leading;
    if (leading !== undefined && leading.candidacy === c) {
      this.leading = undefined;
      this.status = undefined; // what a leader published is not a candidate's to repeat
      leading.abort.abort(new SchedulerError('deposed', reason));
      this.logger.warn({ key: c.key, reason }, 'no longer leader');
      this.events.emit({ type: 'deposed', term: leading.term, reason });
    }
    this.waker.wake();
  }

  private async revoke(lease: bigint): Promise<void> {
    if (this.store.isClosed) return;
    await this.store.revokeLease(lease, this.store.keys.election()).catch(() => undefined); // unreachable etcd: the lease expires by itself
  }

  private encode(): string {
    const value: CandidateValue = {
      name: this.name,
      pid: process.pid,
      info: this.info,
      ...(this.status === undefined ? {} : { status: this.status }),
    };
    return JSON.stringify(value);
  }
}

/**
 * Whether an election key is a candidate's: created under a lease and named by it, as
 * {@link Leadership} creates them. Anything else under `election/` (a key written by hand,
 * without a lease) is not a candidate: were it counted, it would hold the lowest revision
 * forever once the leader's key went, and no replica would ever lead again.
 */
function isCandidateKey(e: CacheEntry<string>): boolean {
  return e.lease !== 0n && e.key.endsWith(`/${e.lease.toString(16).padStart(16, '0')}`);
}

/** The candidate with the lowest create revision, decoded; undefined when there is none. */
function lowest(entries: readonly CacheEntry<string>[]): LeaderInfo | undefined {
  let first: CacheEntry<string> | undefined;
  for (const e of entries) {
    if (!isCandidateKey(e)) continue;
    if (first === undefined || e.createRevision < first.createRevision) first = e;
  }
  return first === undefined
    ? undefined
    : decodeCandidate(first.key, first.createRevision, first.value);
}

function decodeCandidate(key: string, revision: bigint, raw: string): LeaderInfo {
  try {
    const v = JSON.parse(raw) as Partial<CandidateValue> | null;
    return {
      key,
      revision,
      name: typeof v?.name === 'string' ? v.name : raw,
      pid: typeof v?.pid === 'number' ? v.pid : 0,
      info: typeof v?.info === 'object' && v.info !== null ? v.info : {},
      ...(v?.status === undefined ? {} : { status: v.status }),
    };
  } catch {
    return { key, revision, name: raw, pid: 0, info: {} };
  }
}

/** Who leads now, read from etcd (for the API on any replica); undefined when nobody runs. */
export async function readLeader(store: Store): Promise<LeaderInfo | undefined> {
  const listing = await store.list(store.keys.election());
  return lowest(
    listing.items.map((kv) => ({
      key: kv.key,
      value: kv.value.toString('utf8'),
      createRevision: kv.createRevision,
      modRevision: kv.modRevision,
      lease: kv.lease,
    })),
  );
}
