/**
 * One exchange with an HAProxy CLI socket (the master's or a worker's stats socket): connect,
 * send the commands (`;`-separated, HAProxy runs them in order), read the answer until HAProxy
 * closes. Bounded: a deadline for the whole exchange and a cap on the answer's size, so a
 * wedged HAProxy costs the agent one failed call, never a hung one.
 */
import { connect } from 'node:net';

/** Options of {@link haproxyCommand}. */
export interface HaproxyCommandOptions {
  /** Deadline of the whole exchange. Default 2 s. */
  readonly timeoutMs?: number;
  /** Answers longer than this are cut here. Default 256 KiB. */
  readonly maxBytes?: number;
}

/** A command line must stay short and on one line (the CLI reads lines). */
const MAX_COMMAND = 64 * 1024;

/** Sends `commands` in one connection; resolves with the answer text (trimmed). */
export function haproxyCommand(
  socketPath: string,
  commands: readonly string[],
  opts: HaproxyCommandOptions = {},
): Promise<string> {
  const timeoutMs = opts.timeoutMs ?? 2_000;
  const maxBytes = opts.maxBytes ?? 256 * 1024;
  const line = commands.join(';');
  if (line.length > MAX_COMMAND || /[\n\r]/.test(line)) {
    return Promise.reject(new Error('haproxy command too long or multi-line: send fewer at once'));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const conn = connect(socketPath);
    const done = (err: Error | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      conn.destroy();
      if (err !== undefined) reject(err);
      else resolve(Buffer.concat(chunks).toString('utf8').trim());
    };
    const timer = setTimeout(
      () => done(new Error(`haproxy at ${socketPath} did not answer in ${timeoutMs} ms`)),
      timeoutMs,
    );
    conn.on('data', (chunk: Buffer) => {
      const room = maxBytes - size;
      if (room > 0) chunks.push(chunk.subarray(0, room));
      size += chunk.length;
      if (size >= maxBytes) done(undefined);
    });
    conn.once('end', () => done(undefined));
    conn.once('close', () => done(undefined));
    conn.once('error', (err) => done(err));
    conn.end(`${line}\n`);
  });
}

/** One line of the master's `show proc`: reload counters of the master, pids of workers. */
export interface ProcStatus {
  readonly reloads: number;
  readonly failedReloads: number;
  /** Worker pids, newest first, with how many reloads ago each started (0: current). */
  readonly workers: readonly { pid: number; reloads: number }[];
}

/** Parses the master CLI's `show proc` (HAProxy 2.5+: `reloads [failed: N]`). */
export function parseShowProc(text: string): ProcStatus | undefined {
  let reloads: number | undefined;
  let failedReloads = 0;
  const workers: { pid: number; reloads: number }[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields[1] === 'master') {
      reloads = Number(fields[2]);
      const failed = /\[failed:\s*(\d+)\]/.exec(line);
      if (failed !== null) failedReloads = Number(failed[1]);
    } else if (fields[1] === 'worker') {
      workers.push({ pid: Number(fields[0]), reloads: Number(fields[2]) });
    }
  }
  if (reloads === undefined || !Number.isFinite(reloads)) return undefined;
  return { reloads, failedReloads, workers };
}
