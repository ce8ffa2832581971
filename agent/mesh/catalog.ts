/**
 * What the routing mesh and DNS read of the cluster's services, without etcd: the services
 * (one small record each) and, for a service someone here routes or resolves, its endpoints.
 * `agent/sync/service-directory.ts` implements it over etcd watches; tests may too.
 */
import type { Endpoint, Service } from '../../proto/flotilla/v1/records.js';

/** One service's endpoints, followed live while acquired. */
export interface EndpointView {
  /** Resolves once the first listing is in (rejects when released before). */
  ready(): Promise<void>;
  /** The endpoints that serve now (their records exist only while they do), in key order. */
  serving(): readonly Endpoint[];
  /** Called after every change to the endpoints; returns the function that unsubscribes. */
  onChange(fn: () => void): () => void;
}

/** The services of the cluster and, on demand, their endpoints. */
export interface ServiceCatalog {
  /** Every service record, by name (empty until the first listing is in). */
  services(): ReadonlyMap<string, Service>;
  /** Called after every change to the services; returns the function that unsubscribes. */
  onServices(fn: () => void): () => void;
  /**
   * Starts following `service`'s endpoints (or shares the view already open): one view per
   * service, however many users, over one etcd watch of every endpoint. Pair with {@link release}.
   */
  acquire(service: string): EndpointView;
  release(service: string): void;
}

/** The endpoints of `view` for one Port= name ('' for every port). */
export function servingPort(endpoints: readonly Endpoint[], portName: string): Endpoint[] {
  return portName === '' ? [...endpoints] : endpoints.filter((e) => e.portName === portName);
}
