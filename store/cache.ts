/**
 * WatchCache: a local mirror of one key prefix that consumers can read at any time and
 * follow change by change. It lists once at revision R, then watches from R+1; after a
 * dropped watch it resumes from the last applied revision + 1, so every change is applied
 * exactly once and in order. When that revision is compacted away it lists again and emits
 * one 'resync' event holding the difference, so consumers still converge on etcd's content.
 *
 * Built on the raw etcd watch stream rather than etcd3's Watcher, which moves its resume
 * revision to the server's current revision when a watch is (re)created and can therefore
 * skip events that were pending when a second disconnect hits, and which reports compaction
 * only as an error message.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { pastDeadline } from '../lib/sliced.js';
import type { KeyValue, Store, WatchStream } from './client.js';
import type { WatchEvent, WatchResponse } from './watch-codec.js';
import { StoreError, toStoreError } from './errors.js';
import { Listeners, Waker, type Unsubscribe } from './listeners.js';
import type { RecordCodec } from './records.js';

/** A cached record with the revisions needed for compare-and-swap. */
export interface CacheEntry<T> {
  readonly key: string;
  readonly value: T;
  readonly createRevision: bigint;
  readonly modRevision: bigint;
  /** 0n when the key has no lease. */
  readonly lease: bigint;
}

/**
 * One change. `revision` is the etcd revision it happened at (the listing's revision for
 * synthetic ones). `synthetic` marks changes inferred from a re-list, not seen one by one.
 */
export type CacheChange<T> =
  | {
      readonly type: 'put';
      readonly key: string;
      readonly value: T;
      readonly entry: CacheEntry<T>;
      /** The value it replaced, if the key existed. */
      readonly prev?: T;
      readonly revision: bigint;
      readonly synthetic: boolean;
    }
  | {
      readonly type: 'delete';
      readonly key: string;
      /** The value it had. */
      readonly prev: T;
      readonly revision: bigint;
      readonly synthetic: boolean;
    };

/**
 * What listeners receive. A 'resync' follows every listing: the first (`initial`) holds the
 * whole content as puts; later ones (after compaction) hold what changed while the watch
 * could not replay it. The cache already reflects a change when its event is emitted.
 */
export type CacheEvent<T> =
  | CacheChange<T>
  | {
      readonly type: 'resync';
      readonly revision: bigint;
      readonly initial: boolean;
      readonly changes: readonly CacheChange<T>[];
    };

/** Options of a {@link WatchCache}. */
export interface WatchCacheOptions<T> {
  /** The key prefix to mirror, e.g. `keys.placementsOn(machine)`. */
  prefix: string;
  /** Decodes values; a throw (StoreError `corrupt`) drops the key and is reported via onError. */
  codec: RecordCodec<T>;
  /** Keys per page of a listing. Default 500. */
  pageSize?: number;
  /** First pause before reconnecting a dropped watch or retrying a listing. Default 100 ms. */
  retryMinMs?: number;
  /** Longest such pause (the backoff doubles up to it). Default 2000 ms. */
  retryMaxMs?: number;
}

type Outcome = 'compacted' | 'dropped' | 'closed';

/**
 * The most changes applied in one turn of the event loop (about 10-50 ms of decoding and
 * indexing, more when a change is a count of thousands of instances); a larger watch response
 * is applied in slices of this many, whole revisions each.
 */
const SLICE_EVENTS = 500;

/**
 * The longest stretch of applying changes in one turn, ms: 500 agents' state reports took
 * 110 ms on a host at half a core, which every other task of the process waited out. A
 * turn ends at the first revision boundary after this, or after {@link SLICE_EVENTS}.
 */
const SLICE_MS = 15;

/** How often, while someone waits for the watch, etcd is asked how far it has come. */
const PROGRESS_REQUEST_MS = 50;

/**
 * A watch that applied a change this recently is still delivering: it reaches a waited-for
 * revision by itself, and etcd's progress answer is not checked (the check would fail anyway).
 */
const DELIVERING_MS = 100;

/** The longest pause between two checks of etcd's progress answers (see `progressed`). */
const VERIFY_PAUSE_MAX_MS = 2_000;

/**
 * A list-then-watch mirror of one prefix. Create it, subscribe, then `await ready()`.
 *
 * @example
 *   const cache = new WatchCache(store, { prefix: keys.dir('machine'), codec: codecs.machine });
 *   cache.on((e) => (e.type === 'delete' ? lost(e.prev) : undefined));
 *   await cache.ready();
 */
