/**
 * `assertEventually`: the one way tests wait for asynchronous outcomes. Polls instead of
 * sleeping a fixed time, so tests are fast when the system is fast and do not flake when the
 * machine is loaded.
 */

/** Options for {@link assertEventually}. */
export interface EventuallyOptions {
  /** Give up after this long. Default 20 000 ms: generous, so a loaded 2-core box never flakes. */
  timeoutMs?: number;
  /** Pause between attempts. Default 50 ms. */
  intervalMs?: number;
  /** Prefixed to the timeout error, to say what was being waited for. */
  message?: string;
}

/** Thrown by {@link assertEventually} when time runs out; `cause` holds the last failure. */
export class EventuallyTimeoutError extends Error {
  readonly code = 'eventually-timeout';
  constructor(message: string, cause: unknown) {
    super(message, { cause });
    this.name = 'EventuallyTimeoutError';
  }
}

/**
 * Calls `fn` until it returns without throwing (and, when it returns a boolean, returns
 * `true`), then resolves with its value. So `() => lookup() ?? false` waits for a value and
 * returns it, typed without `false`. On timeout rejects with the last error, so the test
 * output shows why the condition never held.
 *
 * @example
 *   await assertEventually(async () => (await client.get(key).string()) === null, {
 *     message: 'presence key expires',
 *   });
 */
export async function assertEventually<T>(
  fn: () => Promise<T> | T,
  opts: EventuallyOptions = {},
): Promise<Exclude<T, false>> {
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const intervalMs = opts.intervalMs ?? 50;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown = new Error('condition was never evaluated');
  let attempts = 0;
  for (;;) {
    attempts += 1;
    try {
      const value = await fn();
      if (value !== false) return value as Exclude<T, false>;
      lastError = new Error('condition returned false');
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) break;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  const what = opts.message ?? 'condition';
  const why = lastError instanceof Error ? lastError.message : String(lastError);
  throw new EventuallyTimeoutError(
    `${what}: not met within ${timeoutMs} ms after ${attempts} attempts; last: ${why}`,
    lastError,
  );
}
