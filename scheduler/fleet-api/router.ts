/**
 * fleet's API v1 routes (fleet's api/mux.go as fleetctl v1.0.0 calls it), independent of the
 * listener: a request in (method, the path below `/fleet/v1/` still percent-encoded, query,
 * Content-Type headers, body, the gate), a status and JSON body out. The scheduler's HTTP
 * listener and the unix socket (socket.ts) both serve it.
 *
 * Reads pass the gate as the gRPC reads they stand for (Units.ListUnits, Units.GetUnit,
 * Machines.ListMachines), so an auth policy applies alike; writes are the gRPC handlers
 * themselves (writes.ts). Errors are fleet's `{"error":{"code":N,"message":"…"}}`.
 */
import type { Rights } from '../gate/rights.js';
import { status as grpcStatus } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { excerpt, UNIT_NAME_MAX } from '../../unit/index.js';
import { logFailure, toGrpcStatus } from '../gate/errors.js';
import type { Visible } from '../gate/interceptors.js';
import type { ApiCluster } from '../api/reads.js';
import { FleetFiles } from './fleet-files.js';
import {
  getState,
  getUnit,
  listMachines,
  listStates,
  listUnits,
  type FleetAnswer,
  type ReadContext,
} from './reads.js';
import { PAGE_ENTRIES } from './paging.js';
import { deleteUnit, FleetHttpError, putUnit, type Gated } from './writes.js';

/** Runs a handler as gRPC API method `method` through the gate; the handler gets what the caller may see. */
export type FleetGate = <T>(
  method: string,
  request: unknown,
  run: (visible: Visible | undefined, rights: Rights | undefined) => Promise<T>,
) => Promise<T>;

/** One request, as the listener read it. */
export interface FleetRequest {
  readonly method: string;
  /** The path below `/fleet/v1/` (`units/hello%401.service`), still percent-encoded. */
  readonly path: string;
  readonly query: URLSearchParams;
  /** Every Content-Type header of the request (fleet wants exactly one). */
  readonly contentTypes: readonly string[];
  readonly body: string;
  readonly gate: FleetGate;
}

/** The most bytes of a request body: a unit file's options as JSON, with room to spare. */
export const FLEET_BODY_MAX_BYTES = 2 * 1024 * 1024;

/** How fleet's HTTP status follows from the API's gRPC status. */
const HTTP_STATUS: Readonly<Partial<Record<grpcStatus, number>>> = {
  [grpcStatus.INVALID_ARGUMENT]: 400,
  [grpcStatus.OUT_OF_RANGE]: 400,
  [grpcStatus.NOT_FOUND]: 404,
  [grpcStatus.ALREADY_EXISTS]: 409,
  [grpcStatus.FAILED_PRECONDITION]: 409,
  [grpcStatus.ABORTED]: 409,
  [grpcStatus.PERMISSION_DENIED]: 403,
  [grpcStatus.UNAUTHENTICATED]: 401,
  [grpcStatus.RESOURCE_EXHAUSTED]: 503,
  [grpcStatus.UNAVAILABLE]: 503,
};

/** The longest error message sent (fleetctl prints it whole). */
const MESSAGE_MAX_CHARS = 4096;

/** Options of {@link FleetApi}. */
export interface FleetApiOptions {
  /** Entries a listing's page holds at most. Default {@link PAGE_ENTRIES} (10,000). */
  readonly pageEntries?: number;
}

/** fleet's API over one scheduler replica's API cluster. */
export class FleetApi {
  private readonly files = new FleetFiles();
  private readonly model: ReadContext;

  constructor(
    private readonly cluster: ApiCluster,
    private readonly logger: Logger,
    opts: FleetApiOptions = {},
  ) {
    this.model = {
      cluster,
      mirror: cluster.mirror,
      definitions: cluster.definitions,
      files: this.files,
      pageEntries: opts.pageEntries ?? PAGE_ENTRIES,
    };
  }

  /** Answers one request; never throws (every failure is a fleet error body). */
  async handle(req: FleetRequest): Promise<FleetAnswer> {
    try {
      return await this.route(req);
    } catch (err) {
      return this.failure(req, err);
    }
  }

  private async route(req: FleetRequest): Promise<FleetAnswer> {
    const [collection, item, ...rest] = req.path.replace(/\/+$/, '').split('/');
    if (rest.length > 0 || collection === undefined) throw routeNotFound(req.path);
    const name = item === undefined ? undefined : decodeName(item);
    const m = req.method;
    const only = (allowed: string): never => {
      throw new FleetHttpError(405, `only ${allowed} supported against this resource`);
    };
    const ctx = this.model;
    const gated: Gated = (method, request, run) =>
      req.gate(method, request, (_visible, rights) => run(rights));
    switch (collection) {
      case 'units':
        if (name === undefined) {
          if (m !== 'GET') only('GET');
          return req.gate('Units.ListUnits', listRequest(), (v) => listUnits(ctx, req.query, v));
        }
        if (m === 'GET') return req.gate('Units.GetUnit', { name }, () => getUnit(ctx, name));
        if (m === 'PUT') return putUnit({ ...ctx, gated }, name, req.contentTypes, req.body);
        if (m === 'DELETE') return deleteUnit({ ...ctx, gated }, name);
        return only('GET, PUT and DELETE');
      case 'state':
        if (m !== 'GET') only('GET');
        if (name === undefined) {
          return req.gate('Units.ListUnits', listRequest(), (v) => listStates(ctx, req.query, v));
        }
        return req.gate('Units.GetUnit', { name }, () => getState(ctx, name));
      case 'machines':
        if (name !== undefined) throw routeNotFound(req.path);
        if (m !== 'GET') only('GET');
        return req.gate('Machines.ListMachines', {}, () => listMachines(ctx, req.query));
      default:
        throw routeNotFound(req.path);
    }
  }

  private failure(req: FleetRequest, err: unknown): FleetAnswer {
    let status: number;
    let message: string;
    if (err instanceof FleetHttpError) {
      status = err.status;
      message = err.message;
    } else {
      const s = toGrpcStatus(err, { endpoints: this.cluster.store.options.endpoints });
      logFailure(this.logger, `fleet ${req.method} ${excerpt(req.path, 300)}`, s, err);
      status = HTTP_STATUS[s.code] ?? 500;
      message = s.details;
    }
    return { status, body: errorBody(status, message) };
  }
}

/** fleet's error body. */
export function errorBody(status: number, message: string): string {
  const text =
    message.length > MESSAGE_MAX_CHARS ? `${message.slice(0, MESSAGE_MAX_CHARS)}…` : message;
  return JSON.stringify({ error: { code: status, message: text } });
}

/** What a listing asks of the gate: every unit (a policy narrows it to those the caller may read). */
function listRequest(): { nameGlob: string } {
  return { nameGlob: '' };
}

function routeNotFound(path: string): FleetHttpError {
  return new FleetHttpError(
    404,
    `no fleet API route /fleet/v1/${excerpt(path, 300)}: fleet's API v1 serves machines, units, units/{name}, state and state/{name}`,
  );
}

/** A unit name from the path: percent-decoded (fleetctl sends `@` as `%40`). */
function decodeName(segment: string): string {
  let name: string;
  try {
    name = decodeURIComponent(segment);
  } catch {
    throw new FleetHttpError(
      400,
      `the unit name ${excerpt(segment, UNIT_NAME_MAX)} is not valid percent-encoding`,
    );
  }
  return name;
}
