/**
 * A real etcd for integration tests: the `etcd` binary on PATH, on free loopback ports, with a
 * temporary data dir. One per test file ({@link etcdForFile} starts it in `test.before` and
 * stops it in `test.after.always`); each test gets its own key prefix (`uniquePrefix`). With
 * `tls`, etcd serves https:// with a throwaway PKI's server certificate and requires client
 * certificates signed by its CA (`--client-cert-auth`), as a production etcd does.
 *
 * @example
 *   const server = etcdForFile(test);
 *   test('...', async (t) => {
 *     const store = openStore({ endpoints: server().endpoint, prefix: uniquePrefix('x') });
 *     t.teardown(() => store.close());
 *   });
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { get as httpGet, type IncomingMessage } from 'node:http';
import { get as httpsGet } from 'node:https';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestFn } from 'ava';
import { Etcd3, type IOptions } from 'etcd3';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePorts } from './ports.js';
import { clientTls, makePki, type TestPki } from './tls.js';

/** A running (or stopped, restartable) etcd owned by one test file. */
export interface EtcdServer {
  /** Client URL, e.g. `http://127.0.0.1:40123` (https:// with TLS); the store's endpoint. */
  readonly endpoint: string;
  /** With TLS: the PKI whose CA signed etcd's certificate and the client certificate it wants. */
  readonly pki: TestPki | undefined;
  readonly clientPort: number;
  readonly peerPort: number;
  /** Temporary data dir (removed at stop); `etcd.log` inside it holds etcd's output. */
  readonly dataDir: string;
  /** The etcd process id, or undefined while it is not running. */
  readonly pid: number | undefined;
  /**
   * A shared etcd3 client for direct reads and writes in assertions, closed at stop. Its
   * calls carry a 5 s deadline and it does not retry, so a test sees what etcd really says.
   */
  client(): Etcd3;
  /** Stops etcd (SIGTERM, then SIGKILL after 10 s), closes the client, removes the data dir. */
  stop(): Promise<void>;
  /**
   * Sends `signal` (default SIGKILL) to etcd. For signals that end it, resolves once it has
   * exited; `SIGSTOP`/`SIGCONT` freeze and thaw it (a partition without a restart).
   */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /**
   * Stops etcd if it runs, then starts it again with the same data dir and ports, and waits
   * until it answers. Clients keep their address, so this forces their watches to reconnect.
   */
  restart(): Promise<void>;
}

/** The most of etcd's /metrics page read (it is about 100 KB). */
const METRICS_MAX_BYTES = 4 * 1024 * 1024;

/**
 * The value of one series on etcd's /metrics page (plain HTTP only), e.g.
 * `etcd_debugging_mvcc_watcher_total` or `grpc_server_started_total{grpc_method="LeaseKeepAlive"`
 * (a prefix of the line up to its value); rejects when the page has no such line.
 */
export function etcdMetric(etcd: EtcdServer, series: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpGet(`${etcd.endpoint}/metrics`, { timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
        if (body.length > METRICS_MAX_BYTES) req.destroy(new Error('etcd /metrics too large'));
      });
      res.on('end', () => {
        const line = body.split('\n').find((l) => l.startsWith(series));
        if (line === undefined) reject(new Error(`etcd /metrics has no ${series}`));
        else resolve(Number(line.slice(line.lastIndexOf(' ') + 1)));
      });
    });
    req.on('timeout', () => req.destroy(new Error('etcd /metrics did not answer in 5 s')));
    req.on('error', reject);
  });
}

const READY_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 10_000;

/** Options of {@link startEtcd}. */
export interface EtcdOptions {
  /**
   * Serve clients over TLS with this PKI's server certificate (https:// endpoint) and require
   * client certificates signed by its CA (etcd's --client-cert-auth). The caller owns the PKI.
   */
  readonly tls?: TestPki;
  /**
   * More etcd flags, after the ones this helper sets (benchmarks raise
   * `--quota-backend-bytes`, say). Default none.
   */
  readonly extraArgs?: readonly string[];
}

