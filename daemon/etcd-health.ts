/**
 * Whether etcd answers, for a daemon's readiness: judged from the daemon's own requests
 * (`store.onRequest`), and, when none succeeded lately, from a probe of its own, so an idle
 * daemon still knows. Cheap: at most one probe in flight, none while requests succeed.
 *
 * Only an answer from etcd counts as a success. Opening a stream (a watch, a lease keepalive)
 * is no answer: gRPC opens one without hearing from the server, so a frozen etcd would look
 * alive each time a stream is reopened. A probe that has not answered within its own timeout
 * counts as a failure at once, without waiting for the call's deadline, and the daemon stays
 * not ready until etcd really answers again.
 *
 * @example
 *   const etcd = new EtcdHealth(() => store.revision());
 *   store.onRequest((r) => etcd.observe(r));
 *   etcd.start();
 *   etcd.reachable(); // false until a request succeeded, and after one failed
 */

/** Options of {@link EtcdHealth}. */
export interface EtcdHealthOptions {
  /** Probe when no request succeeded for this long. Default 1 s. */
  readonly intervalMs?: number;
  /** A probe unanswered this long is a failure (etcd hangs). Default 1.5 s. */
  readonly probeTimeoutMs?: number;
}

/** The kinds of request whose success only means a stream was opened, not that etcd answered. */
const STREAM_OPENS: ReadonlySet<string> = new Set(['watch', 'lease-keepalive']);

export class EtcdHealth {
  private lastOk = -Infinity;
  private lastFail = -Infinity;
  private lastError = '';
  private timer: NodeJS.Timeout | undefined;
  /** When the probe in flight started, or undefined. */
  private probeStarted: number | undefined;
  private readonly intervalMs: number;
  private readonly probeTimeoutMs: number;

  constructor(
    private readonly probe: () => Promise<unknown>,
    opts: EtcdHealthOptions = {},
  ) {
    this.intervalMs = opts.intervalMs ?? 1_000;
    this.probeTimeoutMs = opts.probeTimeoutMs ?? 1_500;
  }

  /** Hears one finished request (`error` set when it failed). */
  observe(r: { readonly op?: string; readonly error?: string }): void {
    if (r.error === undefined) {
      if (r.op === undefined || !STREAM_OPENS.has(r.op)) this.lastOk = performance.now();
    } else if (r.error !== 'closed') {
      this.fail(r.error);
    }
  }

  /** Probes now, then whenever requests fall quiet; checks a hung probe four times a probe interval. */
  start(): void {
    this.tick();
    this.timer = setInterval(() => this.tick(), Math.max(50, this.intervalMs / 4));
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
  }

  /** The last answer came after the last failure, and recently enough. */
  reachable(): boolean {
    return (
      this.lastOk > this.lastFail &&
      performance.now() - this.lastOk < this.intervalMs + this.probeTimeoutMs
    );
  }

  /** Why it is not reachable, in words. */
  why(): string {
    if (this.lastOk === -Infinity && this.lastFail === -Infinity) return 'etcd not reached yet';
    return this.lastFail > this.lastOk
      ? `etcd unreachable (last request: ${this.lastError})`
      : 'etcd has not answered lately';
  }

  private fail(error: string): void {
    this.lastFail = performance.now();
    this.lastError = error;
  }

  private tick(): void {
    const now = performance.now();
    if (this.probeStarted !== undefined) {
      // A hung etcd holds the probe until the call's deadline: it is a failure long before.
      if (now - this.probeStarted > this.probeTimeoutMs && this.lastFail < this.probeStarted) {
        this.fail(`no answer within ${this.probeTimeoutMs / 1000} s`);
      }
      return;
    }
    if (now - this.lastOk < this.intervalMs) return;
    const started = now;
    this.probeStarted = started;
    this.probe()
      .catch(() => undefined) // observed through onRequest
      .finally(() => {
        if (this.probeStarted === started) this.probeStarted = undefined;
      });
  }
}
