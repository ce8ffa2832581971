/**
 * The runtime drivers behind one interface, and the choice between them: runc where it is
 * installed and the agent is root, plain processes otherwise.
 */
import { ProcessDriver } from './process.js';
import { RuncDriver, type RuncDriverOptions } from './runc.js';
import type { DriverName, RuntimeDriver } from './driver.js';
import { RuntimeError } from './errors.js';
import { runCapture } from './spawn.js';
import { resolveUserns, stateDirProblem, type UsernsSetting } from './userns.js';

export type * from './driver.js';
export {
  RuntimeError,
  isRuntimeError,
  isPermanentFailure,
  type RuntimeErrorCode,
} from './errors.js';
export { MachineLayout, escapeUnit, escapeMachine, isSafeUnitName } from './layout.js';
export { ProcessDriver } from './process.js';
export { CGROUP_CONTROLLERS, RuncDriver, type RuncDriverOptions } from './runc.js';
export { resolveUser, ROOT_USER, type UnitUser } from './users.js';
export { normalizeSignal, signalName } from './proc.js';
export { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, tightenMachineFiles } from './private-files.js';
export {
  parseUsernsRemap,
  resolveUserns,
  type IdMap,
  type UsernsChoice,
  type UsernsSetting,
} from './userns.js';

/** True when runc can be run here and the agent is root: the conditions of the runc driver. */
export async function isRuncUsable(runc = 'runc'): Promise<boolean> {
  if (process.getuid?.() !== 0) return false;
  try {
    return (await runCapture(runc, ['--version'], 10_000)).code === 0;
  } catch {
    return false;
  }
}

/** Options of {@link createDriver}. */
export interface DriverOptions extends Omit<RuncDriverOptions, 'userns'> {
  readonly stateDir: string;
  readonly machineId: string;
  /** `auto` (default): runc when {@link isRuncUsable}, otherwise process. */
  readonly driver?: DriverName | 'auto';
  /** runc's user namespace (`--userns-remap`); default `off`. The agent's flag defaults to `auto`. */
  readonly usernsRemap?: UsernsSetting;
  /** Told what the user namespace setting came to, and why (for the agent's log). */
  readonly onUserns?: (text: string) => void;
}

/** The driver for one machine id. Asking for runc where it cannot work is an error. */
export async function createDriver(opts: DriverOptions): Promise<RuntimeDriver> {
  const want = opts.driver ?? 'auto';
  const runcOk = want === 'process' ? false : await isRuncUsable(opts.runc);
  if (want === 'runc' && !runcOk) {
    throw new RuntimeError('unsupported', 'the runc driver needs runc on PATH and root');
  }
  if (runcOk) {
    const setting = opts.usernsRemap ?? 'off';
    let choice = await resolveUserns(setting);
    const problem = choice.map !== undefined ? await stateDirProblem(opts.stateDir) : undefined;
    if (problem !== undefined) {
      if (setting !== 'auto') throw new RuntimeError('unsupported', `--userns-remap: ${problem}`);
      choice = { reason: problem };
    }
    const map = choice.map;
    opts.onUserns?.(
      map === undefined
        ? `containers run in the host's user namespace: ${choice.reason}`
        : `containers run in a user namespace, container ids 0-${map.size - 1} as host uids ${map.uid}- and gids ${map.gid}-: ${choice.reason}`,
    );
    return new RuncDriver(opts.stateDir, opts.machineId, {
      ...opts,
      ...(map !== undefined ? { userns: map } : {}),
    });
  }
  return new ProcessDriver(opts.stateDir, opts.machineId);
}