/** Starts etcd and resolves once it answers `/health`; on failure the error has the log tail. */
export async function startEtcd(opts: EtcdOptions = {}): Promise<EtcdServer> {
  const [clientPort, peerPort] = await freePorts(2);
  if (clientPort === undefined || peerPort === undefined) throw new Error('no free ports');
  const dataDir = await mkdtemp(join(tmpdir(), 'flotilla-etcd-'));
  const server = new LocalEtcd(clientPort, peerPort, dataDir, opts.tls, opts.extraArgs ?? []);
  try {
    await server.start();
  } catch (err) {
    await server.stop().catch(() => undefined);
    throw err;
  }
  return server;
}

/**
 * One etcd for the calling test file: started before its first test, stopped after its last
 * (also when tests fail). Returns the accessor the tests call; it throws when called before
 * the `before` hook has run, e.g. at module level. With `tls`, a PKI is made for it (and
 * removed after the last test): see {@link EtcdOptions.tls} and {@link EtcdServer.pki}.
 */
export function etcdForFile(test: TestFn, opts: { tls?: boolean } = {}): () => EtcdServer {
  let etcd: EtcdServer | undefined;
  let pki: TestPki | undefined;
  test.before(async () => {
    if (opts.tls === true) pki = await makePki('flotilla-etcd-test-ca');
    etcd = await startEtcd(pki === undefined ? {} : { tls: pki });
  });
  test.after.always(async () => {
    await etcd?.stop();
    await pki?.remove();
  });
  return () => {
    if (etcd === undefined) throw new Error('etcd not started');
    return etcd;
  };
}

type FaultPolicy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;

/** A pass-through fault policy: no retries, no circuit breaker (see store/client.ts). */
class PassThroughPolicy implements FaultPolicy {
  declare readonly _altReturn: never;
  readonly onSuccess: FaultPolicy['onSuccess'] = () => ({ dispose: () => undefined });
  readonly onFailure: FaultPolicy['onFailure'] = () => ({ dispose: () => undefined });
  async execute<T>(
    fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T,
    signal?: AbortSignal,
  ): Promise<T> {
    return fn({ signal: signal ?? new AbortController().signal });
  }
}
const passThrough = new PassThroughPolicy();

/** etcd3's form of the PKI's client certificate. */
function credentialsOf(pki: TestPki): NonNullable<IOptions['credentials']> {
  const tls = clientTls(pki);
  return { rootCertificate: tls.ca, certChain: tls.cert, privateKey: tls.key };
}

class LocalEtcd implements EtcdServer {
  readonly endpoint: string;
  private child: ChildProcess | undefined;
  private watchdog: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private etcdClient: Etcd3 | undefined;
  private readonly onExit = (): void => this.killNow();

