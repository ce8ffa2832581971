/**
 * The agent's part in services (docs/architecture.md, "Services"): the service directory
 * (agent/sync/service-directory.ts), the routing mesh (agent/mesh/) and DNS (agent/dns/),
 * assembled for `startAgent`. DNS starts first, so its address can go into the machine record
 * (`dns_endpoint`); the mesh starts once the machine is registered, and the ports it cannot
 * listen on go into the record too (`mesh_problems`), for `flotctl list-machines`.
 */
import type { Logger } from 'pino';
import type { MeshProblem } from '../proto/flotilla/v1/records.js';
import type { Store } from '../store/index.js';
import { DnsServer, type DnsStats } from './dns/dns-server.js';
import { ServiceResolver } from './dns/resolver.js';
import { join } from 'node:path';
import { startDataPlane } from './mesh/choose-data-plane.js';
import type { DataPlaneChoice, ListeningPort, MeshDataPlane } from './mesh/data-plane.js';
import { ServiceDirectory } from './sync/service-directory.js';

/** A machine record lists this many mesh problems at most, each error cut to 200 characters. */
const MAX_PROBLEMS = 32;

/** What {@link startServices} needs of the agent's options. */
export interface ServicesOptions {
  readonly mesh?: boolean;
  readonly meshListenAddress?: string;
  /** `--mesh-data-plane`; default auto (HAProxy where installed). */
  readonly meshDataPlane?: DataPlaneChoice;
  /** HAProxy's files go in `<stateDir>/<machineId>/mesh` (0700). */
  readonly stateDir: string;
  readonly machineId: string;
  readonly dnsListen?: string;
  readonly dnsRecursor?: string;
  /** The advertised address: replaces a wildcard DNS listen host in the record. */
  readonly publicIp: string;
}

/** What the agent's metrics read of services at scrape time. */
export interface ServicesMetrics {
  /** Published ports served, with each one's counters. */
  readonly ports: readonly ListeningPort[];
  /** Published ports that cannot be listened on. */
  readonly problems: number;
  /** Services whose endpoints this machine follows (routed or asked about). */
  readonly watched: number;
  readonly dns: DnsStats | undefined;
}

/** The running services part of one agent. */
export interface Services {
  /** `host:port` DNS answers on, as others should dial it; '' without DNS. */
  readonly dnsEndpoint: string;
  /** Starts the mesh (when on); `onProblems` gets the record's list whenever it changes. */
  startMesh(onProblems: (problems: MeshProblem[]) => void): void;
  metrics(): ServicesMetrics;
  close(): Promise<void>;
}

/** Opens the directory and DNS; rejects (having closed both) when DNS cannot listen. */
export async function startServices(
  store: Store,
  opts: ServicesOptions,
  log: Logger,
): Promise<Services> {
  if (opts.mesh === false && opts.dnsListen === undefined) return NO_SERVICES;
  const directory = new ServiceDirectory(store, log.child({ component: 'services' }));
  let resolver: ServiceResolver | undefined;
  let dns: DnsServer | undefined;
  if (opts.dnsListen !== undefined) {
    resolver = new ServiceResolver(directory);
    dns = new DnsServer({
      listen: opts.dnsListen,
      resolver,
      ...(opts.dnsRecursor === undefined ? {} : { recursor: opts.dnsRecursor }),
    });
    try {
      await dns.listen();
    } catch (err) {
      resolver.close();
      await directory.close();
      const why = err instanceof Error ? err.message : String(err);
      throw new Error(
        `--dns-listen=${opts.dnsListen}: cannot listen (${why}); free it or pick another`,
      );
    }
    log.info({ dns: dns.address, recursor: opts.dnsRecursor ?? null }, 'DNS listening');
  }
  let mesh: MeshDataPlane | undefined;
  let starting: Promise<void> | undefined;
  return {
    dnsEndpoint: dns === undefined ? '' : advertised(dns.address, opts.publicIp),
    startMesh(onProblems) {
      if (opts.mesh === false || starting !== undefined) return;
      const meshLog = log.child({ component: 'mesh' });
      starting = startDataPlane(directory, meshLog, {
        choice: opts.meshDataPlane ?? 'auto',
        dir: join(opts.stateDir, opts.machineId, 'mesh'),
        ...(opts.meshListenAddress === undefined ? {} : { listenAddress: opts.meshListenAddress }),
        onProblems: (problems) =>
          onProblems(
            problems
              .slice(0, MAX_PROBLEMS)
              .map((p) => ({ service: p.service, port: p.port, error: p.error.slice(0, 200) })),
          ),
      }).then(
        (started) => {
          mesh = started;
          meshLog.info({ dataPlane: started.capabilities.description }, 'mesh: started');
        },
        (err: unknown) => {
          // An explicit --mesh-data-plane=haproxy that cannot run: said, and no mesh here.
          const why = err instanceof Error ? err.message : String(err);
          meshLog.error({ err: why }, 'mesh: not started');
          onProblems([{ service: '', port: 0, error: why.slice(0, 200) }]);
        },
      );
    },
    metrics: () => ({
      ports: mesh?.listening() ?? [],
      problems: mesh?.problems().length ?? 0,
      watched: directory.watched,
      dns: dns?.stats,
    }),
    async close() {
      await starting;
      await mesh?.close();
      resolver?.close();
      await dns?.close();
      await directory.close();
    },
  };
}

/** An agent with neither mesh nor DNS watches nothing of services. */
const NO_SERVICES: Services = {
  dnsEndpoint: '',
  startMesh: () => undefined,
  metrics: () => ({ ports: [], problems: 0, watched: 0, dns: undefined }),
  close: () => Promise.resolve(),
};

/** A wildcard listen host is replaced by the advertised address. */
function advertised(address: string, publicIp: string): string {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon);
  if (host !== '0.0.0.0' && host !== '[::]' && host !== '::') return address;
  return `${publicIp.includes(':') ? `[${publicIp}]` : publicIp}${address.slice(colon)}`;
}
