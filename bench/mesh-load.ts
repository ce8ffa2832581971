/**
 * The load side of `bench/mesh.ts`: the C backend (bench/mesh-backend.c, built with gcc),
 * HAProxy configured by hand or through its runtime API, and wrk runs parsed into figures.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { access, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const BACKEND_SOURCE = fileURLToPath(new URL('../../bench/mesh-backend.c', import.meta.url));

/** One wrk run's figures. */
export interface WrkResult {
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Socket errors and non-2xx answers. */
  readonly errors: number;
}

/** Processes to stop at the end, whatever happens. */
export const children: ChildProcess[] = [];

/** Builds the backend into `dir`; its path. */
export async function buildBackend(dir: string): Promise<string> {
  const bin = join(dir, 'mesh-backend');
  await run('gcc', ['-O2', '-o', bin, BACKEND_SOURCE]);
  return bin;
}

/** Starts the backend on 127.0.0.1:`port`; resolves once it listens. */
export function startBackend(bin: string, port: number, name: string): Promise<void> {
  const child = spawn(bin, [String(port), name], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.stdout.once('data', () => resolve());
  });
}

/**
 * HAProxy in TCP mode, round robin, on 127.0.0.1:`port`: with `servers` written in the file
 * (configured by hand), or with empty server-template slots that `runtimeApi` fills.
 */
export async function startHaproxy(
  dir: string,
  name: string,
  port: number,
  servers: readonly number[] | { slots: number },
  threads?: number,
): Promise<{ socket: string }> {
  const socket = join(dir, `${name}.sock`);
  const lines = Array.isArray(servers)
    ? servers.map((p, i) => `  server s${i + 1} 127.0.0.1:${p}`)
    : [`  server-template s 1-${(servers as { slots: number }).slots} 127.0.0.1:1 disabled`];
  const config = [
    'global',
    '  maxconn 4000',
    ...(threads === undefined ? [] : [`  nbthread ${threads}`]),
    `  stats socket ${socket} mode 600 level admin`,
    'defaults',
    '  mode tcp',
    '  timeout connect 300ms',
    '  timeout client 30s',
    '  timeout server 30s',
    'frontend f',
    `  bind 127.0.0.1:${port}`,
    '  default_backend b',
    'backend b',
    '  balance roundrobin',
    ...lines,
    '',
  ].join('\n');
  const file = join(dir, `${name}.cfg`);
  await writeFile(file, config);
  const child = spawn('haproxy', ['-db', '-f', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  child.stderr.resume();
  await waitListening(port);
  for (let i = 0; i < 100; i++) {
    if (
      await access(socket).then(
        () => true,
        () => false,
      )
    )
      break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return { socket };
}

/** Sends commands to HAProxy's runtime API, one connection each; their answers. */
export async function runtimeApi(socket: string, commands: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const command of commands) {
    out.push(
      await new Promise<string>((resolve, reject) => {
        const conn = connect(socket);
        let text = '';
        conn.setEncoding('utf8');
        conn.on('data', (d: string) => (text += d));
        conn.on('end', () => resolve(text.trim()));
        conn.on('error', reject);
        conn.end(`${command}\n`);
      }),
    );
  }
  return out;
}

/** Resolves once 127.0.0.1:`port` accepts a connection (at most 10 s). */
export async function waitListening(port: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = connect({ host: '127.0.0.1', port });
      c.once('connect', () => (c.destroy(), resolve(true)));
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port} after 10 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * wrk against `http://127.0.0.1:port/`: as fast as it goes, or paced by a Lua `delay()` of
 * `delayMs` per request per connection (wrk has no rate flag).
 */
export async function wrk(
  dir: string,
  port: number,
  opts: { connections: number; seconds: number; delayMs?: number },
): Promise<WrkResult> {
  const args = ['-t1', `-c${opts.connections}`, `-d${opts.seconds}s`, '--latency'];
  if (opts.delayMs !== undefined) {
    const script = join(dir, `delay-${opts.delayMs}.lua`);
    await writeFile(script, `function delay()\n  return ${opts.delayMs}\nend\n`);
    args.push('-s', script);
  }
  const { stdout } = await run('wrk', [...args, `http://127.0.0.1:${port}/`], {
    maxBuffer: 1 << 20,
  });
  return parseWrk(stdout);
}

/** Reads wrk's --latency report. */
export function parseWrk(text: string): WrkResult {
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1] ?? NaN);
  const pct = (p: string): number => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s)\\s*$`, 'm').exec(text);
    if (m === null) return NaN;
    const scale = m[2] === 'us' ? 0.001 : m[2] === 's' ? 1000 : 1;
    return Number(m[1]) * scale;
  };
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0);
  const socketErrors = socket === null ? 0 : socket.slice(1).reduce((a, b) => a + Number(b), 0);
  return { rps, p50Ms: pct('50'), p99Ms: pct('99'), errors: socketErrors + non2xx };
}
