/**
 * The CLI tests' kit: the real API server (scheduler/api) on a free port over the test file's
 * real etcd, under a fresh key prefix; bin/flotctl run as a child process against it (to
 * completion, or live for the verbs that follow streams); and a fingerprint of the prefix to
 * prove a refused command wrote nothing. Everything started is stopped at the test's
 * teardown, also when the test fails.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ExecutionContext } from 'ava';
import { pino } from 'pino';
import type { Machine } from '../../proto/flotilla/v1/records.js';
import { startApiServer, type ApiServer } from '../../scheduler/api/index.js';
import { codecs, openStore, type Store } from '../../store/index.js';
import {
  assertEventually,
  makeMachine,
  uniquePrefix,
  type EtcdServer,
  type MachineOverrides,
} from '../../testkit/index.js';

/** The repository root, from dist/test/cli/. */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** bin/flotctl: needs the build (`npx tsc -p tsconfig.build.json`) first. */
export const FLOTCTL = `${ROOT}bin/flotctl`;
export { EXAMPLES } from '../../testkit/index.js';

/** How long one flotctl run may take before the test fails: generous for a loaded box. */
export const RUN_TIMEOUT_MS = 90_000;

/** A finished flotctl run. */
export interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** Wall time of the run, in ms. */
  readonly ms: number;
}

/** Options of {@link flotctl}. */
export interface RunOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
}

/** flotctl's own variables, unset so a developer's environment does not leak into tests. */
const NO_FLOTCTL_ENV = {
  FLOTCTL_ENDPOINT: '',
  FLOTCTL_CA_FILE: '',
  FLOTCTL_CERT_FILE: '',
  FLOTCTL_KEY_FILE: '',
};

/** Runs bin/flotctl with `args` to completion; FLOTCTL_* variables are unset unless given. */
export function flotctl(args: readonly string[], opts: RunOptions = {}): Promise<Run> {
  const env = { ...process.env, ...NO_FLOTCTL_ENV, ...opts.env };
  const started = Date.now();
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [FLOTCTL, ...args],
      { env, cwd: opts.cwd ?? ROOT, timeout: RUN_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err !== null && typeof err.code !== 'number') {
          reject(new Error(`flotctl ${args.join(' ')} did not finish: ${err.message}\n${stderr}`));
          return;
        }
        const code = err === null ? 0 : (err.code as number);
        resolve({ code, stdout, stderr, ms: Date.now() - started });
      },
    );
  });
}

/** A flotctl that keeps running (watch, journal -f, list-units --watch). */
export interface LiveRun {
  /** Everything it printed on stdout so far. */
  stdout(): string;
  stderr(): string;
  /** Waits until stdout matches `re` (generous timeout); returns stdout. */
  waitFor(re: RegExp, message?: string): Promise<string>;
  /** Waits for it to exit by itself: its code, or "still running" after `timeoutMs` (default 30 s). */
  waitExit(timeoutMs?: number): Promise<number | null | 'still running'>;
  /** Sends `signal` (default SIGINT, Ctrl-C) and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts flotctl in the background; it is killed at teardown if still running. */
export function spawnFlotctl(t: ExecutionContext, args: readonly string[]): LiveRun {
  const child = spawn(process.execPath, [FLOTCTL, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...NO_FLOTCTL_ENV },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return {
    stdout: () => out,
    stderr: () => err,
    waitFor: (re, message) =>
      assertEventually(() => re.test(out) && out, {
        timeoutMs: 30_000,
        message: `${message ?? `flotctl ${args.join(' ')} prints ${String(re)}`} (stdout: ${out}; stderr: ${err})`,
      }),
    waitExit: async (timeoutMs = 30_000) => {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'still running'>(
        (resolve) => (timer = setTimeout(() => resolve('still running'), timeoutMs)),
      );
      const code = await Promise.race([exited, late]);
      clearTimeout(timer);
      return code;
    },
    stop: async (signal = 'SIGINT') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** A real API server for one test, with the store behind it. */
export interface TestApi {
  readonly store: Store;
  readonly server: ApiServer;
  /** host:port of the API: pass it as `--endpoint`. */
  readonly endpoint: string;
  /** Runs flotctl against this API. */
  run(args: readonly string[], opts?: RunOptions): Promise<Run>;
  /** Starts a long-running flotctl against this API. */
  spawn(args: readonly string[]): LiveRun;
}

/** Starts the API server over `etcd` under a fresh prefix; closed at teardown. */
export async function startTestApi(t: ExecutionContext, etcd: EtcdServer): Promise<TestApi> {
  const store = openStore({ endpoints: etcd.endpoint, prefix: uniquePrefix(t.title.slice(0, 40)) });
  const server = await startApiServer({
    store,
    listen: '127.0.0.1:0',
    logger: pino({ level: 'silent' }),
  });
  t.teardown(async () => {
    await server.close();
    store.close();
  });
  const endpoint = server.address;
  return {
    store,
    server,
    endpoint,
    run: (args, opts) => flotctl(['--endpoint', endpoint, ...args], opts),
    spawn: (args) => spawnFlotctl(t, ['--endpoint', endpoint, ...args]),
  };
}

/** Registers a machine as its agent would (without a lease: tests remove it themselves). */
export async function addMachine(store: Store, overrides: MachineOverrides = {}): Promise<Machine> {
  const machine = makeMachine(overrides);
  await store.putRecord(codecs.machine, store.keys.machine(machine.id), machine);
  return machine;
}

/** Every key under the prefix with its mod revision: equal fingerprints mean nothing was written. */
export async function fingerprint(store: Store): Promise<string[]> {
  const { items } = await store.list(store.keys.prefix);
  return items.map((kv) => `${kv.key}@${kv.modRevision}`);
}

/** A temporary directory holding `files` (name -> text), removed at teardown. */
export async function unitDir(
  t: ExecutionContext,
  files: Readonly<Record<string, string>>,
): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'flotctl-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return dir;
}

/** Parses JSON output, failing the test with the text when it does not parse. */
export function parseJson(t: ExecutionContext, text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    t.fail(`not JSON (${String(err)}): ${text}`);
    return undefined;
  }
}
