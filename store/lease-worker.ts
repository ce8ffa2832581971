/**
 * The lease worker: a worker thread with its own etcd connection that grants, revokes and
 * renews leases, so that renewals never wait behind the process's bulk traffic (a watch
 * delivering 100,000 records, pages of a listing, large transactions) nor behind a long task
 * on the main thread (a planning pass, decoding a large watch batch, a GC pause): its timers
 * run on its own event loop. Each kept lease is renewed from its own timer on a LeaseKeepAlive
 * stream: a process's few leases share one, and a process that keeps leases for many holders
 * (LeasePool) spreads them over several, since etcd answers one stream's renewals one at a
 * time (store/lease-pool.ts). Outcomes go back to the main thread batched, one message per
 * turn.
 *
 * A stream goes to one etcd endpoint at a time, chosen here rather than by the etcd client
 * (which picks a host at random and never fails a stream over): when it breaks, cannot be
 * opened, or stays silent for twice the renewal deadline, the next endpoint's stream takes
 * over and the renewals that waited are sent again at once, so a dead or frozen member costs
 * a lease one round trip, not a retry pause per unlucky pick. Only after every endpoint failed
 * in a row does a renewal wait its retry pause.
 * Started by {@link LeaseKeeper} (store/lease-keeper.ts); nothing else talks to it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import {
  Etcd3,
  type ILeaseKeepAliveRequest,
  type ILeaseKeepAliveResponse,
  type IDuplexStream,
} from 'etcd3';
import { faultHandling } from './fault-policy.js';
import { toStoreError } from './errors.js';
import type {
  KeepSpec,
  LeaseOutcome,
  LeaseReply,
  LeaseRequest,
  LeaseWorkerData,
  WireError,
} from './lease-protocol.js';
import { etcdCredentials, type StoreTls } from './tls.js';

type KeepAliveStream = IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>;

interface Pending {
  readonly sentAt: number;
  readonly lateMs: number;
  readonly timer: NodeJS.Timeout;
}

interface Kept {
  spec: KeepSpec;
  /** The stream it is renewed on. */
  readonly lane: Lane;
  /** When the next renewal is due (Unix ms): its lateness is measured against this. */
  due: number;
  timer: NodeJS.Timeout | undefined;
  /** The renewal waiting for its answer, if any. */
  pending: Pending | undefined;
  /** Send times of renewals on the current stream not answered yet, oldest first. */
  readonly sent: number[];
}

const port = parentPort;
if (port === null) throw new Error('store/lease-worker.js runs as a worker thread only');
const options = workerData as LeaseWorkerData;
const kept = new Map<string, Kept>();
/** Grants and revokes: any endpoint, with the etcd client's own failover. */
const client = openClient(options, options.endpoints);
/** Keepalive streams: one client per endpoint, so the worker decides where a stream goes. */
const streamClients = options.endpoints.map((endpoint) => openClient(options, [endpoint]));
/** One LeaseKeepAlive stream and the leases renewed on it (KeepSpec.stream). */
interface Lane {
  readonly kept: Set<Kept>;
  /** The endpoint its next stream opens on. */
  current: number;
  /** Its streams that broke in a row without an answer: below the endpoint count, retry at once. */
  breaksInRow: number;
  stream: KeepAliveStream | undefined;
  opening: Promise<KeepAliveStream> | undefined;
  /** When its stream last answered (or was opened). */
  lastAnswerAt: number;
}
const lanes = new Map<number, Lane>();
let outbox: LeaseOutcome[] = [];

function openClient(o: LeaseWorkerData, hosts: readonly string[]): Etcd3 {
  // TLS material crossed the thread boundary as Uint8Arrays.
  const tls: StoreTls | undefined =
    o.tls === undefined
      ? undefined
      : {
          ...(o.tls.ca === undefined ? {} : { ca: Buffer.from(o.tls.ca) }),
          ...(o.tls.cert === undefined ? {} : { cert: Buffer.from(o.tls.cert) }),
          ...(o.tls.key === undefined ? {} : { key: Buffer.from(o.tls.key) }),
        };
  const credentials = etcdCredentials(tls);
  return new Etcd3({
    hosts: [...hosts],
    ...(credentials === undefined ? {} : { credentials }),
    ...(o.auth === undefined
      ? {}
      : { auth: { username: o.auth.username, password: o.auth.password } }),
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + o.callTimeoutMs }),
    faultHandling: faultHandling(hosts),
    grpcOptions: {
      'grpc.initial_reconnect_backoff_ms': Math.min(500, o.dialTimeoutMs),
      'grpc.max_reconnect_backoff_ms': o.dialTimeoutMs,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 0,
    },
  });
}

