/**
 * How the etcd client moves between endpoints: no retries, no circuit breaker, and an
 * endpoint whose connection just failed is passed over while another one has not.
 *
 * Why the last: the etcd3 client sends each call, and opens each stream, on an endpoint it
 * picks at random. When a member dies, a watch on it breaks, and the watch opened again in its
 * place lands on the same dead member one time in three (with 3 members), fails at once, and
 * waits out its backoff before the next pick. Seen in the chaos suite: a scheduler's cluster
 * mirror picked the dead member five times in a row and followed etcd again 5.1 s after the
 * kill, and the submit that waited to read its own write took 5.3 s. A member whose connection
 * failed in the last {@link SKIP_FAILED_MS} is now skipped, for calls and streams alike, as
 * long as some other endpoint has not failed in that time; with every endpoint failing, calls
 * go through as before and say why they failed.
 */
import type { IOptions } from 'etcd3';
import { toStoreError } from './errors.js';

type FaultPolicy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;
type PolicyContext = Parameters<Parameters<FaultPolicy['execute']>[0]>[0];

/** How long an endpoint whose connection failed is passed over. */
export const SKIP_FAILED_MS = 2_000;

/**
 * Tries a call once per endpoint at most, moving on only for connection-level failures. No
 * backoff and no circuit breaker: a down etcd is reported within the call deadline instead of
 * being hidden behind retries (the callers' loops decide when to try again).
 */
export class EndpointFailoverPolicy implements FaultPolicy {
  declare readonly _altReturn: never;
  readonly onSuccess: FaultPolicy['onSuccess'] = () => ({ dispose: () => undefined });
  readonly onFailure: FaultPolicy['onFailure'] = () => ({ dispose: () => undefined });

  constructor(private readonly attempts: number) {}

  async execute<T>(fn: (context: PolicyContext) => PromiseLike<T> | T, signal?: AbortSignal) {
    const context = { signal: signal ?? new AbortController().signal };
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn(context);
      } catch (err) {
        const code = toStoreError(err).code;
        if (attempt >= this.attempts || code !== 'unavailable') throw err;
      }
    }
  }
}

/**
 * What the etcd client is told of an endpoint it passes over: it then tries the next one.
 * It reaches a caller only if every endpoint is passed over, which {@link EndpointHealth}
 * never does; then it reads as UNAVAILABLE (gRPC's code 14). Not one of etcd3's recoverable
 * errors, so the endpoint's channels are left as they are.
 */
class SkippedEndpoint extends Error {
  readonly code = 14;

  constructor(host: string) {
    super(`etcd endpoint ${host} failed in the last ${SKIP_FAILED_MS} ms`);
  }
}

/**
 * A failure of the connection to an endpoint (refused, dropped, never established), as
 * opposed to etcd answering with an error of its own ("etcdserver: ..."), which says the
 * member is there.
 */
function isConnectionFailure(err: unknown): boolean {
  const message = err instanceof Error ? err.message : String(err);
  return (
    toStoreError(err).code === 'unavailable' &&
    message.includes('UNAVAILABLE') &&
    !message.includes('etcdserver:')
  );
}

/** When each endpoint's connection last failed, shared by the policies of one client. */
export class EndpointHealth {
  private readonly failedAt = new Map<string, number>();

  constructor(
    private readonly hosts: readonly string[],
    private readonly now: () => number = Date.now,
  ) {}

  /** The policy of one endpoint: passes it over while it is {@link isSkipped}. */
  policy(host: string): FaultPolicy {
    return new SkipFailedPolicy(this, host);
  }

  /** Whether calls pass `host` over now: it failed lately and some other endpoint did not. */
  isSkipped(host: string): boolean {
    const now = this.now();
    return this.failedLately(host, now) && this.hosts.some((h) => !this.failedLately(h, now));
  }

  /** Notes a failure of `host`'s connection. */
  failed(host: string): void {
    this.failedAt.set(host, this.now());
  }

  private failedLately(host: string, now: number): boolean {
    const at = this.failedAt.get(host);
    return at !== undefined && now - at < SKIP_FAILED_MS;
  }
}

/** One endpoint's policy: skip it while its health says so, note its connection failures. */
class SkipFailedPolicy implements FaultPolicy {
  declare readonly _altReturn: never;
  readonly onSuccess: FaultPolicy['onSuccess'] = () => ({ dispose: () => undefined });
  readonly onFailure: FaultPolicy['onFailure'] = () => ({ dispose: () => undefined });

  constructor(
    private readonly health: EndpointHealth,
    private readonly host: string,
  ) {}

  async execute<T>(fn: (context: PolicyContext) => PromiseLike<T> | T, signal?: AbortSignal) {
    // Thrown before `fn` runs, the etcd3 client takes it as "this endpoint is not available"
    // and tries the next one. (A stream that broke comes back here too: etcd3 reports it by
    // running a throwing `fn` through this policy.)
    if (this.health.isSkipped(this.host)) throw new SkippedEndpoint(this.host);
    try {
      return await fn({ signal: signal ?? new AbortController().signal });
    } catch (err) {
      if (isConnectionFailure(err)) this.health.failed(this.host);
      throw err;
    }
  }
}

/** The etcd3 fault handling of a client of `hosts`: see this file's comment. */
export function faultHandling(hosts: readonly string[]): NonNullable<IOptions['faultHandling']> {
  const health = new EndpointHealth(hosts);
  return {
    host: (host) => health.policy(host),
    global: new EndpointFailoverPolicy(hosts.length),
  };
}
