/**
 * The gRPC health checking protocol (`grpc.health.v1.Health`, as grpc_health_probe, Kubernetes
 * gRPC probes and load balancers speak it) on a daemon's gRPC server. The status of the
 * server as a whole (service `""`) and of each service it names is the daemon's readiness:
 * SERVING when ready, NOT_SERVING when not. `Watch` sends the status at once, then each change
 * (checked every {@link WATCH_POLL_MS}); the server's shutdown ends every watch.
 *
 * The two messages are tiny (one string, one enum), so they are encoded here by hand rather
 * than generated from health.proto.
 *
 * @example
 *   const health = addHealthService(server, ['flotilla.v1.Units'], () => readiness());
 *   // grpc_health_probe -addr 127.0.0.1:4700 -service flotilla.v1.Units
 *   health.close(); // before server.tryShutdown()
 */
import { BinaryReader, BinaryWriter } from '@bufbuild/protobuf/wire';
import {
  Metadata,
  status,
  type sendUnaryData,
  type Server,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceDefinition,
} from '@grpc/grpc-js';
import type { Readiness } from './metrics-server.js';

/** `grpc.health.v1.HealthCheckResponse.ServingStatus`. */
export enum ServingStatus {
  UNKNOWN = 0,
  SERVING = 1,
  NOT_SERVING = 2,
  SERVICE_UNKNOWN = 3,
}

interface HealthCheckRequest {
  readonly service: string;
}
interface HealthCheckResponse {
  readonly status: ServingStatus;
}

/** How often a Watch re-reads the readiness. */
export const WATCH_POLL_MS = 1_000;
/** A service name longer than this is unknown without a look. */
const MAX_SERVICE_CHARS = 256;

function decodeRequest(bytes: Buffer): HealthCheckRequest {
  const reader = new BinaryReader(bytes);
  let service = '';
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    if (tag >>> 3 === 1 && (tag & 7) === 2) service = reader.string();
    else reader.skip(tag & 7);
  }
  return { service };
}

function encodeRequest(req: HealthCheckRequest): Buffer {
  const w = new BinaryWriter();
  if (req.service !== '') w.uint32(10).string(req.service);
  return Buffer.from(w.finish());
}

function encodeResponse(res: HealthCheckResponse): Buffer {
  const w = new BinaryWriter();
  if (res.status !== ServingStatus.UNKNOWN) w.uint32(8).int32(res.status);
  return Buffer.from(w.finish());
}

function decodeResponse(bytes: Buffer): HealthCheckResponse {
  const reader = new BinaryReader(bytes);
  let s = ServingStatus.UNKNOWN;
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    if (tag >>> 3 === 1 && (tag & 7) === 0) s = reader.int32() as ServingStatus;
    else reader.skip(tag & 7);
  }
  return { status: s };
}

const codec = {
  requestSerialize: encodeRequest,
  requestDeserialize: decodeRequest,
  responseSerialize: encodeResponse,
  responseDeserialize: decodeResponse,
};

/** The service definition, for servers and for clients (`makeGenericClientConstructor`). */
export const HealthService = {
  check: {
    path: '/grpc.health.v1.Health/Check',
    requestStream: false,
    responseStream: false,
    ...codec,
  },
  watch: {
    path: '/grpc.health.v1.Health/Watch',
    requestStream: false,
    responseStream: true,
    ...codec,
  },
} satisfies ServiceDefinition;

/** Options of {@link addHealthService}. */
export interface HealthOptions {
  /**
   * Whether an unknown service's NOT_FOUND lists the known ones. Default true; an API under
   * an auth policy says nothing of what it serves to a caller without credentials.
   */
  readonly listServices?: boolean;
}

/** A health service added to a server; `close` ends its watches (call it before shutdown). */
export interface HealthHandle {
  close(): void;
}

/**
 * Serves `grpc.health.v1.Health` on `server` for `services` (and `""`, the whole server),
 * each SERVING exactly when `readiness()` says ready.
 */
export function addHealthService(
  server: Server,
  services: readonly string[],
  readiness: () => Readiness,
  opts: HealthOptions = {},
): HealthHandle {
  const known = new Set(['', ...services]);
  const watches = new Set<() => void>();
  const statusOf = (service: string): ServingStatus =>
    service.length > MAX_SERVICE_CHARS || !known.has(service)
      ? ServingStatus.SERVICE_UNKNOWN
      : readiness().ready
        ? ServingStatus.SERVING
        : ServingStatus.NOT_SERVING;

  const check = (
    call: ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>,
    callback: sendUnaryData<HealthCheckResponse>,
  ): void => {
    const s = statusOf(call.request.service);
    if (s === ServingStatus.SERVICE_UNKNOWN) {
      const details =
        opts.listServices === false
          ? 'unknown service'
          : `unknown service; known: ${[...known].filter((k) => k !== '').join(', ')}`;
      callback(Object.assign(new Error(details), { code: status.NOT_FOUND, details }));
      return;
    }
    callback(null, { status: s });
  };

  const watch = (call: ServerWritableStream<HealthCheckRequest, HealthCheckResponse>): void => {
    let last: ServingStatus | undefined;
    const send = (): void => {
      const s = statusOf(call.request.service);
      if (s !== last) call.write({ status: s });
      last = s;
    };
    const timer = setInterval(send, WATCH_POLL_MS);
    const end = (): void => {
      clearInterval(timer);
      watches.delete(end);
      if (!call.cancelled) call.end(new Metadata());
    };
    watches.add(end);
    call.on('cancelled', end);
    call.on('error', end);
    send();
  };

  server.addService(HealthService, { check, watch });
  return {
    close: () => {
      for (const end of [...watches]) end();
    },
  };
}