function wire(err: unknown): WireError {
  const e = toStoreError(err);
  return { code: e.code, message: e.message.slice(0, 1000) };
}

function post(msg: LeaseReply): void {
  port?.postMessage(msg);
}

function tell(outcome: LeaseOutcome): void {
  if (outbox.length === 0) setImmediate(flush);
  outbox.push(outcome);
}

function flush(): void {
  const items = outbox;
  outbox = [];
  if (items.length > 0) post({ op: 'outcomes', items });
}

function schedule(k: Kept, ms: number): void {
  clearTimeout(k.timer);
  k.due = Date.now() + ms;
  k.timer = setTimeout(() => void fire(k), ms);
}

async function fire(k: Kept): Promise<void> {
  k.timer = undefined;
  const sentAt = Date.now();
  const lane = k.lane;
  if (lane.stream !== undefined && k.sent.length > 0) {
    if (sentAt - lane.lastAnswerAt >= 2 * k.spec.deadlineMs) {
      // Nothing has answered on this stream for twice the deadline: its member lost its
      // leader, or froze, and may never answer what it holds. The next endpoint's stream
      // takes the renewal (dropStream schedules it at once while endpoints remain untried).
      resetStream(lane);
      if (k.timer === undefined) schedule(k, 0);
      return;
    }
    // The last renewal is still queued at etcd (a busy etcd answers renewals late, in order):
    // another one would only lengthen its queue. Its answer renews the lease when it comes.
    const waited = sentAt - (k.sent[0] ?? sentAt);
    tell({
      type: 'failed',
      lease: k.spec.lease,
      error: {
        code: 'deadline',
        message: `etcd has not answered a lease renewal sent ${waited} ms ago`,
      },
      attemptMs: waited,
    });
    schedule(k, k.spec.retryMs);
    return;
  }
  const p: Pending = {
    sentAt,
    lateMs: Math.max(0, sentAt - k.due),
    timer: setTimeout(() => onDeadline(k, p), k.spec.deadlineMs),
  };
  k.pending = p;
  try {
    const s = await ensureStream(lane);
    if (k.pending !== p || kept.get(k.spec.lease) !== k) return;
    k.sent.push(sentAt);
    s.write({ ID: k.spec.lease });
  } catch (err) {
    if (k.pending === p) fail(k, wire(err), retryAtOnce(lane));
  }
}

/** Whether a renewal that failed with its stream should go at once to the next endpoint. */
function retryAtOnce(lane: Lane): boolean {
  return lane.breaksInRow < streamClients.length;
}

function onDeadline(k: Kept, p: Pending): void {
  if (k.pending !== p) return;
  fail(k, {
    code: 'deadline',
    message: `etcd did not answer a lease renewal within ${Math.round(k.spec.deadlineMs)} ms`,
  });
  // A slow etcd still answers, late and in order: keep the stream, or every renewal queued
  // on it is lost and sent again behind the same backlog. Only a stream that has answered
  // nothing for twice the deadline is taken for dead (else gRPC's keepalive finds out).
  if (Date.now() - k.lane.lastAnswerAt >= 2 * k.spec.deadlineMs) resetStream(k.lane);
}

function fail(k: Kept, error: WireError, atOnce = false): void {
  const attemptMs = k.pending === undefined ? 0 : Date.now() - k.pending.sentAt;
  if (k.pending !== undefined) clearTimeout(k.pending.timer);
  k.pending = undefined;
  if (kept.get(k.spec.lease) !== k) return;
  tell({ type: 'failed', lease: k.spec.lease, error, attemptMs });
  schedule(k, atOnce ? 0 : k.spec.retryMs);
}

function ensureStream(lane: Lane): Promise<KeepAliveStream> {
  if (lane.stream !== undefined) return Promise.resolve(lane.stream);
  const endpoint = lane.current;
  lane.opening ??= (streamClients[endpoint] ?? client).leaseClient.leaseKeepAlive().then(
    (s) => {
      lane.opening = undefined;
      lane.stream = s;
      lane.lastAnswerAt = Date.now();
      s.on('data', (res) => lane.stream === s && onAnswer(lane, res));
      s.on('error', (err) => lane.stream === s && dropStream(lane, wire(err)));
      s.on('end', () => {
        if (lane.stream === s) {
          dropStream(lane, { code: 'unavailable', message: 'keepalive stream ended' });
        }
      });
      return s;
    },
    (err: unknown) => {
      lane.opening = undefined;
      nextEndpoint(lane, endpoint);
      throw err;
    },
  );
  return lane.opening;
}

