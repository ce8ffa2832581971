/**
 * The scheduler's Prometheus metrics (`flotilla scheduler --metrics-listen`). Counters and
 * histograms are updated where the work happens (one increment per pass, request or call);
 * gauges about the cluster are computed from the mirror's indexes when scraped, at most once
 * per {@link GAUGE_TTL_MS}, so nothing loops over the cluster on every change. A scrape costs
 * one walk over the units, in slices that leave the event loop its turns (the walk took
 * 69-171 ms at 100,000 on a loaded 2-core machine, 544 ms at half a core, in one go before),
 * and nothing per machine.
 *
 * Every replica serves them; gauges of the cluster agree between replicas, and the leader
 * alone has `flotilla_scheduler_leader` 1 and counts passes and placements.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { runSliced } from '../lib/sliced.js';
import type { ClusterMirror, StoreRequest } from '../store/index.js';
import type { ApiMetrics } from './gate/guard.js';
import type { EngineStatus, PassReport } from './leader/engine.js';

/** Cluster gauges are recomputed at most this often, however often Prometheus scrapes. */
export const GAUGE_TTL_MS = 1_000;

/** Pending units are counted by the kind of their main reason, from its wording. */
const REASON_KINDS: readonly (readonly [RegExp, string])[] = [
  [/^conflict/, 'conflicts'],
  [/^lack peer/, 'machine-of'],
  [/^lack \S+ free|^lack .*(memory|CPU|tasks)/, 'resources'],
  [/^lack /, 'metadata'],
  [/^already run/, 'max-per-machine'],
  [/MachineID/, 'machine-id'],
  [/replace|displace/, 'replaces'],
  [/drain/, 'drained'],
];

/** Every value of the `reason` label, each reported (0 when none). */
const REASON_LABELS: readonly string[] = [
  ...new Set([...REASON_KINDS.map(([, kind]) => kind), 'no-machines', 'other']),
];

/** The bounded label of a pending unit's main reason. */
export function reasonKind(reason: string | undefined): string {
  if (reason === undefined) return 'no-machines';
  return REASON_KINDS.find(([re]) => re.test(reason))?.[1] ?? 'other';
}

const DESIRED = ['inactive', 'loaded', 'launched'] as const;
const CURRENT = ['inactive', 'loaded', 'launched'] as const;
const RUNNING: ReadonlySet<string> = new Set(['active', 'activating', 'reloading']);

/** What the metrics read at scrape time. */
export interface SchedulerMetricsSource {
  readonly mirror: ClusterMirror;
  status(): EngineStatus;
}

