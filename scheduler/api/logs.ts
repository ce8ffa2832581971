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

/** The Logs.Tail handler of the API: a relay to the unit's agent. */
export function tailLogs(
  ctx: StreamContext,
  cluster: ApiCluster,
  agents: AgentLink,
): (call: ServerWritableStream<TailRequest, LogLine>) => void {
  return (call) => {
    const fail = (s: GrpcStatus, err: unknown): void => {
      logFailure(ctx.logger, 'Logs.Tail', s, err);
      call.emit('error', toServiceError(s));
    };
    findSource(cluster, call.request).then(
      (source) => relay(ctx, agents, call, source, fail),
      (err: unknown) => fail(toGrpcStatus(err, ctx), err),
    );
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
  call: ServerWritableStream<TailRequest, LogLine>,
  source: LogSource,
  fail: (s: GrpcStatus, err: unknown) => void,
): void {
  if (call.cancelled) return; // the client left while the unit was being looked up
  const client = new LogsClient(source.endpoint, agents.credentials);
  const upstream = client.tail(
    { ...call.request, machine: source.machine },
    agents.metadata(call.request.unit),
  );
  let done = false;
  const finish = (s?: GrpcStatus, err?: unknown): void => {
    if (done) return;
    done = true;
    ctx.open.delete(finish);
    upstream.cancel();
    client.close();
    if (s === undefined) call.end();
    else fail(s, err);
  };
  ctx.open.add(finish);
  call.on('cancelled', () => finish());
  call.on('close', () => finish());
  upstream.on('data', (line: LogLine) => {
    if (done) return;
    if (!call.write(line)) {
      upstream.pause();
      call.once('drain', () => upstream.resume());
    }
  });
  upstream.on('end', () => finish());
  upstream.on('error', (err: ServiceError) => {
    if (done) return;
    if (err.code === status.UNAVAILABLE || err.code === status.DEADLINE_EXCEEDED) {
      const details = agents.unreachable(source.machine, source.endpoint, err.details);
      return finish({ code: status.UNAVAILABLE, details }, err);
    }
    // The agent refused the scheduler, not the caller: passed on as is, it would read as
    // flotctl's own token being wrong.
    if (err.code === status.UNAUTHENTICATED || err.code === status.PERMISSION_DENIED) {
      const details = agents.refused(source.machine, source.endpoint, err.details);
      return finish({ code: status.FAILED_PRECONDITION, details }, err);
    }
    finish({ code: err.code, details: err.details }, err);
  });
}
