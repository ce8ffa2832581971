/**
 * The Services service: discovery from the replica's mirror. A service is known by its
 * `services/<name>` record (written at submit for the units that declare it) and by the
 * endpoint records agents write for each port of each running instance
 * (`unit-endpoints/<machine>/<service>/<unit>/<port-name>`, under their lease); either is enough
 * to list it, so a service whose last unit was destroyed still shows while an instance runs.
 *
 * Authorization narrows as listings do: a caller sees the endpoints of the units it may read,
 * and a service when it may read one of the units that declare it or serve it.
 */
import type { Endpoint, Service } from '../../proto/flotilla/v1/records.js';
import type {
  EndpointStatus,
  ListEndpointsRequest,
  ListEndpointsResponse,
  ListServicesRequest,
  ListServicesResponse,
  ServiceStatus,
} from '../../proto/flotilla/v1/services.js';
import type { ClusterMirror } from '../../store/index.js';
import { excerpt } from '../../unit/index.js';
import { ApiError } from '../gate/errors.js';
import type { Visible } from '../gate/interceptors.js';
import { corruptRecordWarnings, fresh, type ApiCluster } from './reads.js';

/** Rows per page when the request gives no size, and the most served. */
export const SERVICES_PAGE_SIZE = 1_000;
export const MAX_SERVICES_PAGE_SIZE = 5_000;

/** Longest service name, tag or unit name a request may give (longer ones are refused). */
const MAX_NAME = 253;

/**
 * Whether an endpoint takes traffic: its check passes, or it has none. Agents write endpoints
 * only while they serve, so any other value (an agent that keeps a failing one listed) counts
 * in the total only.
 */
export function isHealthy(endpoint: Endpoint): boolean {
  return endpoint.health === 'passing' || endpoint.health === 'none' || endpoint.health === '';
}

/** ListServices; see services.proto. */
export async function listServices(
  cluster: ApiCluster,
  req: ListServicesRequest,
  visible: Visible | undefined,
): Promise<ListServicesResponse> {
  const size = pageSize(req.pageSize);
  const after = req.pageToken === '' ? undefined : decodeToken(req.pageToken);
  await fresh(cluster);
  const { mirror } = cluster;
  const services: ServiceStatus[] = [];
  let next = '';
  for (const name of serviceNames(mirror, after)) {
    if (name === after || !serviceVisible(mirror, name, visible)) continue;
    if (services.length === size) {
      next = encodeToken(services[services.length - 1]?.name ?? '');
      break;
    }
    services.push(serviceStatus(mirror, name, visible));
  }
  return {
    services,
    nextPageToken: next,
    revision: mirror.revision,
    warnings: corruptRecordWarnings(mirror),
  };
}

/** ListEndpoints; see services.proto. */
export async function listEndpoints(
  cluster: ApiCluster,
  req: ListEndpointsRequest,
  visible: Visible | undefined,
): Promise<ListEndpointsResponse> {
  checkName(req.service, 'service name');
  checkName(req.tag, 'tag');
  checkName(req.unit, 'unit name');
  if (req.service === '' && req.unit === '') {
    throw new ApiError('invalid-argument', 'name a service (or a unit) to list the endpoints of');
  }
  const size = pageSize(req.pageSize);
  const after = req.pageToken === '' ? undefined : decodeToken(req.pageToken);
  await fresh(cluster);
  const { mirror } = cluster;
  const base = {
    revision: mirror.revision,
    warnings: corruptRecordWarnings(mirror),
  };
  const keep = (e: Endpoint): boolean =>
    (req.tag === '' || e.tags.includes(req.tag)) &&
    (req.unit === '' || e.unit === req.unit) &&
    (!req.healthyOnly || isHealthy(e)) &&
    (visible === undefined || visible(e.unit));
  if (req.service === '') {
    // One unit's endpoints: a handful (one per port, per copy of a Global unit), one page.
    const endpoints = [...(mirror.endpointsOfUnit.get(req.unit)?.entries() ?? [])]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, e]) => e.value)
      .filter(keep)
      .slice(0, MAX_SERVICES_PAGE_SIZE)
      .map(endpointStatus);
    return { ...base, endpoints, nextPageToken: '' };
  }
  if (!serviceVisible(mirror, req.service, visible)) {
    throw new ApiError(
      'not-found',
      `service ${excerpt(req.service, 128)} is not known: flotctl list-services lists the services`,
    );
  }
  const endpoints: EndpointStatus[] = [];
  let next = '';
  for (const [key, e] of mirror.endpoints.get(req.service)?.entries(after) ?? []) {
    if (key === after || !keep(e.value)) continue;
    if (endpoints.length === size) {
      next = encodeToken(lastKey(endpoints));
      break;
    }
    endpoints.push(endpointStatus(e.value));
  }
  const record = mirror.services.get(req.service)?.value;
  return {
    ...base,
    endpoints,
    nextPageToken: next,
    ...(record === undefined ? {} : { service: record }),
  };
}

