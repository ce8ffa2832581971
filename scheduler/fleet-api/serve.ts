/**
 * fleet's API over node's HTTP: {@link serveFleet} answers one request whose path is under
 * `/fleet/v1/` (any HTTP listener mounts it with one line), and {@link startFleetSocket}
 * serves it on a unix socket (`--fleet-api-socket PATH`; fleetctl's default endpoint is
 * `unix:///var/run/fleet.sock`).
 *
 * The caller is identified as a gRPC call would be, by the gate (scheduler/gate/guard.ts): a
 * bearer token in the Authorization header, else the TLS client certificate, else anonymous;
 * then authorized, counted and audited under the gRPC method the request stands for.
 */
import { Metadata } from '@grpc/grpc-js';
import { lstatSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { toGrpcStatus } from '../gate/errors.js';
import type { AuthContext } from '../gate/auth.js';
import type { Admitted, CallGate } from '../gate/interceptors.js';
import { errorBody, FLEET_BODY_MAX_BYTES, type FleetApi, type FleetGate } from './router.js';
import { contentTypes, FLEET_PREFIX, sendAnswer } from './wire.js';

/** How long one request may take to arrive (headers and body) before it is cut off. */
const REQUEST_TIMEOUT_MS = 30_000;

/** Answers `req` (its URL under {@link FLEET_PREFIX}) with fleet's API; never rejects. */
export async function serveFleet(
  api: FleetApi,
  gate: CallGate | undefined,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://fleet');
  const raw = url.pathname;
  if (!raw.startsWith(FLEET_PREFIX)) {
    send(res, 404, errorBody(404, `not found: fleet's API is under ${FLEET_PREFIX}`));
    return;
  }
  const body = await readBody(req);
  if (body === undefined) {
    send(res, 413, errorBody(413, `the request body is over ${FLEET_BODY_MAX_BYTES} bytes`));
    return;
  }
  const answer = await api.handle({
    method: req.method ?? 'GET',
    path: raw.slice(FLEET_PREFIX.length),
    query: url.searchParams,
    contentTypes: contentTypes(req.rawHeaders),
    body,
    gate: gateOf(gate, req),
  });
  sendAnswer(res, answer);
}

/** A unix socket serving fleet's API. */
export interface FleetSocket {
  readonly path: string;
  close(): Promise<void>;
}

/**
 * Listens on unix socket `path` (a socket left there by an earlier run is replaced; any other
 * file is an error). The socket's file mode is its access control, as fleetd's was.
 */
export async function startFleetSocket(
  path: string,
  api: FleetApi,
  gate: CallGate | undefined,
  logger: Logger,
): Promise<FleetSocket> {
  await removeStaleSocket(path);
  const server = createServer((req, res) => {
    void serveFleet(api, gate, req, res).catch((err: unknown) => {
      logger.error({ err }, 'fleet API request failed');
      if (!res.headersSent) send(res, 500, errorBody(500, 'internal error'));
    });
  });
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  server.headersTimeout = REQUEST_TIMEOUT_MS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  logger.info({ socket: path }, "fleet's API v1 listening");
  return { path, close: () => closeServer(server, path) };
}

function closeServer(server: Server, path: string): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => {
      resolve();
    });
    server.closeIdleConnections();
    // Requests in flight are short (no watches here): give them a moment, then cut them off.
    setTimeout(() => server.closeAllConnections(), 2_000).unref();
  }).then(() => {
    try {
      unlinkSync(path);
    } catch {
      // already gone
    }
  });
}

/**
 * Removes a socket an earlier run left at `path` (nothing answers on it). A socket another
 * process still serves, or a file that is not a socket, is an error and stays.
 */
async function removeStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return; // nothing there
  }
  if (!isSocket) {
    throw new Error(
      `--fleet-api-socket ${path}: a file that is not a socket is there; remove it or choose another path`,
    );
  }
  if (await answers(path)) {
    throw new Error(
      `--fleet-api-socket ${path}: another process serves this socket (fleetd, or another scheduler); stop it or choose another path`,
    );
  }
  unlinkSync(path);
}

/** Whether something accepts connections on unix socket `path` (within 1 s). */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const conn = connect(path);
    const done = (yes: boolean): void => {
      conn.destroy();
      resolve(yes);
    };
    conn.setTimeout(1_000, () => done(true));
    conn.once('connect', () => done(true));
    conn.once('error', () => done(false));
  });
}

/** The gate as fleet's routes use it, identifying the caller of this HTTP request. */
function gateOf(gate: CallGate | undefined, req: IncomingMessage): FleetGate {
  return async (method, request, run) => {
    if (gate === undefined) return run(undefined, undefined);
    const metadata = new Metadata();
    const authorization = req.headers.authorization;
    if (authorization !== undefined) metadata.set('authorization', authorization);
    const socket = req.socket as Partial<TLSSocket>;
    const getAuthContext = (): AuthContext => {
      if (socket.encrypted !== true || socket.getPeerCertificate === undefined) return {};
      const cert = socket.getPeerCertificate();
      return cert.subject === undefined
        ? {}
        : { transportSecurityType: 'ssl', sslPeerCertificate: cert };
    };
    const admitted: Admitted = gate.admit({ metadata, getAuthContext, request }, method);
    try {
      const result = await run(admitted.visible, admitted.rights);
      admitted.done(result, undefined);
      return result;
    } catch (err) {
      admitted.done(undefined, toGrpcStatus(err, { endpoints: [] }));
      throw err;
    }
  };
}

/** The body as UTF-8, or undefined when it is over {@link FLEET_BODY_MAX_BYTES} (the rest is not read). */
async function readBody(req: IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of req) {
    const b = chunk as Buffer;
    bytes += b.length;
    if (bytes > FLEET_BODY_MAX_BYTES) {
      req.resume();
      return undefined;
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function send(res: ServerResponse, status: number, body: string): void {
  sendAnswer(res, { status, body });
}
