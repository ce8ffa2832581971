/**
 * One lease renewal that does not depend on which etcd member the client happens to pick.
 *
 * A keepalive round trip goes to ONE endpoint, chosen at random by the etcd client, and a
 * failure there is not retried on another one (the client fails over unary calls only). With
 * one member of three down, an agent that slept a full retry pause after every refused
 * attempt lost its lease whenever the random pick fell on the dead member three times in a
 * row: at a 4 s TTL, 1.3 s of renewal interval plus 3 x 1 s of pauses (issue 28: a unit moved
 * in about one run in seven, and in most runs with every daemon at half a core).
 *
 * So a renewal is a small race: an attempt that fails at once (a refused connection) is
 * followed by another right away, one that has not answered after `hedgeAfterMs` gets a
 * companion, so a member that holds renewals (no quorum yet, or just slow) does not hold
 * the lease; the first answer wins. Everything is bounded: at most `parallel` attempts in
 * flight, `maxAttempts` per renewal, none past `deadlineMs`.
 */
import { StoreError, toStoreError } from './errors.js';

/** Options of {@link raceRenewal}. */
export interface RenewalRaceOptions {
  /** The whole renewal's deadline, ms: no attempt outlives it. */
  readonly deadlineMs: number;
  /** A slow attempt gets a companion after this long, ms. */
  readonly hedgeAfterMs: number;
  /** Attempts in flight at once: the number of endpoints. */
  readonly parallel: number;
  /** Attempts in all. */
  readonly maxAttempts: number;
  /** Pause after a failed attempt before the next, ms (a refused connection fails in ~1 ms). Default 20. */
  readonly pauseMs?: number;
}

/** The winning attempt: when it was sent (Unix ms) and what it resolved to. */
export interface RenewalWin<T> {
  readonly sentAt: number;
  readonly value: T;
  /** Attempts that failed before it (in this renewal). */
  readonly failed: number;
}

/**
 * Runs `attempt(deadlineMs)` as described above; resolves with the first success, rejects
 * with the last failure (a StoreError) once every attempt has failed or the deadline passed.
 */
export function raceRenewal<T>(
  attempt: (deadlineMs: number) => Promise<T>,
  opts: RenewalRaceOptions,
): Promise<RenewalWin<T>> {
  const endsAt = Date.now() + opts.deadlineMs;
  const pauseMs = opts.pauseMs ?? 20;
  return new Promise((resolve, reject) => {
    let inFlight = 0;
    let started = 0;
    let failed = 0;
    let settled = false;
    let lastError: StoreError = new StoreError('deadline', 'lease renewal: no attempt answered');
    let timer: NodeJS.Timeout | undefined;

    const finish = (): void => {
      settled = true;
      clearTimeout(timer);
    };
    const failIfDone = (): void => {
      if (settled || inFlight > 0) return;
      if (started >= opts.maxAttempts || Date.now() >= endsAt) {
        finish();
        reject(lastError);
      }
    };
    /** Starts the next attempt now, if allowed, and plans its companion. */
    const launch = (): void => {
      clearTimeout(timer);
      timer = undefined;
      if (settled) return;
      const left = endsAt - Date.now();
      if (started >= opts.maxAttempts || left <= 0) return failIfDone();
      if (inFlight >= opts.parallel) {
        timer = setTimeout(launch, opts.hedgeAfterMs);
        return;
      }
      started += 1;
      inFlight += 1;
      const sentAt = Date.now();
      attempt(left).then(
        (value) => {
          inFlight -= 1;
          if (settled) return;
          finish();
          resolve({ sentAt, value, failed });
        },
        (err: unknown) => {
          inFlight -= 1;
          failed += 1;
          lastError = toStoreError(err);
          if (settled) return;
          // Another endpoint, most likely: the client picks one at random per attempt.
          clearTimeout(timer);
          timer = setTimeout(launch, Math.min(pauseMs, Math.max(0, endsAt - Date.now())));
          failIfDone();
        },
      );
      timer = setTimeout(launch, Math.min(opts.hedgeAfterMs, left));
    };
    launch();
  });
}
