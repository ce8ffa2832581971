/**
 * Whether etcd answers, for a daemon's readiness: judged from the daemon's own requests
 * (`store.onRequest`), and, when it has made none for a while, from a probe of its own, so
 * an idle daemon still knows. Cheap: at most one probe per interval, none while busy.
 *
 * @example
 *   const etcd = new EtcdHealth(() => store.revision());
 *   store.onRequest((r) => etcd.observe(r));
 *   etcd.start();
 *   etcd.reachable(); // false until a request succeeded, and after one failed
 */

/** Options of {@link EtcdHealth}. */
export interface EtcdHealthOptions {
  /** Probe when no request succeeded for this long; also how stale a success may be. Default 5 s. */
  readonly intervalMs?: number;
}

export class EtcdHealth {
  private lastOk = -Infinity;
  private lastFail = -Infinity;
  private lastError = '';
  private timer: NodeJS.Timeout | undefined;
  private probing = false;
  private readonly intervalMs: number;

  constructor(
    private readonly probe: () => Promise<unknown>,
    opts: EtcdHealthOptions = {},
  ) {
    this.intervalMs = opts.intervalMs ?? 5_000;
  }

  /** Hears one finished request (`error` set when it failed). */
  observe(r: { readonly error?: string }): void {
    if (r.error === undefined) this.lastOk = performance.now();
    else if (r.error !== 'closed') {
      this.lastFail = performance.now();
      this.lastError = r.error;
    }
  }

  /** Probes now, then whenever requests fall quiet. */
  start(): void {
    this.tick();
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
  }

  /** The last request succeeded, recently enough. */
  reachable(): boolean {
    return this.lastOk > this.lastFail && performance.now() - this.lastOk < 3 * this.intervalMs;
  }

  /** Why it is not reachable, in words. */
  why(): string {
    if (this.lastOk === -Infinity && this.lastFail === -Infinity) return 'etcd not reached yet';
    return this.lastFail > this.lastOk
      ? `etcd unreachable (last request: ${this.lastError})`
      : 'etcd has not answered lately';
  }

  private tick(): void {
    if (this.probing || performance.now() - this.lastOk < this.intervalMs) return;
    this.probing = true;
    this.probe()
      .catch(() => undefined) // observed through onRequest
      .finally(() => {
        this.probing = false;
      });
  }
}
