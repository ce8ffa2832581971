/**
 * The quota guard: the API refuses a write that would take etcd's database past a share of
 * its quota (`--quota-backend-bytes`), with RESOURCE_EXHAUSTED saying how full etcd is, instead
 * of running into etcd's NOSPACE alarm, which refuses every write (destroys too) until an
 * operator compacts, defragments and disarms it.
 *
 * The size comes from etcd's Maintenance.Status (the database file of the member that answers),
 * read at most once per {@link QuotaOptions.refreshMs} and shared by every request meanwhile:
 * never one status call per write. Bytes the guard let through since that reading are added
 * to it, so a burst of writes between two readings is still counted. A write's size is an
 * estimate (its keys and values); etcd's file grows by more (pages, old revisions), which the
 * share leaves room for.
 *
 * Only writes that add are checked: destroys, scales down and stops are never refused, since
 * they are how an operator frees space.
 *
 * @example
 *   const quota = new QuotaGuard(store, { quotaBytes: 2 * 1024 ** 3, share: 0.8 });
 *   await quota.check(4096); // throws ApiError('resource-exhausted', ...) past 80%
 */
import type { Store } from '../../store/index.js';
import { formatBytes } from '../../unit/index.js';
import { ApiError } from '../gate/errors.js';

/** etcd's default `--quota-backend-bytes`: 2 GiB. */
export const ETCD_DEFAULT_QUOTA_BYTES = 2 * 1024 ** 3;

/** Options of {@link QuotaGuard}; each documents its default. */
export interface QuotaOptions {
  /** etcd's `--quota-backend-bytes`, which the guard cannot read from etcd. Default 2 GiB. */
  readonly quotaBytes?: number;
  /** Refuse writes that would take the database past this share of the quota. Default 0.8. */
  readonly share?: number;
  /** How long one reading of etcd's size is used. Default 1000 ms. */
  readonly refreshMs?: number;
  /** The clock, for tests. Default `Date.now`. */
  readonly now?: () => number;
}

/** The defaults of {@link QuotaOptions}. */
export const QUOTA_DEFAULTS = { quotaBytes: ETCD_DEFAULT_QUOTA_BYTES, share: 0.8, refreshMs: 1000 };

/**
 * About how many bytes `unit`'s record adds to etcd: its file, its name (in the key and the
 * value) and the JSON around them. An estimate: etcd's own overhead is what the share is for.
 */
export function recordBytes(unit: { readonly name: string; readonly file: string }): number {
  return unit.file.length + 2 * unit.name.length + 200;
}

/** One reading of etcd's database size. */
interface Reading {
  readonly at: number;
  readonly bytes: number;
}

/** Checks writes against etcd's quota; one per API server. */
export class QuotaGuard {
  readonly quotaBytes: number;
  readonly share: number;
  private readonly refreshMs: number;
  private readonly now: () => number;
  private reading: Reading | undefined;
  private pending: Promise<Reading> | undefined;
  /** Bytes let through since {@link reading} was taken. */
  private since = 0;

  constructor(
    private readonly store: Store,
    opts: QuotaOptions = {},
  ) {
    this.quotaBytes = opts.quotaBytes ?? QUOTA_DEFAULTS.quotaBytes;
    this.share = opts.share ?? QUOTA_DEFAULTS.share;
    this.refreshMs = opts.refreshMs ?? QUOTA_DEFAULTS.refreshMs;
    this.now = opts.now ?? Date.now;
  }

  /**
   * Resolves when a write of about `bytes` keeps etcd within the share; RESOURCE_EXHAUSTED
   * saying how full etcd is otherwise. Nothing is written either way. When etcd cannot be
   * asked, the store's error (UNAVAILABLE) goes through: the write could not succeed either.
   */
  async check(bytes: number): Promise<void> {
    const reading = await this.current();
    const used = reading.bytes + this.since;
    const limit = this.quotaBytes * this.share;
    if (used + bytes > limit) throw this.refusal(used, bytes);
    this.since += bytes;
  }

  private async current(): Promise<Reading> {
    const r = this.reading;
    if (r !== undefined && this.now() - r.at < this.refreshMs) return r;
    this.pending ??= this.store
      .dbSize()
      .then((bytes) => {
        this.reading = { at: this.now(), bytes };
        this.since = 0;
        return this.reading;
      })
      .finally(() => {
        this.pending = undefined;
      });
    return this.pending;
  }

  private refusal(used: number, bytes: number): ApiError {
    const pct = (n: number): string => `${Math.floor((n / this.quotaBytes) * 100)}%`;
    const write = bytes > 0 ? `, and this write adds about ${formatBytes(bytes)}` : '';
    return new ApiError(
      'resource-exhausted',
      `etcd is ${pct(used)} full (${formatBytes(used)} of ${formatBytes(this.quotaBytes)}${write}; refusing writes past ${pct(this.quotaBytes * this.share)}): destroy or scale down what is not needed, compact and defragment etcd (docs/operations.md), or raise --etcd-quota-bytes with etcd's --quota-backend-bytes`,
    );
  }
}