  constructor(
    readonly clientPort: number,
    readonly peerPort: number,
    readonly dataDir: string,
    readonly pki: TestPki | undefined,
    private readonly extraArgs: readonly string[],
  ) {
    this.endpoint = `${pki === undefined ? 'http' : 'https'}://127.0.0.1:${clientPort}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  client(): Etcd3 {
    this.etcdClient ??= new Etcd3({
      hosts: this.endpoint,
      dialTimeout: 5_000,
      ...(this.pki === undefined ? {} : { credentials: credentialsOf(this.pki) }),
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 5_000 }),
      faultHandling: { host: () => passThrough, global: passThrough },
    });
    return this.etcdClient;
  }

  async start(): Promise<void> {
    const peer = `http://127.0.0.1:${this.peerPort}`;
    const logFd = openSync(this.logPath(), 'a');
    const child = spawn(
      'etcd',
      [
        '--name=flotilla-test',
        `--data-dir=${join(this.dataDir, 'data')}`,
        `--listen-client-urls=${this.endpoint}`,
        `--advertise-client-urls=${this.endpoint}`,
        `--listen-peer-urls=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
        `--initial-cluster=flotilla-test=${peer}`,
        '--initial-cluster-state=new',
        '--heartbeat-interval=50',
        '--election-timeout=500',
        '--logger=zap',
        ...this.tlsFlags(),
        ...this.extraArgs,
      ],
      { stdio: ['ignore', logFd, logFd] },
    );
    closeSync(logFd);
    child.unref();
    this.child = child;
    let exitCode: string | undefined;
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        exitCode = signal ?? String(code);
        if (this.child === child) this.child = undefined;
        resolve();
      });
      child.once('error', (err) => {
        exitCode = err.message;
        if (this.child === child) this.child = undefined;
        resolve();
      });
    });
    process.on('exit', this.onExit);
    this.startWatchdog(child);
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (!(await this.healthy())) {
      if (exitCode !== undefined || Date.now() > deadline) {
        const why = exitCode === undefined ? 'not healthy in time' : `exited (${exitCode})`;
        throw new Error(`etcd ${why} on ${this.endpoint}; log tail:\n${this.logTail()}`);
      }
      await sleep(50);
    }
  }

  async stop(): Promise<void> {
    this.etcdClient?.close();
    this.etcdClient = undefined;
    await this.terminate();
    process.off('exit', this.onExit);
    await rm(this.dataDir, { recursive: true, force: true });
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (child === undefined) return;
    child.kill(signal);
    if (signal === 'SIGSTOP' || signal === 'SIGCONT' || signal === 'SIGTSTP') return;
    child.ref(); // unref'd so a forgotten stop() never holds the test process open
    await this.exited;
    this.stopWatchdog();
  }

  async restart(): Promise<void> {
    await this.terminate();
    await this.start();
  }

  private async terminate(): Promise<void> {
    const child = this.child;
    if (child !== undefined) {
      child.ref();
      child.kill('SIGCONT');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
      await this.exited;
      clearTimeout(timer);
    }
    this.stopWatchdog();
  }

  /**
   * A shell that SIGKILLs etcd and removes its data dir when its stdin closes, i.e. when this
   * test process dies in any way, even by SIGKILL, where the 'exit' hook never runs.
   */
  private startWatchdog(child: ChildProcess): void {
    if (child.pid === undefined) return;
    const script = `read _ignored; kill -9 ${child.pid}; sleep 1; rm -rf '${this.dataDir}'`;
    const dog = spawn('sh', ['-c', script], { stdio: ['pipe', 'ignore', 'ignore'] });
    dog.unref();
    if (dog.stdin instanceof Socket) dog.stdin.unref();
    dog.on('error', () => undefined);
    this.watchdog = dog;
  }

  private stopWatchdog(): void {
    this.watchdog?.kill('SIGKILL');
    this.watchdog = undefined;
  }

  private killNow(): void {
    this.child?.kill('SIGKILL');
    this.watchdog?.kill('SIGKILL');
  }

  /** etcd's flags for TLS towards clients (peers stay plain: there is one member). */
  private tlsFlags(): string[] {
    const pki = this.pki;
    if (pki === undefined) return [];
    return [
      `--cert-file=${pki.server.certFile}`,
      `--key-file=${pki.server.keyFile}`,
      `--trusted-ca-file=${pki.caFile}`,
      '--client-cert-auth',
    ];
  }

  private healthy(): Promise<boolean> {
    return new Promise((resolve) => {
      const url = `${this.endpoint}/health`;
      const onResponse = (res: IncomingMessage): void => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve(res.statusCode === 200 && body.includes('"true"')));
        res.on('error', () => resolve(false));
      };
      const tls = this.pki === undefined ? undefined : clientTls(this.pki);
      const req =
        tls === undefined
          ? httpGet(url, { timeout: 1_000 }, onResponse)
          : httpsGet(url, { timeout: 1_000, ...tls }, onResponse);
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(false));
    });
  }

  private logPath(): string {
    return join(this.dataDir, 'etcd.log');
  }

  private logTail(): string {
    try {
      return readFileSync(this.logPath(), 'utf8').split('\n').slice(-30).join('\n');
    } catch {
      return '(no log)';
    }
  }
}
