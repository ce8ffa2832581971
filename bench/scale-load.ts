/**
 * What the scale benchmark watches while it scales (issue 25: a big scale on a slow host must
 * never cost a lease, a leader or progress): leader changes and election keys lost, from a
 * watch of `election/`; each replica's event-loop delay, from its `/metrics` (the cumulative
 * `flotilla_scheduler_event_loop_delay_seconds` histogram, scraped at the start and at the end
 * of the window and differenced); and the benchmark process's own (the simulated machines'
 * and agents'), from `perf_hooks`. Machine leases lost are counted by the pool's 'lost' events
 * (bench/scale.ts).
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { stringCodec, WatchCache, type CacheEntry, type Store } from '../store/index.js';

/** Cumulative histogram buckets: upper bound (seconds) -> count at or below it. */
type Buckets = Map<number, number>;

/** A point to measure from: see {@link LoadWatch.mark}. */
export interface LoadMark {
  readonly leaderChanges: number;
  readonly electionKeysLost: number;
  readonly delay: ReadonlyMap<string, Buckets | undefined>;
}

/** What happened between a mark and now. */
export interface LoadFigures {
  readonly leaderChanges: number;
  readonly electionKeysLost: number;
  /** Daemon name -> event-loop delay p99 in ms over the window (undefined: not scraped). */
  readonly delayP99Ms: ReadonlyMap<string, number | undefined>;
  /**
   * Daemon name -> its delay samples over the window, and how many of them were over 100 ms
   * (the target): finer than the p99's bucket, to compare two runs that share one.
   */
  readonly delaySamples: ReadonlyMap<string, { total: number; over100: number } | undefined>;
}

/** A daemon whose /metrics can be scraped. */
export interface Scraped {
  readonly name: string;
  /** host:port of its metrics listener. */
  readonly metrics: string;
  /** Its metric prefix, e.g. `flotilla_scheduler_`. */
  readonly prefix: string;
}

export class LoadWatch {
  private leader: string | undefined;
  private changes = 0;
  private lost = 0;
  private readonly own: IntervalHistogram;

  private constructor(
    private readonly cache: WatchCache<string>,
    private readonly daemons: readonly Scraped[],
  ) {
    this.own = monitorEventLoopDelay({ resolution: 20 });
    this.own.enable();
    cache.on((e) => {
      const changes = e.type === 'resync' ? e.changes : [e];
      for (const c of changes) if (c.type === 'delete') this.lost += 1;
      const first = lowest(cache.entries());
      if (first !== undefined && first !== this.leader) {
        if (this.leader !== undefined) this.changes += 1;
        this.leader = first;
      }
    });
  }

  /** Starts watching `election/` and resolves once it listed it. */
  static async start(store: Store, daemons: readonly Scraped[]): Promise<LoadWatch> {
    const cache = new WatchCache(store, { prefix: store.keys.election(), codec: stringCodec });
    const watch = new LoadWatch(cache, daemons);
    await cache.ready();
    return watch;
  }

  /** Now, as the start of a window. */
  async mark(): Promise<LoadMark> {
    this.own.reset();
    const delay = new Map<string, Buckets | undefined>();
    for (const d of this.daemons) delay.set(d.name, await scrape(d));
    return { leaderChanges: this.changes, electionKeysLost: this.lost, delay };
  }

  /** What happened since `mark`; the benchmark process is listed as `bench`. */
  async since(mark: LoadMark): Promise<LoadFigures> {
    const delayP99Ms = new Map<string, number | undefined>();
    const delaySamples = new Map<string, { total: number; over100: number } | undefined>();
    for (const d of this.daemons) {
      const before = mark.delay.get(d.name);
      const after = await scrape(d);
      const both = before === undefined || after === undefined ? undefined : { before, after };
      delayP99Ms.set(d.name, both && p99(both.before, both.after));
      delaySamples.set(d.name, both && samples(both.before, both.after));
    }
    delayP99Ms.set('bench', this.own.percentile(99) / 1e6);
    return {
      leaderChanges: this.changes - mark.leaderChanges,
      electionKeysLost: this.lost - mark.electionKeysLost,
      delayP99Ms,
      delaySamples,
    };
  }

  async close(): Promise<void> {
    this.own.disable();
    await this.cache.close();
  }
}

/** The key of the candidate with the lowest create revision (who leads). */
function lowest(entries: readonly CacheEntry<string>[]): string | undefined {
  let first: CacheEntry<string> | undefined;
  for (const e of entries) {
    if (e.lease === 0n) continue;
    if (first === undefined || e.createRevision < first.createRevision) first = e;
  }
  return first?.key;
}

/** The event-loop delay buckets of one daemon, or undefined when it does not answer. */
async function scrape(d: Scraped): Promise<Buckets | undefined> {
  try {
    const res = await fetch(`http://${d.metrics}/metrics`, { signal: AbortSignal.timeout(10_000) });
    const page = await res.text();
    const buckets: Buckets = new Map();
    const re = new RegExp(`^${d.prefix}event_loop_delay_seconds_bucket\\{le="([^"]+)"\\} (\\d+)`);
    for (const line of page.split('\n')) {
      const m = re.exec(line);
      if (m !== null) buckets.set(m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2]));
    }
    return buckets.size === 0 ? undefined : buckets;
  } catch {
    return undefined;
  }
}

/**
 * The 99th percentile of the samples between two scrapes, in ms: the upper bound of the
 * first bucket holding it (so a figure "100" means "at most 100 ms"); Infinity past the last.
 */
function p99(before: Buckets, after: Buckets): number {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const total = (after.get(Infinity) ?? 0) - (before.get(Infinity) ?? 0);
  if (total <= 0) return 0;
  for (const le of bounds) {
    const n = (after.get(le) ?? 0) - (before.get(le) ?? 0);
    if (n >= total * 0.99) return le * 1000;
  }
  return Infinity;
}

/** The samples between two scrapes, and those over 100 ms. */
function samples(before: Buckets, after: Buckets): { total: number; over100: number } {
  const diff = (le: number): number => (after.get(le) ?? 0) - (before.get(le) ?? 0);
  const total = diff(Infinity);
  return { total, over100: total - diff(0.1) };
}
