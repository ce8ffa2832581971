/**
 * The agent's Prometheus metrics (`flotilla agent --metrics-listen`). Counters follow the
 * agent's own events (unit states, lease renewals, etcd requests) as they happen, one update
 * each; gauges (units by state, log bytes on disk) are read when scraped, from this machine's
 * units alone.
 * Image pulls and the image store's size are read from the store when scraped.
 */
import { stat } from 'node:fs/promises';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { UnitState } from '../proto/flotilla/v1/records.js';
import type { PresenceEvent, StoreRequest } from '../store/index.js';
import type { ServicesMetrics } from './services.js';

const ACTIVE_STATES = ['active', 'activating', 'deactivating', 'inactive', 'failed'] as const;

/** What the gauges read at scrape time. */
export interface AgentMetricsSource {
  /** This machine's units, as the unit manager holds them. */
  units(): readonly UnitState[];
  /** The current log file of a unit (its rotated copy is this plus `.1`). */
  logPath(unit: string): string;
  /** The machine's image store (runc driver only): pulls made, and bytes it holds. */
  readonly images?: { readonly stats: { readonly pulls: number }; usage(): Promise<number> };
  /** The routing mesh and DNS, when the agent runs them. */
  readonly services?: () => ServicesMetrics | undefined;
}

