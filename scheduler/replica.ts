/**
 * The replica's advertisement: `schedulers/<id>` under a lease of its own (store's
 * {@link Presence}), so any replica can list every running one (`flotctl list-schedulers`)
 * and tell an election under way (replicas run, none leads yet) from no scheduler at all.
 * The election key carries the same id (`info.replica`), which is how a listing knows which
 * advertisement is the leader's.
 *
 * It also says whether this replica's mirror keeps up with etcd: every few seconds it asks
 * etcd for its current revision and gives the mirror a moment to reach it; what is still
 * missing then is the lag. The record is rewritten only when the lag changes, so a replica in
 * sync costs etcd nothing beyond its lease renewals, and a replica that falls behind writes
 * at most once per check.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { SchedulerReplica } from '../proto/flotilla/v1/records.js';
import {
  codecs,
  isStoreError,
  Presence,
  toStoreError,
  Waker,
  type ClusterMirror,
  type Store,
} from '../store/index.js';

/** The version a replica advertises: package.json's, read once. */
export const SCHEDULER_VERSION: string = readVersion();

function readVersion(): string {
  for (const rel of ['../../package.json', '../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as {
        name?: unknown;
        version?: unknown;
      } | null;
      if (pkg?.name === 'flotilla' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // try the next location (dist/scheduler/ or scheduler/)
    }
  }
  return 'unknown';
}

/** Options of a {@link ReplicaAdvert}. */
export interface ReplicaAdvertOptions {
  /** The replica's name (--name). */
  readonly name: string;
  /** The API's address; empty or absent without an API. */
  readonly api?: string;
  /** The version advertised. Default {@link SCHEDULER_VERSION}. */
  readonly version?: string;
  /** Lease TTL in whole seconds. Default 5 (the election's default). */
  readonly ttlSeconds?: number;
  /** How often the lag is checked. Default 3000 ms. */
  readonly checkMs?: number;
  /** How long the mirror may take to reach etcd's revision and still count as in sync. Default 1000 ms. */
  readonly catchUpMs?: number;
  readonly now?: () => number;
}

/** Advertises one replica until closed. */
export class ReplicaAdvert {
  /** Random per process: the key's last segment and `info.replica` in the election key. */
  readonly id: string = randomBytes(8).toString('hex');
  private readonly presence: Presence;
  private readonly checkMs: number;
  private readonly catchUpMs: number;
  private readonly now: () => number;
  private readonly waker = new Waker();
  private record: SchedulerReplica;
  private closed = false;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly store: Store,
    private readonly mirror: ClusterMirror,
    opts: ReplicaAdvertOptions,
    private readonly logger: Logger,
  ) {
    this.checkMs = opts.checkMs ?? 3_000;
    this.catchUpMs = opts.catchUpMs ?? 1_000;
    this.now = opts.now ?? Date.now;
    const started = BigInt(this.now());
    this.record = {
      id: this.id,
      name: opts.name,
      api: opts.api ?? '',
      version: opts.version ?? SCHEDULER_VERSION,
      pid: process.pid,
      startedUnixMs: started,
      lagRevisions: 0n,
      lagSinceUnixMs: started,
    };
    this.presence = new Presence(store, {
      key: store.keys.scheduler(this.id),
      value: codecs.scheduler.encode(this.record),
      ttlSeconds: opts.ttlSeconds ?? 5,
    });
    this.presence.on((e) => {
      if (e.type === 'error')
        this.logger.warn({ err: e.error }, 'scheduler advertisement: retrying');
    });
  }

  /** Starts advertising and checking the lag; does not wait for etcd (the presence retries). */
  start(): void {
    if (this.loop !== undefined) return;
    this.presence.start().catch(() => undefined); // failures are retried and logged above
    this.loop = this.checkLoop();
  }

  /**
   * Stops. With `revoke` (default) the record vanishes at once; without, it expires with its
   * lease, as after a crash.
   */
  async close(opts: { revoke?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.waker.wake();
    await this.loop;
    await this.presence.close({ revoke: opts.revoke ?? true });
  }

  /** What is advertised now. */
  get current(): SchedulerReplica {
    return this.record;
  }

  private async checkLoop(): Promise<void> {
    while (!this.closed) {
      await this.waker.sleep(this.checkMs);
      if (this.closed) break;
      try {
        const lag = await this.measureLag();
        if (lag !== this.record.lagRevisions && !this.closed) {
          this.record = { ...this.record, lagRevisions: lag, lagSinceUnixMs: BigInt(this.now()) };
          await this.presence.update(codecs.scheduler.encode(this.record));
        }
      } catch (err) {
        // etcd unreachable: the lease lapses too, and the record with it.
        this.logger.debug({ err: toStoreError(err) }, 'replica lag check failed');
      }
    }
  }

  /** Revisions the mirror still lacks `catchUpMs` after etcd reported its revision. */
  private async measureLag(): Promise<bigint> {
    const revision = await this.store.revision();
    try {
      await this.mirror.waitFor(revision, this.catchUpMs);
      return 0n;
    } catch (err) {
      if (!isStoreError(err, 'deadline')) throw err;
      const lag = revision - this.mirror.revision;
      return lag > 0n ? lag : 0n;
    }
  }
}
