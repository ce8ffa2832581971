/**
 * Test harness for the agent runtime: a UnitManager per test on a fresh state directory and
 * machine id, with a teardown that removes everything the test started (processes,
 * containers, cgroups, files) even when the test failed half-way.
 */
import type { ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UnitManager, type UnitManagerOptions } from '../../agent/index.js';
import type { UnitState } from '../../proto/flotilla/v1/records.js';
import { parseUnit } from '../../unit/index.js';
import type { UnitDefinition } from '../../unit/model.js';
import { assertEventually, unitText, type SectionValues } from '../../testkit/index.js';
import { cleanup } from '../../testkit/unit-cleanup.js';

export { DRIVERS, cleanup, killUnits, runcContainers } from '../../testkit/unit-cleanup.js';

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
