/**
 * Writes the services' records as their writers do, for tests of discovery while (or
 * regardless of whether) the agent's endpoint writing and the API's submit-time service
 * records are in the tree: `services/<name>` (the API, at submit), `endpoints/<service>/
 * <machine>/<unit>/<port>` (the agent, under its lease), a unit's record and its placement
 * with ports (the leader).
 */
import { Endpoint, Placement, Service } from '../../proto/flotilla/v1/records.js';
import { codecs, type Store } from '../../store/index.js';
import { makeUnit } from '../../testkit/index.js';

/** A services/<name> record. */
export async function putService(
  store: Store,
  name: string,
  opts: { publish?: number; portName?: string; units: string[] },
): Promise<void> {
  await store.putRecord(
    codecs.service,
    store.keys.service(name),
    Service.fromPartial({
      name,
      publish: opts.publish ?? 0,
      publishPortName: opts.portName ?? '',
      units: opts.units,
    }),
  );
}

/** What an agent knows of one endpoint it registers. */
export interface EndpointSpec {
  readonly service: string;
  readonly unit: string;
  readonly machine: string;
  readonly address?: string;
  readonly port: number;
  readonly portName?: string;
  readonly tags?: string[];
  readonly health?: string;
  /** The agent's lease; without one the record stays until deleted. */
  readonly lease?: bigint;
}

/** An endpoint record, as the agent running the unit writes it. */
export async function putEndpoint(store: Store, e: EndpointSpec): Promise<void> {
  const portName = e.portName ?? 'http';
  await store.putRecord(
    codecs.endpoint,
    store.keys.endpoint(e.service, e.machine, e.unit, portName),
    Endpoint.fromPartial({
      service: e.service,
      unit: e.unit,
      machine: e.machine,
      address: e.address ?? '127.0.0.1',
      port: e.port,
      portName,
      tags: e.tags ?? [],
      health: e.health ?? 'none',
      sinceUnixMs: BigInt(Date.now()),
    }),
    e.lease === undefined ? {} : { lease: e.lease },
  );
}

/** Removes an endpoint as the agent does before it stops the unit. */
export async function deleteEndpoint(
  store: Store,
  e: Pick<EndpointSpec, 'service' | 'machine' | 'unit' | 'portName'>,
): Promise<void> {
  await store.delete(store.keys.endpoint(e.service, e.machine, e.unit, e.portName ?? 'http'));
}

/** A unit's record and its placement on `machine` with `ports` (name -> number). */
export async function placeWithPorts(
  store: Store,
  unit: string,
  machine: string,
  ports: Record<string, number>,
): Promise<void> {
  await store.putRecord(codecs.unit, store.keys.unit(unit), makeUnit({ name: unit }));
  await store.putRecord(
    codecs.placement,
    store.keys.placement(machine, unit),
    Placement.fromPartial({
      unit,
      machine,
      desiredState: 'launched',
      ports: Object.entries(ports).map(([name, number]) => ({ name, number, static: false })),
    }),
  );
}
