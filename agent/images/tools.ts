/**
 * Running the host tools the image store needs (GNU tar, mount, umount, mknod, setfattr),
 * bounded: a deadline, and only the tail of their stderr kept for messages.
 */
import { spawn } from 'node:child_process';

const STDERR_MAX = 8 * 1024;

/** How a tool run ended. */
export interface ToolRun {
  readonly code: number | null;
  readonly stderr: string;
  readonly timedOut: boolean;
}

/** Runs `argv` in `cwd`, killing it after `timeoutMs`. Rejects only when it cannot start. */
export function runTool(
  argv: readonly string[],
  timeoutMs: number,
  cwd?: string,
): Promise<ToolRun> {
  return new Promise((resolve, reject) => {
    const [cmd = '', ...args] = argv;
    const child = spawn(cmd, args, {
      stdio: ['ignore', 'ignore', 'pipe'],
      ...(cwd !== undefined ? { cwd } : {}),
    });
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_MAX);
    });
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr: stderr.trim(), timedOut });
    });
  });
}

/** The last few lines of a tool's stderr, for a message. */
export function lastLines(stderr: string, lines = 3): string {
  return stderr.split('\n').slice(-lines).join('; ').slice(0, 300);
}
