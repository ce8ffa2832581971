/**
 * A Server-Sent Events response with bounds: heartbeats (a comment line) so idle proxies and
 * dead clients are noticed, a cap on what may wait in the socket's buffer (a client that
 * reads too slowly is cut: it resumes from its Last-Event-ID rather than make the scheduler
 * buffer for it without end), and a registry entry so the listener's close ends it.
 */
import type { ServerResponse } from 'node:http';
import { HttpError } from './errors.js';
import type { HttpDeps } from './deps.js';

/** Bytes that may wait in a stream's socket buffer before the client is cut. */
export const SSE_MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

/** An open event stream. */
export interface SseStream {
  /** Sends one message; false when the stream is over (ended, or cut for being slow). */
  send(event: string, data: string, id?: string): boolean;
  /** Ends the stream (cleanly). */
  end(): void;
  readonly closed: boolean;
  /** Bytes waiting in the socket's buffer. */
  readonly buffered: number;
}

/**
 * Opens the stream on `res` (200, text/event-stream); `onClose` runs once when it ends,
 * whoever ends it. 429 when the listener already has its most streams open.
 */
export function openSse(d: HttpDeps, res: ServerResponse, onClose: () => void): SseStream {
  const maxBuffered = d.streamBufferBytes;
  if (d.streams.size >= d.maxStreams) {
    throw new HttpError(
      429,
      'RESOURCE_EXHAUSTED',
      `this scheduler serves at most ${d.maxStreams} streams at once; try again later, or another replica`,
      { 'retry-after': '5' },
    );
  }
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    'x-accel-buffering': 'no',
  });
  res.write('retry: 2000\n\n');
  let closed = false;
  const heartbeat = setInterval(() => {
    if (!closed) write(': heartbeat\n\n');
  }, d.heartbeatMs);
  const close = (): void => {
    if (closed) return;
    closed = true;
    clearInterval(heartbeat);
    d.streams.delete(end);
    onClose();
  };
  const end = (): void => {
    if (!closed) res.end();
    close();
  };
  const write = (text: string): boolean => {
    if (closed) return false;
    if (res.writableLength > maxBuffered) {
      // Cut: the client resumes from its last id, served from the mirror's history.
      d.logger.info({ buffered: res.writableLength }, 'event stream client too slow; cut');
      res.destroy();
      close();
      return false;
    }
    res.write(text);
    return true;
  };
  d.streams.add(end);
  res.on('close', close);
  return {
    send: (event, data, id) =>
      write(`${id === undefined ? '' : `id: ${id}\n`}event: ${event}\ndata: ${data}\n\n`),
    end,
    get closed() {
      return closed;
    },
    get buffered() {
      return res.writableLength;
    },
  };
}