function onAnswer(lane: Lane, res: ILeaseKeepAliveResponse): void {
  lane.lastAnswerAt = Date.now();
  lane.breaksInRow = 0;
  const k = kept.get(res.ID);
  const sentAt = k?.lane === lane ? k.sent.shift() : undefined;
  if (k === undefined || sentAt === undefined) return; // dropped since it was sent
  const ttl = Number(res.TTL);
  const p = k.pending;
  if (p !== undefined) clearTimeout(p.timer);
  k.pending = undefined;
  if (ttl <= 0) {
    drop(k.spec.lease);
    tell({ type: 'lost', lease: k.spec.lease, at: lane.lastAnswerAt });
    return;
  }
  tell({
    type: 'renewed',
    lease: k.spec.lease,
    sentAt,
    ttl,
    lateMs: p?.lateMs ?? 0,
    rttMs: lane.lastAnswerAt - sentAt,
  });
  // An answer to a renewal already given up on still extends the lease; the retry stands.
  if (p !== undefined) schedule(k, k.spec.intervalMs);
}

/** The lane's stream on endpoint `failed` broke: its next one opens on the following endpoint. */
function nextEndpoint(lane: Lane, failed: number): void {
  if (failed !== lane.current) return; // already moved on
  lane.breaksInRow += 1;
  lane.current = (lane.current + 1) % Math.max(1, streamClients.length);
}

/**
 * Forgets the lane's stream (its next renewal opens another, on the next endpoint) and sends
 * what waited on it again: at once while endpoints remain untried, else after the retry pause.
 */
function dropStream(lane: Lane, error: WireError): void {
  const s = lane.stream;
  lane.stream = undefined;
  s?.cancel();
  nextEndpoint(lane, lane.current);
  const atOnce = retryAtOnce(lane);
  for (const k of lane.kept) {
    const unanswered = k.sent.length > 0;
    k.sent.length = 0;
    if (k.pending !== undefined) fail(k, error, atOnce);
    else if (unanswered && atOnce) schedule(k, 0);
  }
}

function resetStream(lane: Lane): void {
  dropStream(lane, { code: 'unavailable', message: 'keepalive stream silent; reopening it' });
}

function laneOf(stream: number): Lane {
  let lane = lanes.get(stream);
  if (lane === undefined) {
    lane = {
      kept: new Set(),
      current: 0,
      breaksInRow: 0,
      stream: undefined,
      opening: undefined,
      lastAnswerAt: 0,
    };
    lanes.set(stream, lane);
  }
  return lane;
}

function keep(spec: KeepSpec): void {
  const k = kept.get(spec.lease);
  if (k !== undefined && k.spec.stream === spec.stream) {
    k.spec = spec;
    return;
  }
  drop(spec.lease); // kept on another stream: starts afresh on this one
  const lane = laneOf(spec.stream);
  const fresh: Kept = { spec, lane, due: 0, timer: undefined, pending: undefined, sent: [] };
  kept.set(spec.lease, fresh);
  lane.kept.add(fresh);
  schedule(fresh, spec.intervalMs);
}

function drop(lease: string): void {
  const k = kept.get(lease);
  if (k === undefined) return;
  kept.delete(lease);
  k.lane.kept.delete(k);
  clearTimeout(k.timer);
  if (k.pending !== undefined) clearTimeout(k.pending.timer);
}

async function unary(req: number, fn: () => Promise<Partial<LeaseReply>>): Promise<void> {
  const started = performance.now();
  try {
    const extra = await fn();
    post({ ...extra, op: 'reply', req, ok: true, seconds: (performance.now() - started) / 1000 });
  } catch (err) {
    const seconds = (performance.now() - started) / 1000;
    post({ op: 'reply', req, ok: false, error: wire(err), seconds });
  }
}

port.on('message', (msg: LeaseRequest) => {
  switch (msg.op) {
    case 'grant':
      void unary(msg.req, async () => {
        const res = await client.leaseClient.leaseGrant({ TTL: msg.ttlSeconds });
        return { lease: res.ID, ttlSeconds: Number(res.TTL) };
      });
      return;
    case 'revoke':
      drop(msg.lease);
      void unary(msg.req, async () => {
        await client.leaseClient.leaseRevoke({ ID: msg.lease });
        return {};
      });
      return;
    case 'keep':
      keep(msg.spec);
      return;
    case 'drop':
      drop(msg.lease);
      return;
    case 'close':
      for (const lease of [...kept.keys()]) drop(lease);
      for (const lane of lanes.values()) {
        lane.stream?.cancel();
        lane.stream = undefined;
      }
      client.close();
      for (const c of streamClients) c.close();
      post({ op: 'reply', req: msg.req, ok: true, seconds: 0 });
      port.close();
      return;
  }
});
