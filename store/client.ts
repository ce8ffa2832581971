/**
 * The store handle: one etcd3 client, the key layout, and the deadline and fault policy every
 * call goes through. Other parts of Flotilla open one Store per process and pass it around.
 */
import { Etcd3, type IKeyValue } from 'etcd3';
import { isStoreError, StoreError, toStoreError, type StoreErrorCode } from './errors.js';
import { faultHandling } from './fault-policy.js';
import { Keys, prefixRangeEnd } from './keys.js';
import { LeaseKeeper } from './lease-keeper.js';
import type { RecordCodec } from './records.js';
import { Resender, type Resent } from './resend.js';
import { etcdCredentials, type StoreTls } from './tls.js';
import {
  decodeWatchResponse,
  encodeWatchRequest,
  WATCH_METHOD,
  type WatchRequest,
  type WatchResponse,
} from './watch-codec.js';

/** How to reach etcd. Every field is optional; {@link resolveStoreOptions} fills defaults. */
/** A user name and password for etcd's password authentication. */
export interface StoreAuth {
  readonly username: string;
  readonly password: string;
}

export interface StoreOptions {
  /**
   * etcd client URLs. Default `['http://127.0.0.1:2379']`. `https://` ones are reached over
   * TLS (verified with `tls.ca`, else the public roots); all must use the same scheme.
   */
  endpoints?: string | readonly string[];
  /** TLS material; given, every endpoint must be `https://`. Default: none. */
  tls?: StoreTls;
  /** etcd's own user and password (etcd auth, store/etcd-auth.ts). Default: none. */
  auth?: StoreAuth;
  /** Cluster key prefix. Default `/flotilla/`; a trailing slash is added when missing. */
  prefix?: string;
  /**
   * Upper bound on gRPC's reconnect backoff, so a restarted etcd is found again within about
   * this long. Default 2000 ms.
   */
  dialTimeoutMs?: number;
  /**
   * Deadline of every unary call (get, put, txn, lease grant, keepalive round trip). An
   * unreachable etcd surfaces as StoreError `unavailable` or `deadline` within it (times the
   * number of endpoints, which are tried in turn). Default 5000 ms.
   */
  callTimeoutMs?: number;
  /**
   * How long a read or put (or a transaction whose outcome is checked) may go unanswered before
   * etcd is asked whether it elected a new raft leader meanwhile; if it did, the call is sent
   * again, as a member holds a write it forwarded to a dead leader until the deadline
   * (store/resend.ts). Default 250 ms.
   */
  suspectAfterMs?: number;
}

/** {@link StoreOptions} with every default filled in. */
export interface ResolvedStoreOptions {
  readonly endpoints: readonly string[];
  readonly prefix: string;
  readonly dialTimeoutMs: number;
  readonly callTimeoutMs: number;
  readonly suspectAfterMs: number;
  readonly tls: StoreTls | undefined;
  readonly auth: StoreAuth | undefined;
}