export class WatchCache<T> {
  readonly prefix: string;
  private readonly codec: RecordCodec<T>;
  private readonly pageSize: number;
  private readonly retryMinMs: number;
  private readonly retryMaxMs: number;
  private readonly map = new Map<string, CacheEntry<T>>();
  private readonly events = new Listeners<CacheEvent<T>>();
  private readonly errors = new Listeners<StoreError>();
  private readonly revisions = new Listeners<bigint>();
  private readonly waiters = new Set<{ revision: bigint; resolve: () => void }>();
  private readonly waker = new Waker();
  private rev = 0n;
  /** The highest revision etcd said (and confirmed) the watch has delivered everything up to. */
  private progress = 0n;
  private verifying = false;
  /** When the watch last applied a change, and when progress may next be checked (ms). */
  private changedAt = -Infinity;
  private verifyAfter = -Infinity;
  /** Asks etcd for the watch's progress while anyone waits. */
  private asking: NodeJS.Timeout | undefined;
  /** Keys whose values did not decode: in etcd, but not in the map. */
  private readonly skipped = new Set<string>();
  /** Set while a listener finishes a revision over several turns ({@link WatchCache.hold}). */
  private holding: Promise<void> | undefined;
  /** That revision: until the hold ends, {@link WatchCache.revision} is the one before it. */
  private heldAt: bigint | undefined;
  /** The revision of the change being applied (what a listener holds when it calls hold). */
  private applying = 0n;
  private listed = false;
  private closed = false;
  private cancelStream: (() => void) | undefined;
  private requestProgress: (() => void) | undefined;
  private readonly loop: Promise<void>;
  private readonly first: Promise<void>;
  private settleFirst: ((err?: StoreError) => void) | undefined;

  /** Starts listing and watching at once. */
  constructor(
    private readonly store: Store,
    opts: WatchCacheOptions<T>,
  ) {
    this.prefix = opts.prefix;
    this.codec = opts.codec;
    this.pageSize = opts.pageSize ?? 500;
    this.retryMinMs = opts.retryMinMs ?? 100;
    this.retryMaxMs = opts.retryMaxMs ?? 2_000;
    this.first = new Promise<void>((resolve, reject) => {
      this.settleFirst = (err) => (err === undefined ? resolve() : reject(err));
    });
    this.first.catch(() => undefined); // a close() before ready is not an unhandled rejection
    this.loop = this.run();
  }

  /** Resolves after the first listing is applied; rejects (`closed`) if closed before. */
  ready(): Promise<void> {
    return this.first;
  }

  /**
   * Every change up to this revision is applied (0n before the first listing). While a
   * listener holds a revision, the one before it: a reader that waits for the held revision
   * waits until the listener has finished with it.
   */
  get revision(): bigint {
    const reached = this.progress > this.rev ? this.progress : this.rev;
    return this.heldAt !== undefined && this.heldAt <= reached ? this.heldAt - 1n : reached;
  }

  get size(): number {
    return this.map.size;
  }

  get(key: string): CacheEntry<T> | undefined {
    return this.map.get(key);
  }

