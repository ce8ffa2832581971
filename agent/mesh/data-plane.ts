/**
 * What the agent needs of a routing mesh's data plane, whichever carries the bytes: the
 * built-in Node proxy ({@link RoutingMesh}) or HAProxy driven through its runtime API
 * (`haproxy-mesh.ts`). Both follow the same {@link ServiceCatalog}; the agent starts one,
 * reads its problems and ports, and asks it what it can do rather than what it is.
 */
import type { TcpProxyStats } from './tcp-proxy.js';

/** The values of `--mesh-data-plane`. */
export const DATA_PLANES = ['auto', 'haproxy', 'builtin'] as const;
export type DataPlaneChoice = (typeof DATA_PLANES)[number];

/** A published port this machine could not listen on. */
export interface MeshProblem {
  readonly service: string;
  readonly port: number;
  /** What the system said, e.g. `EADDRINUSE: address already in use`. */
  readonly error: string;
}

/** One published port served now. */
export interface ListeningPort {
  readonly service: string;
  readonly port: number;
  /** Serving endpoints it forwards to. */
  readonly backends: number;
  /** Per-connection counters, when the data plane keeps them ({@link MeshCapabilities}). */
  readonly stats?: TcpProxyStats;
}

/** What a data plane can do, for logs, metrics and tests. */
export interface MeshCapabilities {
  /** A name for logs and `flotilla agent` output, e.g. `haproxy 2.6.12`. */
  readonly description: string;
  /** {@link ListeningPort.stats} is filled (accepted, refused, connect failures). */
  readonly connectionStats: boolean;
  /** Endpoint changes reach open listeners without a restart of anything. */
  readonly liveEndpointChanges: boolean;
}

/** The routing mesh of one machine: {@link start}, then {@link close}. */
export interface MeshDataPlane {
  readonly capabilities: MeshCapabilities;
  /** Follows the catalog from now on; rejects when the data plane cannot run at all. */
  start(): Promise<void>;
  /** Published ports this machine could not listen on, by port. */
  problems(): MeshProblem[];
  /** The published ports served now. */
  listening(): ListeningPort[];
  /** Stops listening and releases every watch (and process). Idempotent. */
  close(): Promise<void>;
}

/** Options every data plane takes. */
export interface MeshDataPlaneOptions {
  /** Where published ports listen. Default `0.0.0.0` (every address of the machine). */
  readonly listenAddress?: string;
  /** How often ports that could not be bound are tried again. Default 10 s. */
  readonly retryMs?: number;
  /**
   * Per connection: how long a connect may take before the next endpoint. Default 1.5 s with
   * HAProxy, 300 ms with the built-in proxy (whose last try gets 5 s).
   */
  readonly connectTimeoutMs?: number;
  /** Called whenever the set of problems changes (the agent republishes its record). */
  readonly onProblems?: (problems: readonly MeshProblem[]) => void;
}