export class AgentMetrics {
  readonly registry = new Registry();
  readonly prefix = 'flotilla_agent_';
  private source: AgentMetricsSource | undefined;
  /** Units seen activating, and since when (performance.now()), to time their start. */
  private readonly starting = new Map<string, number>();
  /** The restart count last reported per unit, to count restarts once each. */
  private readonly restartsSeen = new Map<string, number>();
  private readonly startSeconds: Histogram;
  private readonly restarts: Counter;
  private readonly renewals: Counter;
  private readonly losses: Counter;
  private readonly renewalErrors: Counter;
  private readonly renewalGap: Histogram;
  private readonly etcdSeconds: Histogram;
  private readonly etcdErrors: Counter;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'flotilla_agent_' });
    const sourceOf = (): AgentMetricsSource | undefined => this.source;
    const forget = (present: ReadonlySet<string>): void => {
      for (const name of this.restartsSeen.keys()) {
        if (!present.has(name)) this.restartsSeen.delete(name);
      }
    };
    new Gauge({
      name: 'flotilla_agent_units',
      help: "this machine's units by active state",
      labelNames: ['state'],
      registers,
      collect(this: Gauge) {
        const units = sourceOf()?.units() ?? [];
        forget(new Set(units.map((u) => u.name)));
        const counts = new Map<string, number>(ACTIVE_STATES.map((s) => [s, 0]));
        for (const u of units) counts.set(u.activeState, (counts.get(u.activeState) ?? 0) + 1);
        for (const [state, n] of counts) this.set({ state }, n);
      },
    });
    new Counter({
      name: 'flotilla_agent_image_pulls_total',
      help: 'image pulls from registries this agent made (images already stored are not pulled)',
      registers,
      collect(this: Counter) {
        const images = sourceOf()?.images;
        if (images === undefined) return;
        this.reset();
        this.inc(images.stats.pulls);
      },
    });
    new Gauge({
      name: 'flotilla_agent_image_store_bytes',
      help: "bytes of this machine's image store: blobs and unpacked layers",
      registers,
      async collect(this: Gauge) {
        const images = sourceOf()?.images;
        if (images !== undefined) this.set(await images.usage());
      },
    });
    new Gauge({
      name: 'flotilla_agent_log_bytes',
      help: "bytes of this machine's unit logs on disk (current and rotated files)",
      registers,
      async collect(this: Gauge) {
        const source = sourceOf();
        if (source === undefined) return;
        let total = 0;
        for (const u of source.units()) {
          const path = source.logPath(u.name);
          for (const file of [path, `${path}.1`]) {
            total += await stat(file).then(
              (s) => s.size,
              () => 0,
            );
          }
        }
        this.set(total);
      },
    });
    const servicesOf = (): ServicesMetrics | undefined => sourceOf()?.services?.();
    new Gauge({
      name: 'flotilla_agent_mesh_port_problems',
      help: 'published ports the routing mesh cannot listen on here (something else holds them)',
      registers,
      collect(this: Gauge) {
        this.set(servicesOf()?.problems ?? 0);
      },
    });
    new Gauge({
      name: 'flotilla_agent_mesh_endpoints',
      help: 'serving endpoints each published port forwards to',
      labelNames: ['service', 'port'],
      registers,
      collect(this: Gauge) {
        this.reset();
        for (const p of servicesOf()?.ports ?? []) {
          this.set({ service: p.service, port: String(p.port) }, p.backends);
        }
      },
    });
    new Counter({
      name: 'flotilla_agent_mesh_connections_total',
      help: 'connections the routing mesh accepted, by published port and outcome',
      labelNames: ['service', 'port', 'outcome'],
      registers,
      collect(this: Counter) {
        this.reset();
        for (const p of servicesOf()?.ports ?? []) {
          // HAProxy keeps its own counters (its stats socket); the built-in proxy's are here.
          if (p.stats === undefined) continue;
          const labels = { service: p.service, port: String(p.port) };
          this.inc({ ...labels, outcome: 'accepted' }, p.stats.accepted);
          this.inc({ ...labels, outcome: 'refused' }, p.stats.refused);
          this.inc({ ...labels, outcome: 'connect_failed' }, p.stats.connectFailures);
        }
      },
    });
    new Gauge({
      name: 'flotilla_agent_service_watches',
      help: 'services whose endpoints this machine follows (routed here or asked of its DNS)',
      registers,
      collect(this: Gauge) {
        this.set(servicesOf()?.watched ?? 0);
      },
    });
    new Counter({
      name: 'flotilla_agent_dns_queries_total',
      help: 'DNS queries answered, by outcome (refused: outside the zone, no recursor)',
      labelNames: ['outcome'],
      registers,
      collect(this: Counter) {
        const dns = servicesOf()?.dns;
        this.reset();
        if (dns === undefined) return;
        this.inc({ outcome: 'all' }, dns.queries);
        this.inc({ outcome: 'refused' }, dns.refused);
        this.inc({ outcome: 'forwarded' }, dns.forwarded);
        this.inc({ outcome: 'failed' }, dns.failed);
      },
    });
    this.startSeconds = new Histogram({
      name: 'flotilla_agent_unit_start_duration_seconds',
      help: 'from a unit (container) starting to it being active: pre-start commands, container creation, start',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.restarts = new Counter({
      name: 'flotilla_agent_unit_restarts_total',
      help: 'automatic restarts of units (Restart=) on this machine',
      registers,
    });
    this.renewals = new Counter({
      name: 'flotilla_agent_lease_renewals_total',
      help: "renewals of the machine's lease that etcd confirmed",
      registers,
    });
    this.losses = new Counter({
      name: 'flotilla_agent_lease_losses_total',
      help: "times the machine's lease was found expired (the machine vanished from the cluster)",
      registers,
    });
    this.renewalErrors = new Counter({
      name: 'flotilla_agent_lease_renewal_errors_total',
      help: "failed attempts to register or renew the machine's lease",
      registers,
    });
    this.renewalGap = new Histogram({
      name: 'flotilla_agent_lease_renewal_gap_seconds',
      help: "how long the machine's lease went unconfirmed before each renewal: about TTL/3, nearer the TTL when renewals failed or came late",
      buckets: [0.5, 1, 2, 3, 4, 5, 7.5, 10, 15, 30, 60],
      registers,
    });
    this.etcdSeconds = new Histogram({
      name: 'flotilla_agent_etcd_request_duration_seconds',
      help: 'requests to etcd by operation (streams: the time to open them)',
      labelNames: ['operation'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.etcdErrors = new Counter({
      name: 'flotilla_agent_etcd_request_errors_total',
      help: 'failed requests to etcd by operation and error code',
      labelNames: ['operation', 'code'],
      registers,
    });
  }

  /** Attaches the agent the gauges describe. */
  attach(source: AgentMetricsSource): void {
    this.source = source;
  }

  /** For `units.onState`: times starts and counts restarts. */
  readonly unitState = (s: UnitState): void => {
    if (s.activeState === 'activating') {
      if (!this.starting.has(s.name)) this.starting.set(s.name, performance.now());
    } else {
      const began = this.starting.get(s.name);
      this.starting.delete(s.name);
      if (began !== undefined && s.activeState === 'active') {
        this.startSeconds.observe((performance.now() - began) / 1000);
      }
    }
    const seen = this.restartsSeen.get(s.name) ?? 0;
    if (s.restarts > seen) this.restarts.inc(s.restarts - seen);
    this.restartsSeen.set(s.name, s.restarts);
  };

  /** For `registration.presence.on`. */
  readonly presence = (e: PresenceEvent): void => {
    if (e.type === 'renewed') {
      this.renewals.inc();
      this.renewalGap.observe(e.sinceLastMs / 1000);
    } else if (e.type === 'lost') this.losses.inc();
    else if (e.type === 'error') this.renewalErrors.inc();
  };

  /** For `store.onRequest`. */
  readonly etcdRequest = (r: StoreRequest): void => {
    this.etcdSeconds.observe({ operation: r.op }, r.seconds);
    if (r.error !== undefined) this.etcdErrors.inc({ operation: r.op, code: r.error });
  };
}
