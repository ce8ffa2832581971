/**
 * One published port of the routing mesh: a TCP listener that forwards each connection to a
 * healthy endpoint of its service, anywhere in the cluster. Endpoints are taken round robin;
 * a connect that fails or takes longer than the connect timeout is retried on the next
 * endpoint, and the endpoint that failed is skipped by new connections for a while, so new
 * connections never wait on a dead instance more than once. Once connected, bytes are piped
 * both ways untouched (TCP, not HTTP: any protocol works) until either side ends.
 *
 * The fallback data plane (`--mesh-data-plane=builtin`, or `auto` without HAProxy): HAProxy
 * carries more per core (docs/benchmarks.md, "Services: the routing mesh").
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';

/** Where one connection may go: a healthy endpoint's address and port. */
export interface Backend {
  readonly address: string;
  readonly port: number;
}

/** Options of a {@link TcpProxy}. */
export interface TcpProxyOptions {
  /** The address to listen on (`0.0.0.0` for every address of the machine). */
  readonly host: string;
  readonly port: number;
  /** The endpoints to forward to now; read at every new connection (it must be cheap). */
  readonly backends: () => readonly Backend[];
  /** How long a connect may take before the next endpoint is tried. Default 300 ms. */
  readonly connectTimeoutMs?: number;
  /**
   * How long the last endpoint a connection tries may take to connect: with no other left,
   * waiting longer can only save the connection (a machine under heavy load is slow to
   * accept, not dead). Default 5 s.
   */
  readonly lastConnectTimeoutMs?: number;
  /** Endpoints tried per connection at most. Default 3. */
  readonly maxAttempts?: number;
  /** How long an endpoint whose connect failed is skipped by new connections. Default 2 s. */
  readonly quarantineMs?: number;
  /** Open client connections at most; more are refused at accept. Default 10,000. */
  readonly maxConnections?: number;
}

/** What a proxy has done, for metrics and tests. */
export interface TcpProxyStats {
  accepted: number;
  /** Connections closed at once because no endpoint could be reached. */
  refused: number;
  /** Connect attempts that failed or timed out (each then tried the next endpoint). */
  connectFailures: number;
  /** Connections open now. */
  open: number;
}

/** How long a client may keep its half open after the backend closed. */
const HALF_OPEN_LINGER_MS = 10_000;

const DEFAULTS = {
  connectTimeoutMs: 300,
  lastConnectTimeoutMs: 5_000,
  maxAttempts: 3,
  quarantineMs: 2_000,
  maxConnections: 10_000,
};

/** One listening port. `listen()`, then `close()`. */
export class TcpProxy {
  readonly stats: TcpProxyStats = { accepted: 0, refused: 0, connectFailures: 0, open: 0 };
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  /** `address:port` -> until when (performance.now()) it is skipped. */
  private readonly quarantine = new Map<string, number>();
  private next = 0;
  private readonly connectTimeoutMs: number;
  private readonly lastConnectTimeoutMs: number;
  private readonly maxAttempts: number;
  private readonly quarantineMs: number;

  constructor(private readonly opts: TcpProxyOptions) {
    this.connectTimeoutMs = opts.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs;
    this.lastConnectTimeoutMs = Math.max(
      this.connectTimeoutMs,
      opts.lastConnectTimeoutMs ?? DEFAULTS.lastConnectTimeoutMs,
    );
    this.maxAttempts = opts.maxAttempts ?? DEFAULTS.maxAttempts;
    this.quarantineMs = opts.quarantineMs ?? DEFAULTS.quarantineMs;
    // Half-open kept: a client that shuts its side after the request still gets the answer.
    this.server = createServer({ noDelay: true, allowHalfOpen: true }, (socket) =>
      this.accept(socket),
    );
    this.server.maxConnections = opts.maxConnections ?? DEFAULTS.maxConnections;
  }