export class SchedulerMetrics {
  readonly registry = new Registry();
  readonly prefix = 'flotilla_scheduler_';
  private source: SchedulerMetricsSource | undefined;
  private counted: Counted = { at: -Infinity, desired: new Map(), current: new Map() };
  /** The walk in progress, which every scrape meanwhile shares. */
  private counting: Promise<Counted> | undefined;
  private readonly passSeconds: Histogram;
  private readonly placements: Counter;
  private readonly removals: Counter;
  private readonly commitConflicts: Counter;
  private readonly etcdSeconds: Histogram;
  private readonly etcdErrors: Counter;
  private readonly apiRequests: Counter;
  private readonly apiSeconds: Histogram;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'flotilla_scheduler_' });
    this.gauge('flotilla_scheduler_leader', '1 while this replica leads, else 0', [], (g, s) =>
      g.set(s.status().leader ? 1 : 0),
    );
    this.gauge(
      'flotilla_scheduler_rescheduling_paused',
      '1 while rescheduling of lost machines is paused after a mass loss (leader only)',
      [],
      (g, s) => g.set(s.status().paused === undefined ? 0 : 1),
    );
    this.gauge(
      'flotilla_scheduler_machines',
      'machines registered (alive) in the cluster',
      [],
      (g, s) => g.set(s.mirror.machines.size),
    );
    this.gauge(
      'flotilla_scheduler_units',
      'units by desired state',
      ['desired_state'],
      async (g) => {
        const c = await this.count();
        for (const d of DESIRED) g.set({ desired_state: d }, c.desired.get(d) ?? 0);
      },
    );
    this.gauge(
      'flotilla_scheduler_units_current',
      'units by current state (inactive: no placement; loaded: placed, not running; launched: running)',
      ['current_state'],
      async (g) => {
        const c = await this.count();
        for (const d of CURRENT) g.set({ current_state: d }, c.current.get(d) ?? 0);
      },
    );
    this.gauge(
      'flotilla_scheduler_units_pending',
      'units that should run but no machine fits, by the kind of their main reason',
      ['reason'],
      (g, s) => {
        const counts = new Map<string, number>(REASON_LABELS.map((r) => [r, 0]));
        for (const e of s.mirror.unscheduled.values()) {
          const kind = reasonKind(e.value.reasons[0]?.reason);
          counts.set(kind, (counts.get(kind) ?? 0) + 1);
        }
        for (const [reason, n] of counts) g.set({ reason }, n);
      },
    );
    this.passSeconds = new Histogram({
      name: 'flotilla_scheduler_plan_pass_duration_seconds',
      help: "one planning pass of the leader: reading the mirror's view, planning and deciding the writes, thread time summed over its slices (not the commit)",
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.placements = new Counter({
      name: 'flotilla_scheduler_placements_committed_total',
      help: 'new placements the leader wrote to etcd',
      registers,
    });
    this.removals = new Counter({
      name: 'flotilla_scheduler_placements_removed_total',
      help: 'placements the leader deleted (unit stopped, moved or its machine lost)',
      registers,
    });
    this.commitConflicts = new Counter({
      name: 'flotilla_scheduler_commit_conflicts_total',
      help: "the leader's writes whose condition failed (a stale view; the next pass re-decides)",
      registers,
    });
    this.etcdSeconds = new Histogram({
      name: 'flotilla_scheduler_etcd_request_duration_seconds',
      help: 'requests to etcd by operation (streams: the time to open them)',
      labelNames: ['operation'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.etcdErrors = new Counter({
      name: 'flotilla_scheduler_etcd_request_errors_total',
      help: 'failed requests to etcd by operation and error code',
      labelNames: ['operation', 'code'],
      registers,
    });
    this.apiRequests = new Counter({
      name: 'flotilla_scheduler_api_requests_total',
      help: 'API calls by method and gRPC status code (streams counted when they start)',
      labelNames: ['method', 'code'],
      registers,
    });
    this.apiSeconds = new Histogram({
      name: 'flotilla_scheduler_api_request_duration_seconds',
      help: 'unary API calls by method',
      labelNames: ['method'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
  }

  /** Attaches the replica the gauges describe (once it exists). */
  attach(source: SchedulerMetricsSource): void {
    this.source = source;
  }

  /** For the engine's `onPass`. */
  readonly pass = (r: PassReport): void => {
    if (r.planSeconds !== undefined) this.passSeconds.observe(r.planSeconds);
    if (r.placed > 0) this.placements.inc(r.placed);
    if (r.removed > 0) this.removals.inc(r.removed);
    if (r.failed > 0) this.commitConflicts.inc(r.failed);
  };

  /** For `store.onRequest`. */
  readonly etcdRequest = (r: StoreRequest): void => {
    this.etcdSeconds.observe({ operation: r.op }, r.seconds);
    if (r.error !== undefined) this.etcdErrors.inc({ operation: r.op, code: r.error });
  };

  /** For the API server. */
  readonly api: ApiMetrics = {
    observe: (method, code, seconds) => {
      this.apiRequests.inc({ method, code });
      this.apiSeconds.observe({ method }, seconds);
    },
  };

  private gauge(
    name: string,
    help: string,
    labelNames: readonly string[],
    fill: (g: Gauge, source: SchedulerMetricsSource) => void | Promise<void>,
  ): void {
    const sourceOf = (): SchedulerMetricsSource | undefined => this.source;
    new Gauge({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect(this: Gauge) {
        const source = sourceOf();
        return source === undefined ? undefined : fill(this, source);
      },
    });
  }

  /** Units by desired and by current state: one walk over the units, at most once a second. */
  private count(): Promise<Counted> {
    const source = this.source;
    if (performance.now() - this.counted.at < GAUGE_TTL_MS || source === undefined) {
      return Promise.resolve(this.counted);
    }
    this.counting ??= runSliced(countSteps(source.mirror))
      .then((r) => (this.counted = { at: performance.now(), ...r.value }))
      .finally(() => (this.counting = undefined));
    return this.counting;
  }
}

interface Counted {
  readonly at: number;
  readonly desired: Map<string, number>;
  readonly current: Map<string, number>;
}

/** Counts units by desired and current state, yielding every 1,000 units. */
function* countSteps(mirror: ClusterMirror): Generator<void, Omit<Counted, 'at'>, undefined> {
  const desired = new Map<string, number>();
  const current = new Map<string, number>();
  let walked = 0;
  for (const [name, e] of mirror.units.unorderedEntries()) {
    const d = e.value.desiredState;
    desired.set(d, (desired.get(d) ?? 0) + 1);
    const c = currentState(mirror, name);
    current.set(c, (current.get(c) ?? 0) + 1);
    if (++walked % 1_000 === 0) yield;
  }
  return { desired, current };
}

/** As unit-status.ts words it: launched when running where placed (every copy, if Global). */
function currentState(mirror: ClusterMirror, name: string): string {
  const placed = mirror.placements.get(name);
  if (placed === undefined || placed.size === 0) return 'inactive';
  const copies = mirror.copies.get(name);
  for (const machine of placed.keys()) {
    const state = copies?.get(machine)?.value ?? mirror.states.get(name)?.value;
    if (state === undefined || state.machine !== machine || !RUNNING.has(state.activeState)) {
      return 'loaded';
    }
  }
  return 'launched';
}
