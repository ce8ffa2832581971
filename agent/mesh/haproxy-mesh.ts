/**
 * The routing mesh on HAProxy (docs/benchmarks.md has the measurement that chose it): the
 * same catalog and the same behaviour as the built-in proxy ({@link RoutingMesh}), with the
 * bytes carried by one supervised HAProxy per machine ({@link HaproxyProcess}). A published
 * port is a frontend; its service's endpoints fill `server` slots of its backend. Endpoint
 * changes go through the runtime API (`set server ... addr`, `state ready|maint`) with no
 * reload; a reload happens only when the published ports change or a backend runs out of
 * slots (then it doubles). A port something else holds is found by binding it first, and is
 * reported and retried like the built-in proxy does, never put in the file.
 *
 * Every change is applied by one queue, in order, so the runtime API never races a reload.
 */
import { MeshProblems } from './problems.js';
import { createServer, isIP } from 'node:net';
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
import { HAPROXY_CONNECT_TIMEOUT_MS, proxyName, renderConfig, slotName } from './haproxy-config.js';
import { HaproxyProcess } from './haproxy-process.js';
import { haproxyCommand } from './haproxy-socket.js';
import type { Backend } from './tcp-proxy.js';

/** Options of a {@link HaproxyMesh}. */
export interface HaproxyMeshOptions extends MeshDataPlaneOptions {
  /** The haproxy executable (see `findHaproxy`). */
  readonly binary: string;
  /** HAProxy's private directory (created 0700), e.g. `<state-dir>/<machine>/mesh`. */
  readonly dir: string;
  /** Description for logs, e.g. `haproxy 2.6.12`. Default `haproxy`. */
  readonly description?: string;
  /** Server slots per backend at first; doubled by a reload when more are needed. Default 64. */
  readonly initialSlots?: number;
}

/** A backend never has more slots than this; endpoints past it are left out (and logged). */
const MAX_SLOTS = 4_096;
/** Runtime API commands per exchange (one line each way; HAProxy runs them in order). */
const COMMANDS_PER_EXCHANGE = 200;

/** One published service as HAProxy serves it. */
interface Route {
  readonly service: string;
  readonly port: number;
  readonly portName: string;
  readonly view: EndpointView;
  readonly unsubscribe: () => void;
  /** Slots as the running HAProxy has them (index 0 is s1). */
  slots: (Backend | undefined)[];
  /** The running configuration has (or is about to have) this frontend. */
  served: boolean;
  /** Endpoints HAProxy has for it, as of the last pass that reached HAProxy; -1: not serving. */
  applied: number;
  problem: MeshProblem | undefined;
}

/** The machine's routing mesh on HAProxy; {@link start}, then {@link close}. */
export class HaproxyMesh implements MeshDataPlane {
  readonly capabilities: MeshCapabilities;
  private readonly routes = new Map<string, Route>();
  private readonly process: HaproxyProcess;
  private readonly listenAddress: string;
  private readonly retryMs: number;
  private readonly problemSet: MeshProblems;
  private readonly initialSlots: number;
  private queue: Promise<void> = Promise.resolve();
  private pending = false;
  private unsubscribe: (() => void) | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  // Nothing to say until a problem: an empty list first would only race the first real one.
  private closed = false;
  /** The ports the running configuration serves (those of the last good reload). */
  private served = new Set<number>();
  /** The ports of the configuration file written last (what a reload makes HAProxy serve). */
  private rendered: number[] = [];
  /** The running HAProxy may differ from {@link routes}: the next pass reloads. */
  private dirty = false;
  /** Reloads done (tests and logs: endpoint changes must not add any). */
  reloads = 0;

  constructor(
    private readonly catalog: ServiceCatalog,
    private readonly log: Logger,
    private readonly opts: HaproxyMeshOptions,
  ) {
    this.capabilities = {
      description: opts.description ?? 'haproxy',
      connectionStats: false,
      liveEndpointChanges: true,
    };
    this.listenAddress = opts.listenAddress ?? '0.0.0.0';
    this.retryMs = opts.retryMs ?? 10_000;
    this.problemSet = new MeshProblems(
      () => this.routes.values(),
      log,
      this.retryMs,
      opts.onProblems,
      '[]',
    );
    this.initialSlots = Math.min(MAX_SLOTS, Math.max(1, opts.initialSlots ?? 64));
    this.process = new HaproxyProcess(
      {
        binary: opts.binary,
        dir: opts.dir,
        config: () => this.render(),
        onRestarted: () => this.schedule(),
      },
      log,
    );
  }