function endpointStatus(endpoint: Endpoint): EndpointStatus {
  return { endpoint, healthy: isHealthy(endpoint) };
}

/** The endpoint index key of the last row (`<machine>/<unit>/<port-name>`), the next token. */
function lastKey(rows: readonly EndpointStatus[]): string {
  const e = rows[rows.length - 1]?.endpoint;
  return e === undefined ? '' : `${e.machine}/${e.unit}/${e.portName}`;
}

/**
 * One service's status. The total counts the ports of its placed instances that have no
 * endpoint yet besides its endpoints: O(its instances), and only the units the caller sees.
 */
export function serviceStatus(
  mirror: ClusterMirror,
  name: string,
  visible: Visible | undefined,
): ServiceStatus {
  const record = mirror.services.get(name)?.value;
  const registered = new Set<string>();
  const tags = new Set<string>();
  let healthy = 0;
  for (const [key, e] of mirror.endpoints.get(name)?.entries() ?? []) {
    if (visible !== undefined && !visible(e.value.unit)) continue;
    registered.add(key);
    for (const t of e.value.tags) tags.add(t);
    if (isHealthy(e.value)) healthy += 1;
  }
  let total = registered.size;
  for (const unit of unitsDeclaring(mirror, record)) {
    if (visible !== undefined && !visible(unit)) continue;
    for (const [machine, placement] of mirror.placements.get(unit) ?? []) {
      for (const port of placement.value.ports) {
        if (!registered.has(`${machine}/${unit}/${port.name}`)) total += 1;
      }
    }
  }
  return {
    name,
    healthy,
    total,
    publish: record?.publish ?? 0,
    publishPortName: record?.publishPortName ?? '',
    tags: [...tags].sort(),
    units: record?.units ?? [],
    declared: record !== undefined,
  };
}

/** The units a service record names, templates expanded to their instances. */
function* unitsDeclaring(mirror: ClusterMirror, record: Service | undefined): Generator<string> {
  for (const unit of record?.units ?? []) {
    // A template (web@.service) stands for its instances; it is never placed itself.
    yield* mirror.instances.get(unit) ?? [unit];
  }
}

/** Whether the caller may see `name`: it may read a unit that declares it or serves it. */
function serviceVisible(
  mirror: ClusterMirror,
  name: string,
  visible: Visible | undefined,
): boolean {
  const record = mirror.services.get(name)?.value;
  const endpoints = mirror.endpoints.get(name);
  if (record === undefined && endpoints === undefined) return false;
  if (visible === undefined) return true;
  if (record?.units.some((u) => visible(u)) === true) return true;
  for (const [, e] of endpoints?.entries() ?? []) if (visible(e.value.unit)) return true;
  return false;
}

/** Names with a service record or endpoints, merged in name order, from `after` on. */
function* serviceNames(mirror: ClusterMirror, after: string | undefined): Generator<string> {
  const records = keysOf(mirror.services.entries(after));
  const withEndpoints = keysOf(mirror.endpoints.entries(after));
  let x = records.next();
  let y = withEndpoints.next();
  while (!x.done || !y.done) {
    if (y.done || (!x.done && x.value <= y.value)) {
      if (!y.done && x.value === y.value) y = withEndpoints.next();
      yield x.value as string;
      x = records.next();
    } else {
      yield y.value;
      y = withEndpoints.next();
    }
  }
}

function* keysOf(entries: Iterable<[string, unknown]>): Generator<string> {
  for (const [k] of entries) yield k;
}

function pageSize(asked: number): number {
  if (asked < 0) throw new ApiError('invalid-argument', `page size ${asked} is negative`);
  return Math.min(asked === 0 ? SERVICES_PAGE_SIZE : asked, MAX_SERVICES_PAGE_SIZE);
}

function checkName(value: string, what: string): void {
  if (value.length > MAX_NAME || value.includes('/')) {
    throw new ApiError(
      'invalid-argument',
      `${what} ${excerpt(value, 64)} is not valid: at most ${MAX_NAME} characters, without '/'`,
    );
  }
}

function encodeToken(key: string): string {
  return Buffer.from(key).toString('base64url');
}

function decodeToken(raw: string): string {
  const key = Buffer.from(raw, 'base64url').toString('utf8');
  if (key === '' || encodeToken(key) !== raw) {
    throw new ApiError('invalid-argument', 'page token is not one this API handed out');
  }
  return key;
}
