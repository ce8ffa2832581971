/**
 * Running short-lived programs from the agent: hooks to completion with their output appended
 * to the unit's log, and tools (runc) with their output captured. Every call has a deadline.
 */
import { spawn } from 'node:child_process';
import { open } from 'node:fs/promises';
import { constants } from 'node:os';
import { RuntimeError } from './errors.js';
import type { ExitResult } from './driver.js';
import { signalName, signalPid } from './proc.js';
import { PRIVATE_FILE_MODE } from './private-files.js';

/** Options of {@link runToCompletion}. */
export interface ForegroundOptions {
  readonly env: Readonly<Record<string, string>>;
  readonly cwd: string;
  /** stdout and stderr are appended here. */
  readonly logPath: string;
  readonly timeoutMs: number;
  /** Aborting ends the command as the timeout does. */
  readonly signal?: AbortSignal;
  /** Called on timeout before the process group is SIGKILLed (e.g. to kill a container). */
  readonly onTimeout?: (pid: number) => Promise<void>;
}

/** `128+n` for signal n, as a shell would report it. */
export function statusOf(code: number | null, signal: NodeJS.Signals | null): ExitResult {
  if (signal !== null) return { status: 128 + constants.signals[signal], signal };
  return { status: code ?? -1, signal: '' };
}

/**
 * Decodes a status written by a shell: above 128 it names a signal when there is one with that
 * number. (A program that itself exits with 143 is indistinguishable from SIGTERM: the shim
 * only sees what `$?` says, as any shell does.)
 */
export function decodeShellStatus(status: number): ExitResult {
  if (status > 128 && status <= 128 + 64) {
    return { status, signal: signalName(status - 128) ?? '' };
  }
  return { status, signal: '' };
}

/**
 * Runs `argv` in its own process group with stdio appended to the unit's log and resolves
 * with how it ended. On timeout the whole group is SIGKILLed. Never rejects for a program
 * that exits badly; rejects with `missing-program` when it cannot be executed at all.
 */
export async function runToCompletion(
  argv: readonly string[],
  opts: ForegroundOptions,
): Promise<ExitResult> {
  const [file, ...args] = argv;
  if (file === undefined) throw new RuntimeError('missing-program', 'empty command line');
  const log = await open(opts.logPath, 'a', PRIVATE_FILE_MODE);
  try {
    const child = spawn(file, args, {
      cwd: opts.cwd,
      env: { ...opts.env },
      detached: true,
      stdio: ['ignore', log.fd, log.fd],
    });
    return await new Promise<ExitResult>((resolve, reject) => {
      let timedOut = false;
      const expire = (): void => {
        if (timedOut) return;
        timedOut = true;
        const pid = child.pid;
        if (pid === undefined) return;
        void (opts.onTimeout?.(pid) ?? Promise.resolve())
          .catch(() => undefined)
          .finally(() => signalPid(-pid, 'SIGKILL'));
      };
      const timer = setTimeout(expire, opts.timeoutMs);
      opts.signal?.addEventListener('abort', expire, { once: true });
      if (opts.signal?.aborted === true) expire();
      child.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', expire);
        reject(
          new RuntimeError('missing-program', `${file}: ${err.code ?? err.message}`, {
            cause: err,
          }),
        );
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', expire);
        const result = statusOf(code, signal);
        resolve(timedOut && result.signal === '' ? { status: 137, signal: 'SIGKILL' } : result);
      });
    });
  } finally {
    await log.close();
  }
}

/** What {@link runCapture} returns. */
export interface Captured {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Output kept per stream of a captured tool; the rest is dropped (runc's JSON is far smaller). */
const CAPTURE_MAX_CHARS = 4 * 1024 * 1024;
/** After the tool exits, how long its pipes may stay open (held by a process it left behind). */
const CLOSE_GRACE_MS = 1_000;

/**
 * Runs a tool and captures its output (each stream cut at 4 MiB); kills it after `timeoutMs`.
 * Never rejects on a bad exit, and resolves even when something the tool started keeps its
 * pipes open: the pipes are dropped a second after it exited.
 */
export function runCapture(
  file: string,
  args: readonly string[],
  timeoutMs = 30_000,
): Promise<Captured> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const keep = (kept: string, d: string): string =>
      kept.length >= CAPTURE_MAX_CHARS ? kept : kept + d.slice(0, CAPTURE_MAX_CHARS - kept.length);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout = keep(stdout, d)));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = keep(stderr, d)));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    let grace: NodeJS.Timeout | undefined;
    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      clearTimeout(timer);
      clearTimeout(grace);
      resolve({ code: code ?? (signal !== null ? 128 : -1), stdout, stderr });
    };
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new RuntimeError('unsupported', `${file}: ${err.message}`, { cause: err }));
    });
    child.once('exit', (code, signal) => {
      grace = setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        finish(code, signal);
      }, CLOSE_GRACE_MS);
    });
    child.once('close', finish);
  });
}

/** The message runc (logrus) printed, without its `time=... level=error msg=` decoration. */
export function toolMessage(stderr: string): string {
  const lines = stderr.trim().split('\n');
  const last = lines.at(-1) ?? '';
  const match = /msg="((?:[^"\\]|\\.)*)"/.exec(last);
  return match?.[1] !== undefined ? match[1].replace(/\\"/g, '"') : last;
}
