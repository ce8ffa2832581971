/**
 * `GET /api/v1/events`: the cluster's changes as Server-Sent Events, from the same feed as
 * the gRPC Events watch (scheduler/api/events.ts's followMirror), narrowed by the caller's
 * rights as Events.WatchBatches is.
 *
 * - Batched: the changes of up to {@link BATCH_MS} go out as one `batch` message (at most
 *   {@link BATCH_EVENTS} events), `data` `{"revision", "events": [Event JSON...]}`.
 * - Resumable: each message's `id` is the last revision it carries in full; a client resumes
 *   with `Last-Event-ID` (EventSource does so by itself) or `?since=REV` and gets every change
 *   after it. A `ready` message first tells the revision the stream starts after.
 * - Too old: when the replica no longer holds the changes after the asked revision (it keeps
 *   the last 300,000), the stream sends one `reset` message, `{"code": "OUT_OF_RANGE",
 *   "revision", "message"}`, and ends: the client re-lists and resumes from the revision of
 *   its new listing.
 * - Bounded: a client that lets more than SSE_MAX_BUFFERED_BYTES wait, or
 *   {@link MAX_PENDING_EVENTS} events, is cut and resumes; heartbeats every 15 s.
 */
import { Event, WatchRequest } from '../../proto/flotilla/v1/events.js';
import { followMirror, type MirrorFeed } from '../api/events.js';
import { fresh } from '../api/reads.js';
import { HttpError } from './errors.js';
import { flagParam, param } from './query.js';
import type { HttpHandler } from './router.js';
import type { HttpDeps } from './deps.js';
import { openSse } from './sse.js';

/** How long changes gather before they go out as one message. */
export const BATCH_MS = 100;
/** Events one message carries at most. */
export const BATCH_EVENTS = 1_000;
/** Events that may wait for a slow client before it is cut. */
export const MAX_PENDING_EVENTS = 100_000;

/** The handler of `GET /api/v1/events`. */
export function streamEvents(d: HttpDeps): HttpHandler {
  return async (call) => {
    const after = resumeAfter(call.req.headers['last-event-id'], param(call.url, 'since'));
    const request = WatchRequest.create({
      fromRevision: after === undefined ? 0n : after + 1n,
      unitGlob: param(call.url, 'glob') ?? '',
      machine: param(call.url, 'machine') ?? '',
      withFiles: flagParam(call.url, 'files'),
    });
    const visible = call.admit('Events.WatchBatches', request);
    const { mirror } = d.core.cluster;
    await fresh(d.core.cluster); // a client that just wrote sees its write's events follow
    let pending: Event[] = [];
    let feed: MirrorFeed | undefined;
    let timer: NodeJS.Timeout | undefined;
    const stream = openSse(d, call.res, () => {
      feed?.close();
      clearTimeout(timer);
      pending = [];
    });
    const flush = (): void => {
      timer = undefined;
      while (pending.length > 0 && !stream.closed) {
        const n = Math.min(pending.length, BATCH_EVENTS);
        const batch = pending.slice(0, n);
        const last = (batch[n - 1] as Event).revision;
        // A revision split across messages is resumed from its start (seen in full: last - 1).
        const next = pending[n];
        const id = next !== undefined && next.revision === last ? last - 1n : last;
        pending = pending.slice(n);
        const data = JSON.stringify({
          revision: String(id),
          events: batch.map((e) => Event.toJSON(e)),
        });
        stream.send('batch', data, String(id));
      }
    };
    const start = mirror.revision;
    try {
      feed = followMirror(d.core.ctx, mirror, request, visible, {
        events: (events) => {
          for (const e of events) pending.push(e);
          if (pending.length > MAX_PENDING_EVENTS) return stream.end();
          timer ??= setTimeout(flush, BATCH_MS);
        },
        lost: () => stream.end(),
      });
    } catch (err) {
      stream.end();
      throw err;
    }
    if (feed === undefined) {
      stream.send(
        'reset',
        JSON.stringify({
          code: 'OUT_OF_RANGE',
          revision: String(mirror.revision),
          message: `the changes after revision ${String(after)} are no longer kept: list again (GET /api/v1/units, /api/v1/machines) and resume from the listing's revision`,
        }),
      );
      stream.end();
      return;
    }
    stream.send(
      'ready',
      JSON.stringify({ revision: String(after ?? start) }),
      String(after ?? start),
    );
  };
}

/** The revision a client has seen in full: `Last-Event-ID` wins over `?since=`. */
function resumeAfter(
  header: string | string[] | undefined,
  since: string | undefined,
): bigint | undefined {
  const raw = (Array.isArray(header) ? header[0] : header) ?? since;
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d{1,19}$/.test(raw)) {
    throw new HttpError(
      400,
      'INVALID_ARGUMENT',
      `resume from a revision, a whole number, not ${raw.slice(0, 50)}`,
    );
  }
  return BigInt(raw);
}
