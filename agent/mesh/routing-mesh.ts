/**
 * The routing mesh of one machine (Swarm's): for every service that publishes a port, a
 * {@link TcpProxy} on that port of the machine's listen address, forwarding to the service's
 * serving endpoints anywhere in the cluster. It follows the catalog: a service that starts
 * publishing gets its listener, one that stops (or is removed, or moves to another port)
 * has it closed, and the endpoints of a service are watched only while it is published.
 *
 * A port that cannot be bound (taken by something else on the machine) is not fatal: it is
 * logged, counted and listed in {@link RoutingMesh.problems} (the agent puts them in its
 * machine record for `flotctl`), and bound again every `retryMs` until it is free.
 */
import { MeshProblems } from './problems.js';
import type { Logger } from 'pino';
import type { Service } from '../../proto/flotilla/v1/records.js';
import { servingPort, type EndpointView, type ServiceCatalog } from './catalog.js';
import type {
  ListeningPort,
  MeshCapabilities,
  MeshDataPlane,
  MeshDataPlaneOptions,
  MeshProblem,
} from './data-plane.js';
import { TcpProxy, type Backend } from './tcp-proxy.js';

export type { MeshProblem } from './data-plane.js';

/** Options of a {@link RoutingMesh}: those of every data plane. */
export type RoutingMeshOptions = MeshDataPlaneOptions;

/** One published service as the mesh serves it now. */
interface Route {
  readonly service: string;
  readonly port: number;
  readonly portName: string;
  readonly view: EndpointView;
  /** The serving endpoints of the published Port= name, as backends; rebuilt on change. */
  backends: readonly Backend[];
  readonly unsubscribe: () => void;
  proxy: TcpProxy | undefined;
  problem: MeshProblem | undefined;
  binding: boolean;
}

/** The machine's routing mesh in the agent's own process; {@link start}, then {@link close}. */
export class RoutingMesh implements MeshDataPlane {
  readonly capabilities: MeshCapabilities = {
    description: 'built-in TCP proxy',
    connectionStats: true,
    liveEndpointChanges: true,
  };
  private readonly routes = new Map<string, Route>();
  private readonly listenAddress: string;
  private readonly retryMs: number;
  private readonly problemSet: MeshProblems;
  private unsubscribe: (() => void) | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly catalog: ServiceCatalog,
    private readonly log: Logger,
    private readonly opts: RoutingMeshOptions = {},
  ) {
    this.listenAddress = opts.listenAddress ?? '0.0.0.0';
    this.retryMs = opts.retryMs ?? 10_000;
    this.problemSet = new MeshProblems(
      () => this.routes.values(),
      log,
      this.retryMs,
      opts.onProblems,
      '',
    );
  }

  /** Follows the catalog from now on. */
  start(): Promise<void> {
    this.unsubscribe = this.catalog.onServices(() => this.sync());
    this.sync();
    this.retryTimer = setInterval(() => this.retry(), this.retryMs);
    this.retryTimer.unref();
    return Promise.resolve();
  }

  /** Published ports this machine could not listen on, by port. */
  problems(): MeshProblem[] {
    return this.problemSet.list();
  }

  /** The published ports served now, with each proxy's counters (metrics, tests). */
  listening(): ListeningPort[] {
    const out: ListeningPort[] = [];
    for (const r of this.routes.values()) {
      if (r.proxy === undefined) continue;
      out.push({
        service: r.service,
        port: r.port,
        backends: r.backends.length,
        stats: r.proxy.stats,
      });
    }
    return out;
  }

  /** Closes every listener (and its connections) and releases every watch. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    this.unsubscribe?.();
    clearInterval(this.retryTimer);
    await Promise.all([...this.routes.keys()].map((name) => this.drop(name)));
  }

  /** Brings the routes in line with the services that publish a port. */
  private sync(): void {
    if (this.closed) return;
    const wanted = new Map<string, Service>();
    for (const [name, service] of this.catalog.services()) {
      if (service.publish > 0 && service.publish <= 65_535) wanted.set(name, service);
    }
    for (const [name, route] of this.routes) {
      const service = wanted.get(name);
      if (
        service === undefined ||
        service.publish !== route.port ||
        service.publishPortName !== route.portName
      ) {
        void this.drop(name);
      }
    }
    for (const [name, service] of wanted) {
      if (!this.routes.has(name)) this.add(service);
    }
  }

  private add(service: Service): void {
    const view = this.catalog.acquire(service.name);
    const route: Route = {
      service: service.name,
      port: service.publish,
      portName: service.publishPortName,
      view,
      backends: [],
      unsubscribe: view.onChange(() => refresh()),
      proxy: undefined,
      problem: undefined,
      binding: false,
    };
    const refresh = (): void => {
      route.backends = servingPort(view.serving(), route.portName).map((e) => ({
        address: e.address,
        port: e.port,
      }));
    };
    refresh();
    this.routes.set(service.name, route);
    this.bind(route);
  }

  private bind(route: Route): void {
    if (route.binding || route.proxy !== undefined) return;
    // Another service may still hold the port while it is being dropped: wait for it.
    for (const other of this.routes.values()) {
      if (other !== route && other.port === route.port && other.proxy !== undefined) {
        this.problemSet.set(route, `port ${route.port} is published by ${other.service} too`);
        return;
      }
    }
    route.binding = true;
    const proxy = new TcpProxy({
      host: this.listenAddress,
      port: route.port,
      backends: () => route.backends,
      ...(this.opts.connectTimeoutMs === undefined
        ? {}
        : { connectTimeoutMs: this.opts.connectTimeoutMs }),
    });
    proxy.listen().then(
      () => {
        route.binding = false;
        if (this.routes.get(route.service) !== route) {
          void proxy.close();
          return;
        }
        route.proxy = proxy;
        this.log.info({ service: route.service, port: route.port }, 'mesh: listening');
        this.problemSet.set(route, undefined);
      },
      (err: unknown) => {
        route.binding = false;
        void proxy.close();
        if (this.routes.get(route.service) !== route) return;
        const error = err instanceof Error ? err.message : String(err);
        this.problemSet.set(route, error);
      },
    );
  }

  private retry(): void {
    for (const route of this.routes.values()) if (route.problem !== undefined) this.bind(route);
  }

  private async drop(name: string): Promise<void> {
    const route = this.routes.get(name);
    if (route === undefined) return;
    this.routes.delete(name);
    route.unsubscribe();
    this.catalog.release(name);
    if (route.proxy !== undefined) {
      this.log.info({ service: name, port: route.port }, 'mesh: closing published port');
      await route.proxy.close();
    }
    this.problemSet.publish();
    // A service waiting for this port can have it now.
    if (!this.closed) this.retry();
  }
}
