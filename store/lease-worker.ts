/**
 * The lease worker: a worker thread with its own etcd connection that grants, revokes and
 * renews leases, so that renewals never wait behind the process's bulk traffic (a watch
 * delivering 100,000 records, pages of a listing, large transactions) nor behind a long task
 * on the main thread (a planning pass, decoding a large watch batch, a GC pause): its timers
 * run on its own event loop. Every kept lease is renewed on ONE LeaseKeepAlive stream, each
 * from its own timer; outcomes go back to the main thread batched, one message per turn.
 *
 * The stream goes to one etcd endpoint at a time, chosen here rather than by the etcd client
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
/** The endpoint the next stream opens on. */
let current = 0;
/** Streams that broke in a row without an answer: below the endpoint count, retry at once. */
let breaksInRow = 0;
let stream: KeepAliveStream | undefined;
let opening: Promise<KeepAliveStream> | undefined;
/** When the current stream last answered (or was opened). */
let lastAnswerAt = 0;
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
  if (stream !== undefined && k.sent.length > 0) {
    if (sentAt - lastAnswerAt >= 2 * k.spec.deadlineMs) {
      // Nothing has answered on this stream for twice the deadline: its member lost its
      // leader, or froze, and may never answer what it holds. The next endpoint's stream
      // takes the renewal (dropStream schedules it at once while endpoints remain untried).
      resetStream();
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
    const s = await ensureStream();
    if (k.pending !== p || kept.get(k.spec.lease) !== k) return;
    k.sent.push(sentAt);
    s.write({ ID: k.spec.lease });
  } catch (err) {
    if (k.pending === p) fail(k, wire(err), retryAtOnce());
  }
}

/** Whether a renewal that failed with its stream should go at once to the next endpoint. */
function retryAtOnce(): boolean {
  return breaksInRow < streamClients.length;
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
  if (Date.now() - lastAnswerAt >= 2 * k.spec.deadlineMs) resetStream();
}

function fail(k: Kept, error: WireError, atOnce = false): void {
  const attemptMs = k.pending === undefined ? 0 : Date.now() - k.pending.sentAt;
  if (k.pending !== undefined) clearTimeout(k.pending.timer);
  k.pending = undefined;
  if (kept.get(k.spec.lease) !== k) return;
  tell({ type: 'failed', lease: k.spec.lease, error, attemptMs });
  schedule(k, atOnce ? 0 : k.spec.retryMs);
}

function ensureStream(): Promise<KeepAliveStream> {
  if (stream !== undefined) return Promise.resolve(stream);
  const endpoint = current;
  opening ??= (streamClients[endpoint] ?? client).leaseClient.leaseKeepAlive().then(
    (s) => {
      opening = undefined;
      stream = s;
      lastAnswerAt = Date.now();
      s.on('data', (res) => stream === s && onAnswer(res));
      s.on('error', (err) => stream === s && dropStream(wire(err)));
      s.on('end', () => {
        if (stream === s) dropStream({ code: 'unavailable', message: 'keepalive stream ended' });
      });
      return s;
    },
    (err: unknown) => {
      opening = undefined;
      nextEndpoint(endpoint);
      throw err;
    },
  );
  return opening;
}

function onAnswer(res: ILeaseKeepAliveResponse): void {
  lastAnswerAt = Date.now();
  breaksInRow = 0;
  const k = kept.get(res.ID);
  const sentAt = k?.sent.shift();
  if (k === undefined || sentAt === undefined) return; // dropped since it was sent
  const ttl = Number(res.TTL);
  const p = k.pending;
  if (p !== undefined) clearTimeout(p.timer);
  k.pending = undefined;
  if (ttl <= 0) {
    drop(k.spec.lease);
    tell({ type: 'lost', lease: k.spec.lease, at: lastAnswerAt });
    return;
  }
  tell({
    type: 'renewed',
    lease: k.spec.lease,
    sentAt,
    ttl,
    lateMs: p?.lateMs ?? 0,
    rttMs: lastAnswerAt - sentAt,
  });
  // An answer to a renewal already given up on still extends the lease; the retry stands.
  if (p !== undefined) schedule(k, k.spec.intervalMs);
}

/** The stream on endpoint `failed` broke: the next one opens on the following endpoint. */
function nextEndpoint(failed: number): void {
  if (failed !== current) return; // already moved on
  breaksInRow += 1;
  current = (current + 1) % Math.max(1, streamClients.length);
}

/**
 * Forgets the stream (the next renewal opens another, on the next endpoint) and sends what
 * waited on it again: at once while endpoints remain untried, else after the retry pause.
 */
function dropStream(error: WireError): void {
  const s = stream;
  stream = undefined;
  s?.cancel();
  nextEndpoint(current);
  const atOnce = retryAtOnce();
  for (const k of kept.values()) {
    const unanswered = k.sent.length > 0;
    k.sent.length = 0;
    if (k.pending !== undefined) fail(k, error, atOnce);
    else if (unanswered && atOnce) schedule(k, 0);
  }
}

function resetStream(): void {
  dropStream({ code: 'unavailable', message: 'keepalive stream silent; reopening it' });
}

function keep(spec: KeepSpec): void {
  const k = kept.get(spec.lease);
  if (k !== undefined) {
    k.spec = spec;
    return;
  }
  const fresh: Kept = { spec, due: 0, timer: undefined, pending: undefined, sent: [] };
  kept.set(spec.lease, fresh);
  schedule(fresh, spec.intervalMs);
}

function drop(lease: string): void {
  const k = kept.get(lease);
  if (k === undefined) return;
  kept.delete(lease);
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
      stream?.cancel();
      stream = undefined;
      client.close();
      for (const c of streamClients) c.close();
      post({ op: 'reply', req: msg.req, ok: true, seconds: 0 });
      port.close();
      return;
  }
});