  /** Binds the port; rejects with the system's error (EADDRINUSE, EACCES) when it cannot. */
  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen({ host: this.opts.host, port: this.opts.port, exclusive: true }, () => {
        this.server.off('error', onError);
        // A later server error (rare: EMFILE on accept) must not crash the agent.
        this.server.on('error', () => undefined);
        resolve();
      });
    });
  }

  /** The bound port (the option's, or the one picked for port 0). */
  get port(): number {
    const addr = this.server.address();
    return typeof addr === 'object' && addr !== null ? addr.port : this.opts.port;
  }

  /** Stops accepting and ends every open connection. Idempotent. */
  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    if (!this.server.listening) return;
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    this.stats.accepted++;
    this.stats.open++;
    this.sockets.add(client);
    client.pause();
    client.on('error', () => client.destroy());
    client.once('close', () => {
      this.stats.open--;
      this.sockets.delete(client);
    });
    this.attempt(client, this.order(), 0);
  }

  /**
   * The endpoints to try for one connection, in order: round robin over those not in
   * quarantine, then (only if every one is) the quarantined ones, so a service whose every
   * endpoint failed once is still tried rather than refused outright.
   */
  private order(): Backend[] {
    const all = this.opts.backends();
    if (all.length === 0) return [];
    const start = this.next++ % all.length;
    if (this.next >= Number.MAX_SAFE_INTEGER) this.next = 0;
    const now = performance.now();
    const fresh: Backend[] = [];
    const held: Backend[] = [];
    for (let i = 0; i < all.length && fresh.length < this.maxAttempts; i++) {
      const b = all[(start + i) % all.length] as Backend;
      const until = this.quarantine.get(keyOf(b));
      if (until === undefined || until <= now) fresh.push(b);
      else held.push(b);
    }
    return fresh.length > 0 ? fresh : held.slice(0, this.maxAttempts);
  }

  private attempt(client: Socket, order: readonly Backend[], i: number): void {
    const backend = order[i];
    if (backend === undefined || client.destroyed) {
      if (backend === undefined) this.stats.refused++;
      client.destroy();
      return;
    }
    const upstream = createConnection({
      host: backend.address,
      port: backend.port,
      noDelay: true,
      allowHalfOpen: true,
    });
    let connected = false;
    const last = i === order.length - 1;
    const timer = setTimeout(
      () => fail(),
      last ? this.lastConnectTimeoutMs : this.connectTimeoutMs,
    );
    const fail = (): void => {
      if (connected) return;
      connected = true; // settles this attempt once
      clearTimeout(timer);
      upstream.destroy();
      this.stats.connectFailures++;
      this.quarantine.set(keyOf(backend), performance.now() + this.quarantineMs);
      if (this.quarantine.size > 10_000) this.quarantine.clear();
      this.attempt(client, order, i + 1);
    };
    upstream.once('error', fail);
    upstream.once('connect', () => {
      if (connected) return;
      connected = true;
      clearTimeout(timer);
      upstream.off('error', fail);
      this.quarantine.delete(keyOf(backend));
      this.join(client, upstream);
    });
  }

  private join(client: Socket, upstream: Socket): void {
    if (client.destroyed) {
      upstream.destroy();
      return;
    }
    this.sockets.add(upstream);
    upstream.on('error', () => {
      upstream.destroy();
      client.destroy();
    });
    client.on('error', () => upstream.destroy());
    // A backend that answers and closes (HTTP/1.0, Connection: close) must not have its answer
    // cut: the client is ended, which flushes what is still buffered, never destroyed,
    // unless the backend broke off. A client that then keeps its half open is closed later.
    upstream.once('close', (hadError) => {
      this.sockets.delete(upstream);
      if (hadError) client.destroy();
      else if (!client.destroyed) {
        client.end();
        client.setTimeout(HALF_OPEN_LINGER_MS, () => client.destroy());
      }
    });
    client.once('close', () => upstream.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
    client.resume();
  }
}

function keyOf(b: Backend): string {
  return `${b.address}:${b.port}`;
}
