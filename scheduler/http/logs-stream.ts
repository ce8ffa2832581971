/**
 * `GET /api/v1/units/{name}/logs`: the unit's last lines (`?lines=N`, default 10, at most
 * {@link MAX_LINES}) as JSON, `{"lines": [LogLine JSON...]}`; with `?follow=1`, those lines
 * and then every new one as Server-Sent Events (`line` messages), until the client leaves.
 * The same relay to the unit's agent as Logs.Tail (scheduler/api/logs.ts), behind the same
 * gate rule. Bounded: a plain answer holds at most {@link MAX_LINES} lines and
 * {@link MAX_ANSWER_BYTES}; a followed tail pauses the agent's stream while the client's
 * buffer is full, and is cut when it stays full.
 */
import { LogLine, TailRequest } from '../../proto/flotilla/v1/logs.js';
import { relayTail } from '../api/logs.js';
import { errorAnswer, sendError, statusAnswer } from './errors.js';
import { flagParam, intParam, param } from './query.js';
import type { HttpHandler } from './router.js';
import type { HttpDeps } from './deps.js';
import { openSse, type SseStream } from './sse.js';

/** The most lines one answer (or a follow's backlog) holds. */
export const MAX_LINES = 10_000;
/** The most bytes of lines a plain answer holds; it ends early, saying so, past it. */
export const MAX_ANSWER_BYTES = 4 * 1024 * 1024;
/** Bytes a followed tail lets wait before it pauses the agent's stream. */
const FOLLOW_HIGH_WATER = 256 * 1024;

/** The handler of the logs route. */
export function streamLogs(d: HttpDeps): HttpHandler {
  return async (call) => {
    const follow = flagParam(call.url, 'follow');
    const request = TailRequest.create({
      unit: call.params['name'] ?? '',
      lines: intParam(call.url, 'lines', 10, 0, MAX_LINES),
      follow,
      machine: param(call.url, 'machine') ?? '',
    });
    call.admit('Logs.Tail', request);
    const { core } = d;
    const ctx = { endpoints: core.cluster.store.options.endpoints };
    if (!follow) {
      const lines: unknown[] = [];
      let bytes = 0;
      let truncated = false;
      await new Promise<void>((resolve) => {
        const stop = relayTail(core.ctx, core.cluster, core.agents, request, {
          write: (line) => {
            bytes += line.text.length + 40;
            if (bytes > MAX_ANSWER_BYTES) {
              truncated = true;
              stop();
              return true;
            }
            lines.push(LogLine.toJSON(line));
            return true;
          },
          drained: (resume) => resume(),
          end: (failure) => {
            if (failure !== undefined) sendError(call.res, statusAnswer(failure));
            else call.send(200, { lines, ...(truncated ? { truncated: true } : {}) });
            resolve();
          },
          get gone() {
            return call.signal.aborted;
          },
        });
        call.signal.addEventListener('abort', stop);
      });
      return;
    }
    // The stream opens once the agent answers, so a unit that is unknown or placed nowhere
    // is a plain 404 (or 503), not an event on a stream that already said 200.
    let stream: SseStream | undefined;
    const stop = relayTail(core.ctx, core.cluster, core.agents, request, {
      opened: () => {
        try {
          stream = openSse(d, call.res, () => stop());
        } catch (err) {
          sendError(call.res, errorAnswer(err, ctx));
          stop();
        }
      },
      write: (line) => {
        if (stream === undefined) return true;
        stream.send('line', JSON.stringify(LogLine.toJSON(line)));
        return stream.buffered < FOLLOW_HIGH_WATER;
      },
      drained: (resume) => call.res.once('drain', resume),
      end: (failure) => {
        if (stream === undefined) {
          if (failure !== undefined) sendError(call.res, statusAnswer(failure));
          else call.res.end();
          return;
        }
        if (failure !== undefined) {
          stream.send('error', JSON.stringify(statusAnswer(failure).body.error));
        }
        stream.end();
      },
      get gone() {
        return stream?.closed ?? call.signal.aborted;
      },
    });
    call.signal.addEventListener('abort', stop);
  };
}