  /** Starts HAProxy (rejects when it cannot run), then follows the catalog. */
  async start(): Promise<void> {
    await this.process.start();
    this.unsubscribe = this.catalog.onServices(() => this.sync());
    this.sync();
    this.retryTimer = setInterval(() => {
      if (this.problems().length > 0) this.schedule();
    }, this.retryMs);
    this.retryTimer.unref();
  }

  /** The supervised HAProxy (tests: its pid, sockets and restarts). */
  get haproxy(): HaproxyProcess {
    return this.process;
  }

  problems(): MeshProblem[] {
    return this.problemSet.list();
  }

  listening(): ListeningPort[] {
    const out: ListeningPort[] = [];
    // What HAProxy has, not what it is about to get: a port listed here answers.
    for (const r of this.routes.values()) {
      if (r.applied < 0) continue;
      out.push({ service: r.service, port: r.port, backends: r.applied });
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe?.();
    clearInterval(this.retryTimer);
    await this.queue;
    for (const name of [...this.routes.keys()]) this.forget(name);
    await this.process.stop();
  }

  /** Brings the routes in line with the services that publish a port, then applies. */
  private sync(): void {
    if (this.closed) return;
    const wanted = new Map<string, Service>();
    for (const [name, service] of this.catalog.services()) {
      if (service.publish > 0 && service.publish <= 65_535) wanted.set(name, service);
    }
    for (const [name, route] of this.routes) {
      const service = wanted.get(name);
      if (service?.publish !== route.port || service.publishPortName !== route.portName) {
        this.forget(name);
      }
    }
    for (const [name, service] of wanted) {
      if (this.routes.has(name)) continue;
      const view = this.catalog.acquire(name);
      this.routes.set(name, {
        service: name,
        port: service.publish,
        portName: service.publishPortName,
        view,
        unsubscribe: view.onChange(() => this.schedule()),
        slots: [],
        served: false,
        applied: -1,
        problem: undefined,
      });
    }
    this.schedule();
  }

  private forget(name: string): void {
    const route = this.routes.get(name);
    if (route === undefined) return;
    this.routes.delete(name);
    route.unsubscribe();
    this.catalog.release(name);
  }

  /** Queues one pass of {@link apply}; passes asked for while one waits are merged. */
  private schedule(): void {
    if (this.closed || this.pending) return;
    this.pending = true;
    const pass = async (): Promise<void> => {
      this.pending = false;
      if (this.closed) return;
      try {
        await this.apply();
      } catch (err) {
        // A failed exchange (HAProxy restarting): the next change or retry applies again.
        this.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'mesh: apply');
      }
      try {
        this.problemSet.publish();
      } catch (err) {
        this.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'mesh: problems');
      }
    };
    // Never a rejected link: the queue must outlive any one pass.
    this.queue = this.queue.then(pass, pass);
  }

  /** One pass: a reload if the ports or slots must change, else runtime API commands. */
  private async apply(): Promise<void> {
    this.log.debug({ routes: this.routes.size, served: [...this.served] }, 'mesh: apply');
    let reload = this.dirty;
    for (const route of this.routes.values()) {
      const serve = await this.canServe(route);
      if (serve !== route.served) reload = true;
      route.served = serve;
    }
    // The ports HAProxy serves must be exactly the ones wanted (not merely as many: one port
    // given up and another taken leave the count alone).
    const wanted = [...this.routes.values()].filter((r) => r.served).map((r) => r.port);
    if (wanted.length !== this.served.size || wanted.some((p) => !this.served.has(p))) {
      reload = true;
    }
    const commands: string[] = [];
    for (const route of this.routes.values()) {
      if (route.served && !this.fill(route, commands)) reload = true;
    }
    if (reload) return this.reload();
    for (let i = 0; i < commands.length; i += COMMANDS_PER_EXCHANGE) {
      let answer: string;
      try {
        answer = await haproxyCommand(
          this.process.statsSocket,
          commands.slice(i, i + COMMANDS_PER_EXCHANGE),
        );
      } catch (err) {
        // Not known what HAProxy took: the next pass reloads with the whole state in the file.
        this.dirty = true;
        setTimeout(() => this.schedule(), 1_000).unref();
        throw err;
      }
      if (/No such|Require|Unknown|invalid/i.test(answer)) {
        this.log.warn({ answer: answer.slice(0, 300) }, 'mesh: runtime API refused; reloading');
        return this.reload();
      }
    }
    this.markApplied();
  }

  /** Records what HAProxy now has, for {@link listening}. */
  private markApplied(): void {
    for (const r of this.routes.values()) {
      r.applied = r.served && this.served.has(r.port) ? r.slots.filter(Boolean).length : -1;
    }
  }

  /** Whether `route` goes in the file: it holds the port already, or the port binds now. */
  private async canServe(route: Route): Promise<boolean> {
    for (const other of this.routes.values()) {
      // Two services on one port (one being replaced): the one served, else the first by name.
      if (other === route || other.port !== route.port) continue;
      if (other.served || (!route.served && other.service < route.service)) {
        this.problemSet.set(route, `port ${route.port} is published by ${other.service} too`);
        return false;
      }
    }
    // HAProxy holds it (for this route, or one just unpublished): the reload hands it over.
    if (this.served.has(route.port)) {
      this.problemSet.set(route, undefined);
      return true;
    }
    const error = await tryBind(this.listenAddress, route.port);
    this.problemSet.set(route, error);
    return error === undefined;
  }

  /**
   * Moves `route.slots` to the view's endpoints, adding the runtime API commands that do the
   * same to HAProxy: a gone endpoint's slot to maintenance (its connections finish), a new one
   * into a free slot. False when the slots are too few (a reload must grow them).
   */
  private fill(route: Route, commands: string[]): boolean {
    const want = new Map<string, Backend>();
    for (const e of servingPort(route.view.serving(), route.portName)) {
      if (isIP(e.address) === 0 || e.port < 1 || e.port > 65_535) continue;
      want.set(`${e.address}:${e.port}`, { address: e.address, port: e.port });
    }
    const name = proxyName(route.port);
    if (route.slots.length === 0)
      route.slots = new Array<undefined>(this.initialSlots).fill(undefined);
    route.slots.forEach((s, i) => {
      if (s === undefined) return;
      if (want.delete(`${s.address}:${s.port}`)) return;
      route.slots[i] = undefined;
      commands.push(`set server ${name}/${slotName(i)} state maint`);
    });
    let enough = true;
    for (const b of want.values()) {
      let i = route.slots.indexOf(undefined);
      if (i === -1) {
        if (route.slots.length >= MAX_SLOTS) {
          this.log.warn(
            { service: route.service, max: MAX_SLOTS },
            'mesh: endpoints past the slots left out',
          );
          break;
        }
        enough = false;
        i = route.slots.length;
        route.slots.length = Math.min(MAX_SLOTS, route.slots.length * 2);
        route.slots.fill(undefined, i);
      }
      route.slots[i] = b;
      commands.push(
        `set server ${name}/${slotName(i)} addr ${b.address} port ${b.port}`,
        `set server ${name}/${slotName(i)} state ready`,
      );
    }
    return enough;
  }

  private async reload(): Promise<void> {
    const error = await this.process.reload();
    this.reloads++;
    if (error === undefined) {
      this.dirty = false;
      // What the file HAProxy loaded says, not what the routes say now: they may have changed
      // while it reloaded, and the next pass must see that difference.
      this.served = new Set(this.rendered);
      this.log.info({ ports: [...this.served] }, 'mesh: haproxy reloaded');
      this.markApplied();
      return;
    }
    // The old worker still serves the old file: every port new in this one is a problem now
    // (taken between the test bind and the reload), and the others are reloaded without them
    // so that the running state is the file's again.
    this.log.warn({ error }, 'mesh: haproxy reload failed; the old configuration still serves');
    let dropped = false;
    for (const route of this.routes.values()) {
      if (route.served && !this.served.has(route.port)) {
        route.served = false;
        dropped = true;
        this.problemSet.set(route, error);
      }
    }
    this.dirty = true;
    if (dropped) await this.reload();
    // A reload that only took too long (a loaded machine) is done again once it settles.
    else if (!this.closed) setTimeout(() => this.schedule(), 1_000).unref();
  }

  private render(): string {
    const ports = [...this.routes.values()]
      .filter((r) => r.served)
      .map((r) => ({ port: r.port, servers: r.slots }));
    this.rendered = ports.map((p) => p.port);
    return renderConfig({
      listenAddress: this.listenAddress,
      statsSocket: this.process.statsSocket,
      connectTimeoutMs: this.opts.connectTimeoutMs ?? HAPROXY_CONNECT_TIMEOUT_MS,
      ports,
    });
  }
}

/** Binds `host:port` and lets go: undefined when free, else what the system said. */
function tryBind(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (err) => resolve(err.message));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(undefined)));
  });
}
