/**
 * Test harness for the agent runtime: a UnitManager per test on a fresh state directory and
 * machine id, with a teardown that removes everything the test started (processes,
 * containers, cgroups, files) even when the test failed half-way.
 */
import type { ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  CGROUP_CONTROLLERS,
  UnitManager,
  isRuncUsable,
  type UnitManagerOptions,
} from '../../agent/index.js';
import { unmountUnder } from '../../agent/images/overlay.js';
import type { UnitState } from '../../proto/flotilla/v1/records.js';
import { parseUnit } from '../../unit/index.js';
import type { UnitDefinition } from '../../unit/model.js';
import { assertEventually, unitText, type SectionValues } from '../helpers/index.js';

const run = promisify(execFile);
/** Where runc (run as root, without --root) keeps its containers' state. */
const RUNC_ROOT = '/run/runc';

/** The drivers the suite runs against: process always, runc where it can run (root). */
export const DRIVERS: readonly ('process' | 'runc')[] = (await isRuncUsable())
  ? ['process', 'runc']
  : ['process'];

/** A machine id no other test uses (letters and digits, like a real one). */
export function machineId(): string {
  return `t${randomBytes(6).toString('hex')}`;
}

/** A parsed unit whose [Service] has `exec` as ExecStart and `service` as its other keys. */
export function unit(
  name: string,
  exec: string | readonly string[],
  service: SectionValues = {},
): UnitDefinition {
  const execs = typeof exec === 'string' ? [exec] : [...exec];
  return parseUnit(name, unitText({ service: { ExecStart: execs, ...service } }));
}

/** A manager under test and everything recorded about it. */
export interface Managed {
  readonly manager: UnitManager;
  readonly stateDir: string;
  readonly machineId: string;
  /** Every state change, in order. */
  readonly states: UnitState[];
}

/** Options of {@link managed}. */
export interface ManagedOptions extends Partial<UnitManagerOptions> {
  readonly driver: 'process' | 'runc';
}

/**
 * A UnitManager on a fresh temp state directory; teardown stops its units and removes
 * whatever is left (shims, containers, cgroups, the directory). Pass `stateDir`/`machineId`
 * to open a second manager over the same state (adoption); cleanup stays with the first.
 */
export async function managed(t: ExecutionContext, opts: ManagedOptions): Promise<Managed> {
  const owner = opts.stateDir === undefined;
  const stateDir = opts.stateDir ?? (await mkdtemp(join(tmpdir(), 'flotilla-agent-')));
  const id = opts.machineId ?? machineId();
  const manager = await UnitManager.create({
    logCheckMs: 200,
    ...opts,
    stateDir,
    machineId: id,
    timings: { restartCapMs: 2_000, startTimeoutMs: 30_000, ...opts.timings },
  });
  const states: UnitState[] = [];
  manager.onState((s) => states.push(s));
  t.teardown(async () => {
    await withTimeout(Promise.all(manager.list().map((s) => manager.stop(s.name))), 60_000);
    await manager.close();
    if (owner) await cleanup(stateDir, id);
  });
  return { manager, stateDir, machineId: id, states };
}

async function withTimeout(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    promise.catch(() => undefined),
    new Promise((resolve) => (timer = setTimeout(resolve, ms))),
  ]);
  clearTimeout(timer);
}

/** Kills what machine `id` left running (see {@link killUnits}), then removes `stateDir`. */
export async function cleanup(stateDir: string, id: string): Promise<void> {
  await killUnits(stateDir, id);
  // Image units' overlay roots: unmounted before anything under them is deleted.
  await unmountUnder(stateDir);
  await rm(stateDir, { recursive: true, force: true });
}

/**
 * Kills what machine `id`'s units left running under `stateDir` (shims and their process
 * groups, runc containers, cgroups), leaving the directory: for a second machine sharing it.
 */
export async function killUnits(stateDir: string, id: string): Promise<void> {
  const unitsDir = join(stateDir, id, 'units');
  for (const name of await readdir(unitsDir).catch(() => [] as string[])) {
    const text = await readFile(join(unitsDir, name, 'shim.pid'), 'utf8').catch(() => '');
    const pid = Number(text.trim());
    if (pid > 0) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  if (DRIVERS.includes('runc')) {
    // runc's state directory, read directly: `runc list` fails as a whole when another
    // container is deleted while it lists (other test files run at the same time).
    const ids = await readdir(RUNC_ROOT).catch(() => [] as string[]);
    for (const cid of ids) {
      if (cid.startsWith(`flotilla-${id}-`))
        await run('runc', ['delete', '-f', cid]).catch(() => undefined);
    }
    for (const controller of CGROUP_CONTROLLERS)
      await removeTree(join('/sys/fs/cgroup', controller, 'flotilla', id));
  }
}

/** rmdir, depth first (cgroup directories cannot be removed with rm -r). */
async function removeTree(dir: string): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) if (entry.isDirectory()) await removeTree(join(dir, entry.name));
  await rmdir(dir).catch(() => undefined);
}

/** Waits until `name`'s state satisfies `pred`; returns that state. */
export async function stateOf(
  m: Managed,
  name: string,
  pred: (s: UnitState) => boolean,
  what: string,
  timeoutMs = 30_000,
): Promise<UnitState> {
  return assertEventually(
    () => {
      const state = m.manager.get(name);
      if (state === undefined || !pred(state)) {
        throw new Error(
          `state is ${state ? `${state.activeState}/${state.subState} ${state.message}` : 'unknown'}`,
        );
      }
      return state;
    },
    { timeoutMs, intervalMs: 50, message: `${name}: ${what}` },
  );
}

/** Waits until `name` is active/running and returns its state. */
export function running(m: Managed, name: string, timeoutMs?: number): Promise<UnitState> {
  return stateOf(
    m,
    name,
    (s) => s.activeState === 'active' && s.subState === 'running',
    'active/running',
    timeoutMs,
  );
}

/** True while a process with this pid exists (and is not a zombie). */
export async function isPidAlive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  if (stat === '') return false;
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

/** runc's container ids on this host. */
export async function runcContainers(): Promise<string[]> {
  return (await readdir(RUNC_ROOT).catch(() => [] as string[])).sort();
}