/** The one place defaults live. Throws RangeError for endpoints that cannot work together. */
export function resolveStoreOptions(opts: StoreOptions = {}): ResolvedStoreOptions {
  const endpoints =
    opts.endpoints === undefined
      ? ['http://127.0.0.1:2379']
      : typeof opts.endpoints === 'string'
        ? opts.endpoints
            .split(',')
            .map((e) => e.trim())
            .filter((e) => e !== '')
        : [...opts.endpoints];
  if (endpoints.length === 0) throw new RangeError('StoreOptions.endpoints is empty');
  if (opts.suspectAfterMs !== undefined && !(opts.suspectAfterMs > 0)) {
    throw new RangeError(
      `StoreOptions.suspectAfterMs must be positive, got ${opts.suspectAfterMs}`,
    );
  }
  // etcd3 uses one kind of channel for every endpoint: TLS as soon as one is https:// or
  // TLS material is given, so a plain http:// endpoint beside them would never answer.
  const plain = endpoints.filter((e) => !/^https:\/\//i.test(e));
  if (plain.length > 0 && (plain.length < endpoints.length || opts.tls !== undefined)) {
    throw new RangeError(`etcd endpoint ${plain[0]} is not https://, but etcd is reached over TLS`);
  }
  return {
    endpoints,
    prefix: new Keys(opts.prefix).prefix,
    dialTimeoutMs: opts.dialTimeoutMs ?? 2_000,
    callTimeoutMs: opts.callTimeoutMs ?? 5_000,
    suspectAfterMs: opts.suspectAfterMs ?? 250,
    tls: opts.tls,
    auth: opts.auth,
  };
}

/** A key-value pair as store/ hands it out: revisions and lease ids as bigint. */
export interface KeyValue {
  readonly key: string;
  readonly value: Buffer;
  readonly createRevision: bigint;
  readonly modRevision: bigint;
  readonly version: bigint;
  /** 0n when the key has no lease. */
  readonly lease: bigint;
}

/** A decoded record with the revisions needed for compare-and-swap. */
export interface Versioned<T> {
  readonly key: string;
  readonly value: T;
  readonly createRevision: bigint;
  readonly modRevision: bigint;
  readonly lease: bigint;
}

/** A consistent listing: every entry as of `revision`. */
export interface Listing<T> {
  readonly revision: bigint;
  readonly items: T[];
}

/** Converts etcd3's decimal-string int64 to bigint; the one place this happens. */
export function big(value: string | number | undefined | null): bigint {
  return value === undefined || value === null || value === '' ? 0n : BigInt(value);
}

/** Converts an etcd3 key-value into a {@link KeyValue}. */
export function toKeyValue(kv: IKeyValue): KeyValue {
  return {
    key: kv.key.toString('utf8'),
    value: kv.value,
    createRevision: big(kv.create_revision),
    modRevision: big(kv.mod_revision),
    version: big(kv.version),
    lease: big(kv.lease),
  };
}

/** The raft term in an etcd answer's header, when it has one. */
function termOf(result: unknown): bigint | undefined {
  if (typeof result !== 'object' || result === null || !('header' in result)) return undefined;
  const header: unknown = result.header;
  if (typeof header !== 'object' || header === null || !('raft_term' in header)) return undefined;
  const term = header.raft_term;
  return typeof term === 'string' && /^\d{1,20}$/.test(term) ? BigInt(term) : undefined;
}

/**
 * The requests that are safe to send twice, and so are sent again after a raft leader change
 * (resend.ts): reads, and a put, which writes the same value again.
 */
const RESENDABLE: ReadonlySet<StoreOperation> = new Set(['range', 'status', 'put']);

/** How long the question "which raft term?" may take (it goes to any member). */
const STATUS_PROBE_MS = 1_000;

/** The largest etcd response the client accepts. */
export const MAX_RESPONSE_BYTES = 256 * 1024 * 1024;

/** Default page size of {@link Store.list}. */
export const LIST_PAGE_SIZE = 500;

/** The kinds of etcd request, as {@link Store.onRequest} names them. */
export type StoreOperation =
  | 'range'
  | 'put'
  | 'delete'
  | 'txn'
  | 'watch'
  | 'status'
  | 'compact'
  | 'lease-grant'
  | 'lease-revoke'
  | 'lease-renew'
  | 'lease-keepalive'
  | 'other';

/** One finished request to etcd; `error` is the StoreError code when it failed. */
export interface StoreRequest {
  readonly op: StoreOperation;
  readonly seconds: number;
  readonly error?: StoreErrorCode;
}

/** A Watch stream whose messages store/watch-codec.ts encodes and decodes. */
export interface WatchStream {
  write(request: WatchRequest): boolean;
  /** Ends the call, and with it etcd's watchers on it. */
  cancel(): void;
  pause(): void;
  resume(): void;
  on(event: 'data', fn: (res: WatchResponse) => void): this;
  on(event: 'error', fn: (err: Error) => void): this;
  on(event: 'end', fn: () => void): this;
}

/** etcd3's client, with a Watch stream of Flotilla's own codec on its connections. */
export class EtcdClient extends Etcd3 {
  /**
   * Opens a Watch stream on the endpoint etcd3 would pick (its fault handling passes over a
   * failing one, and a stream error marks its endpoint failed, as etcd3's own watch does).
   */
  watchStream(): Promise<WatchStream> {
    return this.pool.withConnection('Watch', ({ resource, client, metadata }) => {
      const call = client.makeBidiStreamRequest(
        WATCH_METHOD,
        encodeWatchRequest,
        (buf: Buffer) => this.noteRefusal(decodeWatchResponse(buf)),
        metadata,
        {},
      );
      call.on('error', (err: Error) => {
        if (call.writable) this.pool.markFailed(resource, err);
      });
      return call;
    });
  }

  /**
   * A watch etcd cancels for "invalid auth token" (a member that restarted has forgotten the
   * tokens it knew) drops the cached token, so the watch opened next authenticates again.
   * etcd3 does so only for unary calls: a watch reopened with the same token was refused
   * again and again, its retries backing off, until some unary call refreshed it.
   */
  private noteRefusal(res: WatchResponse): WatchResponse {
    if (res.canceled && res.cancelReason.includes(INVALID_AUTH_TOKEN)) {
      (this.pool as unknown as EtcdPoolInternals).authenticator.invalidateMetadata();
    }
    return res;
  }
}

/** etcd's reason for refusing a token it does not know. */
const INVALID_AUTH_TOKEN = 'invalid auth token';

/** The part of etcd3's connection pool that its types keep private (etcd3 1.1). */
interface EtcdPoolInternals {
  readonly authenticator: { invalidateMetadata(): void };
}

/**
 * An open connection to etcd for one cluster prefix. Safe to share; close once at shutdown.
 * Every method throws only StoreError.
 */
export class Store {
  /** The underlying client, for what store/ does not wrap. Its unary calls carry the deadline. */
  readonly client: EtcdClient;
  readonly keys: Keys;
  readonly options: ResolvedStoreOptions;
  private closed = false;
  private readonly requests = new Set<(request: StoreRequest) => void>();
  private readonly resender: Resender;
  private keeper: LeaseKeeper | undefined;

  constructor(options: ResolvedStoreOptions) {
    this.options = options;
    this.keys = new Keys(options.prefix);
    const credentials = etcdCredentials(options.tls);
    this.client = new EtcdClient({
      hosts: [...options.endpoints],
      ...(credentials === undefined ? {} : { credentials }),
      ...(options.auth === undefined
        ? {}
        : { auth: { username: options.auth.username, password: options.auth.password } }),
      defaultCallOptions: (ctx) =>
        ctx.isStream ? {} : { deadline: Date.now() + options.callTimeoutMs },
      faultHandling: faultHandling(options.endpoints),
      grpcOptions: {
        'grpc.initial_reconnect_backoff_ms': Math.min(500, options.dialTimeoutMs),
        'grpc.max_reconnect_backoff_ms': options.dialTimeoutMs,
        // Detects a silently dead connection under a long-lived watch. etcd refuses pings more
        // often than every 5 s, and pings without an active stream.
        'grpc.keepalive_time_ms': 10_000,
        'grpc.keepalive_timeout_ms': 5_000,
        'grpc.keepalive_permit_without_calls': 0,
        // A watch catching up on a large change (100,000 records in one scale) gets its backlog
        // in responses of tens of MB; pages of a listing stay well under this (one that does
        // not is asked for again in halves).
        'grpc.max_receive_message_length': MAX_RESPONSE_BYTES,
      },
    });
    this.resender = new Resender(async () => {
      const res = await this.client.maintenance.status(this.deadline(STATUS_PROBE_MS));
      return { term: big(res.raftTerm), leader: big(res.leader) };
    }, options.suspectAfterMs);
  }

  /** Call options with a fresh deadline, for stream calls that need one explicitly. */
  deadline(ms = this.options.callTimeoutMs): { deadline: number } {
    return { deadline: Date.now() + ms };
  }

  /**
   * Runs `fn` against etcd, translating any failure into a StoreError naming `key`. `op`
   * names the request for {@link onRequest}'s listeners (metrics).
   */
  async call<T>(
    key: string | undefined,
    fn: (client: EtcdClient) => Promise<T>,
    op: StoreOperation = 'other',
  ): Promise<T> {
    return (await this.callResending(key, fn, op, RESENDABLE.has(op))).value;
  }

  /**
   * {@link call}, with `resend`, sent again when etcd elects a new raft leader while it waits
   * (resend.ts), and saying how many times it was. Only for calls safe to send twice: a
   * transaction sent this way whose guard failed after `resent > 0` may have been applied by
   * an earlier attempt, so its caller must check the outcome (as atomicTxn does).
   */
  async callResending<T>(
    key: string | undefined,
    fn: (client: EtcdClient) => Promise<T>,
    op: StoreOperation,
    resend = true,
  ): Promise<Resent<T>> {
    if (this.closed) {
      throw new StoreError('closed', 'store is closed', key === undefined ? {} : { key });
    }
    const started = this.requests.size === 0 ? 0 : performance.now();
    const attempt = async (): Promise<T> => {
      const result = await fn(this.client);
      const term = termOf(result);
      if (term !== undefined) this.resender.saw(term);
      return result;
    };
    try {
      const result = resend
        ? await this.resender.run(attempt, this.options.callTimeoutMs, key)
        : { value: await attempt(), resent: 0 };
      if (started > 0) this.tell({ op, seconds: (performance.now() - started) / 1000 });
      return result;
    } catch (err) {
      const e = toStoreError(err, key);
      if (started > 0)
        this.tell({ op, seconds: (performance.now() - started) / 1000, error: e.code });
      throw e;
    }
  }

  /** Calls `fn` after every request to etcd (cheap work only: it runs on every request). */
  onRequest(fn: (request: StoreRequest) => void): () => void {
    this.requests.add(fn);
    return () => this.requests.delete(fn);
  }

  private tell(r: StoreRequest): void {
    for (const fn of this.requests) fn(r);
  }

  /** The key's current value, or undefined. */
  async get(key: string): Promise<KeyValue | undefined> {
    const res = await this.call(key, (c) => c.kv.range({ key: Buffer.from(key) }), 'range');
    const kv = res.kvs[0];
    return kv === undefined ? undefined : toKeyValue(kv);
  }

  /** The decoded record at `key`, or undefined; a bad value is StoreError `corrupt`. */
  async getRecord<T>(codec: RecordCodec<T>, key: string): Promise<Versioned<T> | undefined> {
    const kv = await this.get(key);
    if (kv === undefined) return undefined;
    return { ...kv, value: codec.decode(key, kv.value) };
  }

  /**
   * Every key under `prefix` as of one revision (the current one unless given), read in pages
   * of `pageSize` so large directories do not make one huge response; a page too large for
   * one response is asked for again in halves.
   */
  async list(
    prefix: string,
    opts: { revision?: bigint; pageSize?: number } = {},
  ): Promise<Listing<KeyValue>> {
    const start = Buffer.from(prefix);
    const end = prefixRangeEnd(start);
    const items: KeyValue[] = [];
    let revision = opts.revision;
    let from = start;
    let limit = opts.pageSize ?? LIST_PAGE_SIZE;
    for (;;) {
      const req = {
        key: from,
        range_end: end,
        limit,
        ...(revision === undefined ? {} : { revision: revision.toString() }),
      };
      let res;
      try {
        res = await this.call(prefix, (c) => c.kv.range(req), 'range');
      } catch (err) {
        // Large values make a page of `limit` keys too big for one response: ask for fewer.
        if (!isStoreError(err, 'too-large') || limit === 1) throw err;
        limit = Math.max(1, Math.floor(limit / 2));
        continue;
      }
      revision ??= big(res.header.revision);
      for (const kv of res.kvs) items.push(toKeyValue(kv));
      const last = res.kvs[res.kvs.length - 1];
      if (!res.more || last === undefined) return { revision, items };
      from = Buffer.concat([last.key, Buffer.from([0])]);
    }
  }

  /** Decoded records under `prefix` as of one revision; a bad value is StoreError `corrupt`. */
  async listRecords<T>(codec: RecordCodec<T>, prefix: string): Promise<Listing<Versioned<T>>> {
    const { revision, items } = await this.list(prefix);
    return {
      revision,
      items: items.map((kv) => ({ ...kv, value: codec.decode(kv.key, kv.value) })),
    };
  }

  /** Writes `value` (under `lease` when given, else with no lease). Returns the new revision. */
  async put(key: string, value: string | Buffer, opts: { lease?: bigint } = {}): Promise<bigint> {
    const req = {
      key: Buffer.from(key),
      value: typeof value === 'string' ? Buffer.from(value) : value,
      ...(opts.lease === undefined ? {} : { lease: opts.lease.toString() }),
    };
    const res = await this.call(key, (c) => c.kv.put(req), 'put');
    return big(res.header.revision);
  }

  /** Encodes and writes a record. Returns the new revision. */
  putRecord<T>(codec: RecordCodec<T>, key: string, value: T, opts: { lease?: bigint } = {}) {
    return this.put(key, codec.encode(value), opts);
  }

  /** Deletes one key; resolves to whether it existed. */
  async delete(key: string): Promise<boolean> {
    const res = await this.call(key, (c) => c.kv.deleteRange({ key: Buffer.from(key) }), 'delete');
    return big(res.deleted) > 0n;
  }

  /** Deletes every key under `prefix`; resolves to how many there were. */
  async deletePrefix(prefix: string): Promise<bigint> {
    const start = Buffer.from(prefix);
    const req = { key: start, range_end: prefixRangeEnd(start) };
    const res = await this.call(prefix, (c) => c.kv.deleteRange(req), 'delete');
    return big(res.deleted);
  }

  /**
   * Asks etcd the cheapest question there is (one key, the prefix itself, which holds
   * nothing): resolves when etcd answers. For health probes, where {@link revision}'s count
   * of the whole prefix would cost in proportion to the cluster.
   */
  async ping(): Promise<void> {
    await this.call(
      undefined,
      (c) => c.kv.range({ key: Buffer.from(this.keys.prefix), keys_only: true }),
      'status',
    );
  }

  /** How many keys there are under `dir`, counted by etcd (an answer of constant size). */
  async count(dir: string): Promise<number> {
    const key = Buffer.from(dir);
    const res = await this.call(
      dir,
      (c) => c.kv.range({ key, range_end: prefixRangeEnd(key), count_only: true }),
      'range',
    );
    return Number(res.count);
  }

  /** The cluster's current revision. */
  async revision(): Promise<bigint> {
    const res = await this.call(
      undefined,
      (c) => c.kv.range({ key: Buffer.from(this.keys.prefix), count_only: true }),
      'status',
    );
    return big(res.header.revision);
  }

  /**
   * Whether, at `revision`, no key under `prefix` was modified after `after` and exactly
   * `count` keys exist: then nothing under the prefix changed between the two revisions.
   * Filtered ranges make etcd read the whole prefix, so this is for rare checks.
   */
  async unchangedSince(
    prefix: string,
    after: bigint,
    revision: bigint,
    count: number,
  ): Promise<boolean> {
    const key = Buffer.from(prefix);
    const range = { key, range_end: prefixRangeEnd(key), revision: revision.toString() };
    const res = await this.call(
      prefix,
      (c) =>
        c.kv.txn({
          compare: [],
          success: [
            {
              request_range: {
                ...range,
                min_mod_revision: (after + 1n).toString(),
                keys_only: true,
                limit: 1,
              },
            },
            { request_range: { ...range, count_only: true } },
          ],
          failure: [],
        }),
      'txn',
    );
    const newer = res.responses[0]?.response_range?.kvs.length ?? 1;
    const total = big(res.responses[1]?.response_range?.count);
    return newer === 0 && total === BigInt(count);
  }

  /**
   * The size of the answering member's database file, in bytes: what etcd compares with its
   * `--quota-backend-bytes` before it raises the NOSPACE alarm. One Maintenance.Status call;
   * callers cache it (the API's quota guard asks at most once a second).
   */
  async dbSize(): Promise<number> {
    const res = await this.call(undefined, (c) => c.maintenance.status(), 'status');
    return Number(res.dbSize);
  }

  /**
   * The lease worker: leases are granted, renewed and revoked on a connection and an event
   * loop of their own (store/lease-keeper.ts), started on first use.
   */
  get leases(): LeaseKeeper {
    if (this.closed) throw new StoreError('closed', 'store is closed');
    this.keeper ??= new LeaseKeeper(this.options, (r) => this.tell(r));
    return this.keeper;
  }

  /** Grants a lease of `ttlSeconds` (on the lease connection); its id and the TTL granted. */
  grantLease(ttlSeconds: number, key?: string): Promise<{ lease: bigint; ttlSeconds: number }> {
    if (this.closed) return Promise.reject(closedError(key));
    return this.leases.grant(ttlSeconds, key);
  }

  /** Revokes a lease (on the lease connection), deleting every key under it. */
  async revokeLease(lease: bigint, key?: string): Promise<void> {
    if (this.closed) throw closedError(key);
    await this.leases.revoke(lease, key);
  }

  /**
   * Creates `key` under `lease` only if it does not exist. Resolves to its create revision,
   * or undefined when it existed already (and was left as it was).
   */
  async createUnderLease(key: string, value: string, lease: bigint): Promise<bigint | undefined> {
    const k = Buffer.from(key);
    const res = await this.call(
      key,
      (c) =>
        c.kv.txn({
          compare: [{ key: k, target: 'Create', result: 'Equal', create_revision: '0' }],
          success: [
            { request_put: { key: k, value: Buffer.from(value), lease: lease.toString() } },
            { request_range: { key: k } },
          ],
          failure: [],
        }),
      'txn',
    );
    const kv = res.responses[1]?.response_range?.kvs[0];
    return res.succeeded && kv !== undefined ? big(kv.create_revision) : undefined;
  }

  /** Compacts history up to `revision` (tests and maintenance; etcd can also auto-compact). */
  async compact(revision: bigint): Promise<void> {
    await this.call(
      undefined,
      (c) => c.kv.compact({ revision: revision.toString(), physical: true }),
      'compact',
    );
  }

  /** Closes the client. Later calls fail with `closed`; watches and presences should be closed first. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.keeper?.close();
    this.client.close();
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

function closedError(key: string | undefined): StoreError {
  return new StoreError('closed', 'store is closed', key === undefined ? {} : { key });
}

/** Opens a store. Does not connect yet: the first call does, and fails within its deadline. */
export function openStore(opts: StoreOptions = {}): Store {
  return new Store(resolveStoreOptions(opts));
}
