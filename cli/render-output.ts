/**
 * Where `flotctl render` puts what it renders, and the command it runs after a change: the
 * output is written atomically (a temporary file beside it, then a rename, so nginx or HAProxy
 * never reads half a config) and only when it differs from what the file holds; the command
 * runs one at a time, and changes that come while it runs are coalesced into one more run, so
 * a slow reload never piles up.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { formatDuration } from '../lib/duration.js';
import { CliError } from './cli-error.js';

/**
 * Writes `text` to `path` when the file does not already hold exactly it: into a temporary
 * file in the same directory (same file system), with the old file's mode, then renamed over
 * it. Returns whether it wrote.
 */
export async function writeIfChanged(path: string, text: string): Promise<boolean> {
  let mode = 0o644;
  try {
    const st = await stat(path);
    mode = st.mode & 0o7777;
    // A file far larger than any output cannot hold it: no need to read it whole.
    if (st.size === Buffer.byteLength(text) && (await readFile(path, 'utf8')) === text) {
      return false;
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fileError(path, err);
  }
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await writeFile(temp, text, { mode, flush: true });
    await rename(temp, path);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw fileError(path, err);
  }
  return true;
}

function fileError(path: string, err: unknown): CliError {
  const why = err instanceof Error ? err.message : String(err);
  return new CliError('file', `--out ${path}: cannot write it (${why})`);
}

/** How one run of the command ended. */
export interface ExecResult {
  readonly code: number | null;
  readonly signal: string | null;
  readonly durationMs: number;
  /** The last {@link MAX_EXEC_OUTPUT} bytes of its stdout and stderr, as they came. */
  readonly output: string;
  /** It ran past its timeout and was killed. */
  readonly timedOut: boolean;
}

/** Output of one run kept for the report (its tail). */
export const MAX_EXEC_OUTPUT = 16 * 1024;

/** Options of an {@link ExecRunner}. */
export interface ExecRunnerOptions {
  /** The shell command (run with /bin/sh -c). */
  readonly command: string;
  /** A run still going after this long gets SIGTERM, then SIGKILL 5 s later. */
  readonly timeoutMs: number;
  /** Hears how each run ended. */
  readonly report: (result: ExecResult) => void;
}

/**
 * Runs the command after each change, one run at a time: a change while it runs asks for ONE
 * more run after it (however many changes came), so runs never overlap or queue up.
 */
export class ExecRunner {
  private running: Promise<void> | undefined;
  private again = false;
  /** Runs started so far. */
  runs = 0;

  constructor(private readonly opts: ExecRunnerOptions) {}

  /** Asks for a run: now if none runs, else once after the current one. */
  trigger(): void {
    if (this.running !== undefined) {
      this.again = true;
      return;
    }
    this.running = this.loop();
  }

  /** Resolves when no run is going or asked for. */
  async idle(): Promise<void> {
    while (this.running !== undefined) await this.running;
  }

  private async loop(): Promise<void> {
    try {
      do {
        this.again = false;
        this.runs += 1;
        this.opts.report(await runOnce(this.opts.command, this.opts.timeoutMs));
      } while (this.again);
    } finally {
      this.running = undefined;
    }
  }
}

/** One run of `command`, its output's tail kept, killed past `timeoutMs`. */
export function runOnce(command: string, timeoutMs: number): Promise<ExecResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', command], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
      if (output.length > 2 * MAX_EXEC_OUTPUT) output = output.slice(-MAX_EXEC_OUTPUT);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let timedOut = false;
    let kill: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGTERM');
      kill = setTimeout(() => child.kill('SIGKILL'), 5_000);
    }, timeoutMs);
    const done = (code: number | null, signal: string | null): void => {
      clearTimeout(timer);
      clearTimeout(kill);
      resolve({
        code,
        signal,
        durationMs: Date.now() - started,
        output: output.slice(-MAX_EXEC_OUTPUT),
        timedOut,
      });
    };
    child.on('error', (err) => {
      output += `cannot run /bin/sh: ${err.message}`;
      done(127, null);
    });
    child.on('close', (code, signal) => done(code, signal));
  });
}

/** How a run is reported: one line, then its output indented. */
export function execReport(command: string, r: ExecResult): string {
  const how = r.timedOut
    ? `killed after its timeout (${formatDuration(r.durationMs)})`
    : r.signal !== null
      ? `killed by ${r.signal} after ${formatDuration(r.durationMs)}`
      : `exited ${r.code ?? '?'} after ${formatDuration(r.durationMs)}`;
  const lines = r.output === '' ? [] : r.output.replace(/\n$/, '').split('\n');
  return [`render: --exec ${JSON.stringify(command)} ${how}`, ...lines.map((l) => `  | ${l}`)]
    .map((l) => `${l}\n`)
    .join('');
}

/** Whether a run succeeded. */
export function execOk(r: ExecResult): boolean {
  return r.code === 0 && !r.timedOut;
}
