/**
 * Logs.Tail through the API: find the machine the unit is placed on (a Global unit's copy on
 * the requested machine, or its first machine by id; or, when it is not placed any more, the
 * machine its last state came from),
 * and relay that agent's own Logs.Tail (over TLS with --agent-ca-file: agent-link.ts). The
 * API keeps no logs itself; when the agent cannot be reached the caller is told so, in words,
 * with UNAVAILABLE.
 */
import { status, type ServerWritableStream, type ServiceError } from '@grpc/grpc-js';
import type { LogLine, TailRequest } from '../../proto/flotilla/v1/logs.js';
import type { Placement } from '../../proto/flotilla/v1/records.js';
import { LogsClient } from '../../proto/flotilla/v1/logs.js';
import { parseUnitName } from '../../unit/index.js';
import type { AgentLink } from './agent-link.js';
import {
  ApiError,
  logFailure,
  toGrpcStatus,
  toServiceError,
  type GrpcStatus,
} from '../gate/errors.js';
import type { StreamContext } from './events.js';
import { fresh, resolveMachine, type ApiCluster } from './reads.js';
import { extrasOf } from './unit-status.js';

/** Where a unit's logs are: the machine and its agent's Logs endpoint. */
interface LogSource {
  readonly machine: string;
  readonly endpoint: string;
}

/**
 * Where a relayed tail goes: the gRPC call (tailLogs below) or an HTTP response
 * (scheduler/http/logs-stream.ts). `write` returns false when the consumer's buffer is full;
 * the relay then pauses the agent's stream until `drained` calls back.
 */
export interface TailSink {
  write(line: LogLine): boolean;
  drained(resume: () => void): void;
  /** The tail ended: cleanly (`failure` undefined) or with a status. Called once. */
  end(failure: GrpcStatus | undefined, err?: unknown): void;
  /** Whether the consumer left (nothing is relayed then). */
  readonly gone: boolean;
  /** The unit's agent was found and its stream opened (before any line). */
  opened?(): void;
}

/**
 * Relays `request`'s tail from the unit's agent into `sink`: finds the unit's machine, opens
 * the agent's Logs.Tail and forwards each line, with backpressure. Returns a stopper that
 * ends it (the sink then hears a clean end).
 */
export function relayTail(
  ctx: StreamContext,
  cluster: ApiCluster,
  agents: AgentLink,
  request: TailRequest,
  sink: TailSink,
): () => void {
  let stop: (() => void) | undefined;
  let stopped = false;
  findSource(cluster, request).then(
    (source) => {
      if (stopped) return sink.end(undefined);
      stop = relay(ctx, agents, request, sink, source);
    },
    (err: unknown) => sink.end(toGrpcStatus(err, ctx), err),
  );
  return () => {
    stopped = true;
    stop?.();
  };
}

/** The Logs.Tail handler of the API: a relay to the unit's agent. */
export function tailLogs(
  ctx: StreamContext,
  cluster: ApiCluster,
  agents: AgentLink,
): (call: ServerWritableStream<TailRequest, LogLine>) => void {
  return (call) => {
    const stop = relayTail(ctx, cluster, agents, call.request, {
      write: (line) => call.write(line),
      drained: (resume) => call.once('drain', resume),
      end: (s, err) => {
        if (s === undefined) return call.end();
        logFailure(ctx.logger, 'Logs.Tail', s, err);
        call.emit('error', toServiceError(s));
      },
      get gone() {
        return call.cancelled;
      },
    });
    call.on('cancelled', stop);
    call.on('close', stop);
  };
}

async function findSource(cluster: ApiCluster, req: TailRequest): Promise<LogSource> {
  const { mirror } = cluster;
  const unit = req.unit;
  parseUnitName(unit);
  await fresh(cluster);
  if (mirror.units.get(unit) === undefined) {
    throw new ApiError('not-found', `${unit} is not a submitted unit`);
  }
  const { state, placements } = extrasOf(mirror, unit);
  const machine =
    req.machine !== ''
      ? copyOn(unit, placements, req.machine)
      : (placements.find((p) => p.machine === state?.machine)?.machine ??
        placements[0]?.machine ??
        state?.machine);
  if (machine === undefined || machine === '') {
    throw new ApiError('not-found', `${unit} is not placed on any machine, so it has no logs`);
  }
  const record = mirror.machines.get(machine);
  if (record === undefined) {
    throw new ApiError(
      'unavailable',
      `the agent of machine ${machine} (where ${unit} runs) is not connected: its logs cannot be read now`,
    );
  }
  if (record.value.agentEndpoint === '') {
    throw new ApiError('unavailable', `machine ${machine} does not advertise a Logs endpoint`);
  }
  return { machine, endpoint: record.value.agentEndpoint };
}

/** The machine of `unit`'s copy on the machine `query` names (id or unique prefix). */
function copyOn(unit: string, placements: readonly Placement[], query: string): string {
  const ids = new Set(placements.map((p) => p.machine));
  try {
    return resolveMachine(ids, query);
  } catch (err) {
    if (err instanceof ApiError && err.code === 'not-found') {
      throw new ApiError('not-found', `${unit} is not placed on a machine ${query}`);
    }
    throw err;
  }
}

function relay(
  ctx: StreamContext,
  agents: AgentLink,
  request: TailRequest,
  sink: TailSink,
  source: LogSource,
): () => void {
  if (sink.gone) {
    sink.end(undefined); // the client left while the unit was being looked up
    return () => undefined;
  }
  const client = new LogsClient(source.endpoint, agents.credentials);
  const upstream = client.tail({ ...request, machine: source.machine });
  let done = false;
  const finish = (s?: GrpcStatus, err?: unknown): void => {
    if (done) return;
    done = true;
    ctx.open.delete(finish);
    upstream.cancel();
    client.close();
    sink.end(s, err);
  };
  ctx.open.add(finish);
  sink.opened?.();
  upstream.on('data', (line: LogLine) => {
    if (done) return;
    if (!sink.write(line)) {
      upstream.pause();
      sink.drained(() => upstream.resume());
    }
  });
  upstream.on('end', () => finish());
  upstream.on('error', (err: ServiceError) => {
    if (done) return;
    if (err.code === status.UNAVAILABLE || err.code === status.DEADLINE_EXCEEDED) {
      const details = agents.unreachable(source.machine, source.endpoint, err.details);
      return finish({ code: status.UNAVAILABLE, details }, err);
    }
    finish({ code: err.code, details: err.details }, err);
  });
  return () => finish();
}