  /** A snapshot of the entries, in key order. */
  entries(): CacheEntry<T>[] {
    return [...this.map.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /** Subscribes to changes, in order, each exactly once. */
  on(fn: (event: CacheEvent<T>) => void): Unsubscribe {
    return this.events.on(fn);
  }

  /**
   * Called after each watch response is applied, with the revision reached: the changes it
   * emitted one by one before form one transaction or more, complete.
   */
  onRevision(fn: (revision: bigint) => void): Unsubscribe {
    return this.revisions.on(fn);
  }

  /**
   * Keys in etcd whose values did not decode (left out of the cache): how many, and the first
   * `limit` in key order, so a warning can name a few without growing with them.
   */
  corrupt(limit: number): { count: number; keys: string[] } {
    const keys: string[] = [];
    for (const key of this.skipped) {
      keys.push(key);
      keys.sort();
      if (keys.length > limit) keys.pop();
    }
    return { count: this.skipped.size, keys };
  }

  /**
   * For a listener, while it handles a change: the cache applies no change of a later revision
   * until `until` settles (the watch stream waits meanwhile), so the listener may finish that
   * revision's work over several turns of the event loop without a later change overtaking it.
   * Changes of the same revision that follow in the response are still applied at once, and
   * {@link WatchCache.revision} stays before the held one until `until` settles.
   */
  hold(until: Promise<void>): void {
    const before = this.holding;
    this.heldAt ??= this.applying;
    const held: Promise<void> = Promise.all([before, until.catch(() => undefined)]).then(() => {
      if (this.holding !== held) return;
      this.holding = undefined;
      this.heldAt = undefined;
      this.wake();
    });
    this.holding = held;
  }

  /** Subscribes to problems the cache recovers from by itself (etcd down, corrupt values). */
  onError(fn: (error: StoreError) => void): Unsubscribe {
    return this.errors.on(fn);
  }

  /**
   * Resolves once the cache has applied `revision` (e.g. the revision a write under this
   * prefix returned): read-your-writes. Rejects with `deadline` after `timeoutMs`.
   */
  waitFor(revision: bigint, timeoutMs = 20_000): Promise<void> {
    if (this.revision >= revision) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = {
        revision,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        this.stopAsking();
        reject(new StoreError('deadline', `cache ${this.prefix} did not reach ${revision}`));
      }, timeoutMs);
      this.waiters.add(waiter);
      // The revision may have been reached by writes outside this prefix, which the watch does
      // not report: etcd's answer to a progress request says how far the watch has come. etcd
      // ignores the request while the watch is still catching up, so it is asked again; one
      // request per interval, however many wait.
      if (this.asking === undefined) {
        this.asking = setInterval(() => this.requestProgress?.(), PROGRESS_REQUEST_MS);
        this.requestProgress?.();
      }
    });
  }

  private stopAsking(): void {
    if (this.waiters.size > 0) return;
    clearInterval(this.asking);
    this.asking = undefined;
  }

  /** Stops watching and releases the watch stream. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.asking);
    this.cancelStream?.();
    this.waker.wake();
    await this.loop;
    this.settleFirst?.(new StoreError('closed', `cache ${this.prefix} closed before ready`));
    this.events.clear();
    this.errors.clear();
    this.revisions.clear();
  }

  private async run(): Promise<void> {
    let backoff = this.retryMinMs;
    const pause = async (): Promise<void> => {
      await this.waker.sleep(backoff);
      backoff = Math.min(backoff * 2, this.retryMaxMs);
    };
    while (!this.closed) {
      while (this.holding !== undefined) await this.holding;
      if (!this.listed) {
        try {
          await this.relist();
          backoff = this.retryMinMs;
        } catch (err) {
          if (!this.closed) this.errors.emit(toStoreError(err, this.prefix));
          await pause();
        }
        continue;
      }
      const outcome = await this.watch(() => (backoff = this.retryMinMs));
      if (outcome === 'compacted') this.listed = false;
      else if (outcome === 'dropped') await pause();
    }
  }

  /** Lists at one revision and applies the difference to the cache as one 'resync'. */
  private async relist(): Promise<void> {
    const initial = this.rev === 0n;
    const listing = await this.store.list(this.prefix, { pageSize: this.pageSize });
    if (this.closed) return;
    const changes: CacheChange<T>[] = [];
    const seen = new Set<string>();
    this.skipped.clear();
    for (const kv of listing.items) {
      seen.add(kv.key);
      const old = this.map.get(kv.key);
      if (old !== undefined && old.modRevision === kv.modRevision) continue;
      const change = this.applyPut(kv, listing.revision, true);
      if (change !== undefined) changes.push(change);
    }
    for (const key of [...this.map.keys()]) {
      if (!seen.has(key)) {
        const change = this.applyDelete(key, listing.revision, true);
        if (change !== undefined) changes.push(change);
      }
    }
    this.listed = true;
    this.advance(listing.revision);
    this.events.emit({ type: 'resync', revision: listing.revision, initial, changes });
    this.settleFirst?.();
    this.settleFirst = undefined;
  }

  /** One watch stream from rev+1 until it drops, is compacted, or the cache closes. */
  private async watch(onCreated: () => void): Promise<Outcome> {
    let stream: WatchStream;
    try {
      stream = await this.store.call(this.prefix, (c) => c.watchStream(), 'watch');
    } catch (err) {
      if (!this.closed) this.errors.emit(toStoreError(err, this.prefix));
      return this.closed ? 'closed' : 'dropped';
    }
    return new Promise<Outcome>((resolve) => {
      let done = false;
      const finish = (outcome: Outcome, err?: unknown): void => {
        if (done) return;
        done = true;
        this.cancelStream = undefined;
        this.requestProgress = undefined;
        stream.cancel(); // ends the RPC, and with it the server-side watcher
        if (err !== undefined && !this.closed) this.errors.emit(toStoreError(err, this.prefix));
        resolve(outcome);
      };
      /** Changes applied since the stream last waited for the next turn of the event loop. */
      let sinceTurn = 0;
      /** When this turn's applying should end (set by its first response). */
      let turnEnds = 0;
      /** Responses waiting to be applied in turn (sliced, or behind a hold), and their chain. */
      let queued = 0;
      let chain = Promise.resolve();
      const later = (events: readonly WatchEvent[]): void => {
        queued += 1;
        stream.pause();
        chain = chain
          .then(() => this.applySliced(events, () => done))
          .finally(() => {
            queued -= 1;
            if (!done && queued === 0) stream.resume();
          });
      };
      this.cancelStream = () => finish('closed');
      this.requestProgress = () => stream.write({ progress: true });
      if (this.closed) return finish('closed');
      stream.on('data', (res: WatchResponse) => {
        if (done) return;
        if (res.compactRevision > 0n) return finish('compacted');
        if (res.canceled) {
          return finish(
            'dropped',
            new StoreError('unavailable', `watch canceled: ${res.cancelReason}`),
          );
        }
        if (res.created) onCreated();
        if (!res.created && res.events.length === 0) {
          // A progress notification: every change up to its revision has been delivered.
          this.progressed(res.revision);
          return;
        }
        // A watch catching up after a big change gets tens of thousands of changes in one
        // response (a 100,000-instance scale's placements), or many responses in one turn of
        // the event loop (gRPC pushes every message a network read holds): applied at once,
        // they held the thread for over a second. The stream waits while a large response is
        // applied in slices, and after about a slice's worth of changes for the next turn.
        // It also waits while a listener holds a revision (hold): responses then queue, in order.
        if (queued > 0 || res.events.length > SLICE_EVENTS) return later(res.events);
        if (sinceTurn === 0) turnEnds = performance.now() + SLICE_MS;
        const applied = this.applyEvents(res.events, turnEnds);
        if (applied < res.events.length || this.holding !== undefined) {
          sinceTurn = 0;
          return later(res.events.slice(applied));
        }
        sinceTurn += res.events.length;
        if (sinceTurn < SLICE_EVENTS && performance.now() < turnEnds) return;
        sinceTurn = 0;
        stream.pause();
        setImmediate(() => {
          if (!done && queued === 0) stream.resume();
        });
      });
      stream.on('error', (err) => finish('dropped', err));
      stream.on('end', () =>
        finish('dropped', new StoreError('unavailable', 'watch stream ended')),
      );
      stream.write({
        create: { prefix: this.prefix, startRevision: this.rev + 1n, progressNotify: true },
      });
    });
  }

  /**
   * Applies a large batch of changes a slice at a time, the event loop running between
   * slices; a slice never splits a revision (one transaction's changes arrive together, as in
   * a smaller response), so consumers see what etcd could have sent as several responses.
   * Stops between slices once `stopped` says so: the watch that replaces this one resumes
   * after the last change applied.
   */
  private async applySliced(events: readonly WatchEvent[], stopped: () => boolean): Promise<void> {
    let start = 0;
    while (start < events.length || this.holding !== undefined) {
      // Each slice in a turn of its own, the first too: what queued it may have used this one.
      if (this.holding !== undefined) await this.holding;
      else await nextTurn();
      if (stopped() || this.closed) return;
      if (this.holding !== undefined || start >= events.length) continue;
      let end = Math.min(events.length, start + SLICE_EVENTS);
      const revision = events[end - 1]?.kv.modRevision;
      while (end < events.length && events[end]?.kv.modRevision === revision) end += 1;
      start += this.applyEvents(events.slice(start, end), performance.now() + SLICE_MS);
    }
  }

  /**
   * Applies `events` in order and returns how many it applied: all of them, unless a listener
   * holds a revision (hold), or the clock passed `ends` (performance.now()), where it stops
   * before the first change of a later revision.
   */
  private applyEvents(events: readonly WatchEvent[], ends: number): number {
    let last = this.rev;
    let applied = 0;
    const late = pastDeadline(ends);
    for (const ev of events) {
      const { kv } = ev;
      const over = late(); // read for every change, so the clock is read every 16
      if (applied > 0 && kv.modRevision > last && (this.holding !== undefined || over)) break;
      applied += 1;
      if (kv.modRevision <= this.rev) continue; // already applied before a reconnect
      const change =
        ev.type === 'delete'
          ? this.applyDelete(kv.key, kv.modRevision, false)
          : this.applyPut(kv, kv.modRevision, false);
      if (kv.modRevision > last) last = kv.modRevision;
      this.applying = kv.modRevision;
      if (change !== undefined) this.events.emit(change);
    }
    this.advance(last);
    if (applied > 0) {
      this.changedAt = performance.now();
      this.revisions.emit(this.rev);
    }
    return applied;
  }

  private applyPut(kv: KeyValue, revision: bigint, synthetic: boolean): CacheChange<T> | undefined {
    let value: T;
    try {
      value = this.codec.decode(kv.key, kv.value);
    } catch (err) {
      this.errors.emit(toStoreError(err, kv.key));
      const change = this.applyDelete(kv.key, revision, synthetic);
      this.skipped.add(kv.key);
      return change;
    }
    this.skipped.delete(kv.key);
    const prev = this.map.get(kv.key);
    const entry: CacheEntry<T> = {
      key: kv.key,
      value,
      createRevision: kv.createRevision,
      modRevision: kv.modRevision,
      lease: kv.lease,
    };
    this.map.set(kv.key, entry);
    const base = { type: 'put' as const, key: kv.key, value, entry, revision, synthetic };
    return prev === undefined ? base : { ...base, prev: prev.value };
  }

  private applyDelete(
    key: string,
    revision: bigint,
    synthetic: boolean,
  ): CacheChange<T> | undefined {
    this.skipped.delete(key);
    const prev = this.map.get(key);
    if (prev === undefined) return undefined;
    this.map.delete(key);
    return { type: 'delete', key, prev: prev.value, revision, synthetic };
  }

  private advance(revision: bigint): void {
    if (revision > this.rev) this.rev = revision;
    this.wake();
  }

  /**
   * etcd answered a progress request with `revision`. etcd 3.4 answers from a side channel,
   * without waiting for the watch to deliver what came before (etcd-io/etcd#15220), so the
   * answer is only a hint: it is believed once etcd confirms, at that revision, that nothing
   * under the prefix changed since the last change applied (no key modified after it, and as
   * many keys as the cache knows, so none deleted). Kept apart from `rev`, which only applied
   * changes move, so a reconnect always resumes after the last change really applied.
   *
   * That check reads the whole prefix in etcd, so it is made only when it can succeed and
   * seldom: not while the watch is still delivering changes (it gets there by itself; during a
   * 100,000-instance scale these checks, failing one after another, took 45% of a throttled
   * etcd's CPU and starved its lease renewals), and after a pause of 4 times the last check's
   * duration (at most {@link VERIFY_PAUSE_MAX_MS}).
   */
  private progressed(revision: bigint): void {
    if (revision <= this.revision || this.verifying || this.waiters.size === 0) return;
    if (this.holding !== undefined) return; // changes wait behind the hold: the check must fail
    const now = performance.now();
    if (now - this.changedAt < DELIVERING_MS || now < this.verifyAfter) return;
    const applied = this.rev;
    const known = this.map.size + this.skipped.size;
    this.verifying = true;
    this.store
      .unchangedSince(this.prefix, applied, revision, known)
      .then((unchanged) => {
        if (unchanged && this.rev === applied && revision > this.progress) {
          this.progress = revision;
          this.wake();
        }
      })
      .catch(() => undefined) // only a hint: the watch itself will get there
      .finally(() => {
        this.verifying = false;
        const took = performance.now() - now;
        this.verifyAfter = performance.now() + Math.min(VERIFY_PAUSE_MAX_MS, 4 * took);
      });
  }

  private wake(): void {
    const reached = this.revision;
    for (const waiter of [...this.waiters]) {
      if (reached >= waiter.revision) {
        this.waiters.delete(waiter);
        waiter.resolve();
      }
    }
    this.stopAsking();
  }
}
