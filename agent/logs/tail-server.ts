/**
 * The agent's Logs gRPC service (proto/flotilla/v1/logs.proto): `Tail` streams the last N
 * lines of a unit's log, then, with `follow`, every new line until the caller cancels. It
 * reads the runtime's per-unit log files (log-store.ts), so it serves what a unit wrote
 * even while no agent ran. The scheduler's API relays `flotctl journal` here.
 */
import {
  Metadata,
  Server,
  status,
  type ServerWritableStream,
  type ServiceError,
} from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { addHealthService } from '../../daemon/grpc-health.js';
import type { Readiness } from '../../daemon/metrics-server.js';
import { serverCredentials, type ServerTls } from '../../daemon/tls.js';
import {
  LogsService,
  type LogLine,
  type LogsServer,
  type TailRequest,
} from '../../proto/flotilla/v1/logs.js';
import type { LogStore } from './log-store.js';
import { isSafeUnitName } from '../runtime/index.js';
import { FollowLimits } from './follow-limits.js';
import { refusal, type LogsClientAuth } from './client-auth.js';

/** Lines of the agent's own (prefixed `flotilla: ` in the file) are stream `agent`. */
const AGENT_PREFIX = 'flotilla: ';
/** Asking for more lines than this is capped: a journal is read, not downloaded. */
export const MAX_TAIL_LINES = 100_000;
/** Lines sent when the request leaves `lines` unset. */
export const DEFAULT_TAIL_LINES = 10;

/** What the service needs from the agent. */
export interface TailServerOptions {
  /** host:port to listen on; port 0 picks a free one. */
  readonly listen: string;
  readonly logs: LogStore;
  /** Whether this agent has `unit` (placed here, running here, or with a log here). */
  readonly hasUnit: (unit: string) => Promise<boolean>;
  readonly logger: Logger;
  /** Serve TLS (mutual TLS when it has a client CA). Default: plaintext. */
  readonly tls?: ServerTls;
  /** The agent's readiness, served as gRPC health (grpc.health.v1). Default: always ready. */
  readonly readiness?: () => Readiness;
  /** Who may read logs (client-auth.ts). Default: anyone who can connect. */
  readonly auth?: LogsClientAuth;
  /** Follows (`journal -f`) served at once, over all clients. Default 256. */
  readonly maxFollows?: number;
  /** Follows served at once to one client address. Default 16. */
  readonly maxFollowsPerClient?: number;
}

/** Defaults of {@link TailServerOptions}. */
export const TAIL_DEFAULTS = { maxFollows: 256, maxFollowsPerClient: 16 } as const;

/** A listening Logs service. */
export interface TailServer {
  /** The bound host:port (the real port when 0 was asked for). */
  readonly address: string;
  /** Ends every follower and stops listening. */
  close(): Promise<void>;
}

/** One line of a log file as the wire carries it. */
export function toLogLine(text: string, time: number): LogLine {
  return text.startsWith(AGENT_PREFIX)
    ? { time: BigInt(time), stream: 'agent', text: text.slice(AGENT_PREFIX.length) }
    : { time: BigInt(time), stream: 'stdout', text };
}

function grpcError(code: status, details: string): ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: new Metadata() });
}

/** Starts the service; rejects when the address cannot be bound. */
export async function startTailServer(opts: TailServerOptions): Promise<TailServer> {
  const stopAll = new AbortController();
  const server = new Server();
  const limits = new FollowLimits(
    opts.maxFollows ?? TAIL_DEFAULTS.maxFollows,
    opts.maxFollowsPerClient ?? TAIL_DEFAULTS.maxFollowsPerClient,
  );
  const impl: LogsServer = {
    tail: (call) => {
      serveTail(call, opts, stopAll.signal, limits).catch((err: unknown) => {
        opts.logger.warn({ err, unit: call.request.unit }, 'Logs.Tail failed');
        if (isOpen(call)) {
          call.emit('error', grpcError(status.INTERNAL, `reading the log failed: ${String(err)}`));
        }
      });
    },
  };
  server.addService(LogsService, impl);
  const health = addHealthService(
    server,
    ['flotilla.v1.Logs'],
    opts.readiness ?? (() => ({ ready: true, reasons: [] })),
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(opts.listen, serverCredentials(opts.tls), (err, p) =>
      err === null ? resolve(p) : reject(err),
    ),
  );
  const host = opts.listen.slice(0, opts.listen.lastIndexOf(':'));
  let closing: Promise<void> | undefined;
  return {
    address: `${host}:${port}`,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        stopAll.abort();
        health.close();
        const force = setTimeout(() => server.forceShutdown(), 2_000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      })),
  };
}

async function serveTail(
  call: ServerWritableStream<TailRequest, LogLine>,
  opts: TailServerOptions,
  stopAll: AbortSignal,
  limits: FollowLimits,
): Promise<void> {
  const { unit, follow } = call.request;
  const lines = call.request.lines ?? DEFAULT_TAIL_LINES;
  // Before anything else: an unauthenticated client learns nothing, not even which units exist.
  const refused = opts.auth === undefined ? undefined : refusal(call, unit, opts.auth, Date.now());
  if (refused !== undefined) {
    opts.logger.warn({ peer: call.getPeer(), unit: unit.slice(0, 300) }, refused.details);
    call.emit('error', grpcError(refused.code, refused.details));
    return;
  }
  if (!isSafeUnitName(unit)) {
    call.emit(
      'error',
      grpcError(status.INVALID_ARGUMENT, `${JSON.stringify(unit)} is not a unit name`),
    );
    return;
  }
  if (lines < 0) {
    call.emit('error', grpcError(status.INVALID_ARGUMENT, `lines must be 0 or more, not ${lines}`));
    return;
  }
  if (!(await opts.hasUnit(unit))) {
    call.emit('error', grpcError(status.NOT_FOUND, `${unit} has no log on this machine`));
    return;
  }
  const backlog = Math.min(lines, MAX_TAIL_LINES);
  if (!follow) {
    for (const text of await opts.logs.tail(unit, backlog)) {
      if (!(await send(call, toLogLine(text, Date.now())))) return;
    }
    call.end();
    return;
  }
  const release = limits.take(call.getPeer());
  if (typeof release === 'string') {
    call.emit('error', grpcError(status.RESOURCE_EXHAUSTED, release));
    return;
  }
  const done = new AbortController();
  const end = (): void => done.abort();
  call.on('cancelled', end);
  call.on('close', end);
  const signal = AbortSignal.any([done.signal, stopAll]);
  try {
    for await (const text of opts.logs.follow(unit, { signal, backlog })) {
      if (!(await send(call, toLogLine(text, Date.now())))) break;
    }
  } finally {
    release();
    call.off('cancelled', end);
    call.off('close', end);
  }
  if (isOpen(call)) call.end();
}

/** Writes one line, waiting for the client to drain; false once the call is over. */
async function send(
  call: ServerWritableStream<TailRequest, LogLine>,
  line: LogLine,
): Promise<boolean> {
  if (!isOpen(call)) return false;
  if (call.write(line)) return true;
  await new Promise<void>((resolve) => {
    const done = (): void => {
      call.off('drain', done);
      call.off('close', done);
      resolve();
    };
    call.on('drain', done);
    call.on('close', done);
  });
  return isOpen(call);
}

function isOpen(call: ServerWritableStream<TailRequest, LogLine>): boolean {
  return !call.cancelled && !call.destroyed && !call.writableEnded;
}
