/**
 * The HAProxy configuration of one machine's routing mesh, rendered from what it serves: one
 * frontend per published port (`bind ADDR:PORT`, TCP mode) and its backend of `slots` servers,
 * the filled ones written with their endpoint so that a reload starts serving at once, the
 * empty ones `disabled` for the runtime API (`set server`) to fill. Every name is derived from
 * the port (`p8080`), never from a record's text, so nothing a user writes reaches the file.
 */
import { isIP } from 'node:net';
import type { Backend } from './tcp-proxy.js';

/** One published port as HAProxy serves it. */
export interface HaproxyPort {
  readonly port: number;
  /** Server slots, index 0 is `s1`; undefined: empty (disabled). */
  readonly servers: readonly (Backend | undefined)[];
}

/** Everything the file says. */
export interface HaproxyModel {
  readonly listenAddress: string;
  /** The worker's stats socket (runtime API, admin level). */
  readonly statsSocket: string;
  readonly connectTimeoutMs: number;
  readonly ports: readonly HaproxyPort[];
}

/** The proxy names of a published port (frontend and backend share it). */
export function proxyName(port: number): string {
  return `p${port}`;
}

/** The name of slot `index` (0-based) of a backend. */
export function slotName(index: number): string {
  return `s${index + 1}`;
}

/** `addr:port` as HAProxy's address syntax wants it (IPv6 in brackets). */
export function hostPort(address: string, port: number): string {
  return isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}

/** HAProxy's `timeout connect`, unless the agent sets another (see renderConfig). */
export const HAPROXY_CONNECT_TIMEOUT_MS = 1_500;

/**
 * The timeouts and limits, explained:
 * - no `maxconn`: HAProxy sizes it from the file descriptors it may open (half of them), so
 *   it never asks for more than the machine's limit allows;
 * - `retries 2` with `option redispatch 1`: a connect that fails is tried again on another
 *   server, at once when the server refused it (a stopped instance);
 * - `timeout connect` 1.5 s ({@link HAPROXY_CONNECT_TIMEOUT_MS}): long enough for one
 *   retransmitted SYN (Linux resends after 1 s). An instance that is alive but whose accept
 *   queue is full drops the SYN; with 300 ms every such connect failed on all three tries,
 *   and a rolling update under 200 requests/s on a 2-core host failed 385-9,658 of them
 *   (busybox httpd queues 9), where a client connecting directly waits 1 s and gets through.
 *   A server that does not answer at all (its host gone) costs 1.5 s per try until its
 *   endpoint goes with its agent's lease;
 * - `timeout client/server 1h`: idle TCP connections are closed after an hour (the built-in
 *   proxy never closed them; an unbounded idle connection pins memory forever);
 * - `*-fin 10s`: a side that closed its half waits at most 10 s for the other;
 * - `hard-stop-after 10m`: after a reload the old worker finishes its connections, 10 min at
 *   most, so reloads cannot pile up old processes.
 */
export function renderConfig(model: HaproxyModel): string {
  const lines = [
    '# Written by the Flotilla agent (routing mesh); rewritten at every reload.',
    'global',
    `  stats socket ${model.statsSocket} mode 600 level admin`,
    '  stats timeout 10s',
    '  hard-stop-after 10m',
    'defaults',
    '  mode tcp',
    `  timeout connect ${Math.max(1, Math.round(model.connectTimeoutMs))}ms`,
    '  timeout client 1h',
    '  timeout server 1h',
    '  timeout client-fin 10s',
    '  timeout server-fin 10s',
    '  retries 2',
    '  option redispatch 1',
    '  balance roundrobin',
    // A backend with no frontend keeps the file valid (and HAProxy up) with nothing published.
    'backend idle',
    '  server s1 127.0.0.1:1 disabled',
  ];
  for (const p of [...model.ports].sort((a, b) => a.port - b.port)) {
    const name = proxyName(p.port);
    lines.push(
      `frontend ${name}`,
      `  bind ${hostPort(model.listenAddress, p.port)}`,
      `  default_backend ${name}`,
      `backend ${name}`,
    );
    p.servers.forEach((s, i) => {
      lines.push(
        s === undefined
          ? `  server ${slotName(i)} 127.0.0.1:1 disabled`
          : `  server ${slotName(i)} ${hostPort(s.address, s.port)}`,
      );
    });
  }
  return `${lines.join('\n')}\n`;
}
