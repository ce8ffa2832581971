/**
 * Names and paths a machine's units live under. Container ids, cgroup paths and state
 * directories all carry the machine id, so several agents (one per machine id) can share one
 * host and one state directory without seeing each other's units.
 *
 * ```
 * <stateDir>/<machine>/units/<unit>/meta.json   what the agent knows about the unit (adoption)
 *                                  /main.pid    the main process's pid, written by the shim
 *                                  /exit        its exit status, written by the shim
 *                                  /rootfs /tmp /config.json   the runc bundle
 * <stateDir>/<machine>/logs/<unit>.log[.1]      stdout+stderr, rotated
 * <stateDir>/unit-secrets/<machine>/<unit>/     the unit's secrets: a tmpfs (secret-files.ts)
 * container id  flotilla-<machine>-<unit>       cgroup  /flotilla/<machine>/<unit>
 * ```
 */
import { join } from 'node:path';
import { RuntimeError } from './errors.js';

/** Prefix of every container id and the top cgroup directory. */
export const ID_PREFIX = 'flotilla';

const UNIT_NAME = /^[A-Za-z0-9:_.@-]{1,256}$/;

/** True when `name` can be used as a directory name and in a container id. */
export function isSafeUnitName(name: string): boolean {
  return UNIT_NAME.test(name) && name !== '.' && name !== '..';
}

/**
 * Escapes `text` into runc's container-id alphabet (`[\w+.-]`) injectively: every character
 * outside `keep` becomes `+xx` (hex), and `+` never occurs in unit names or in the output of
 * anything else.
 */
export function escapeId(text: string, keep: RegExp): string {
  let out = '';
  for (const ch of text) {
    if (keep.test(ch)) out += ch;
    else
      for (const byte of Buffer.from(ch, 'utf8')) out += `+${byte.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/** Machine ids escape `-` as well, so the first `-` after the prefix ends the machine id. */
export function escapeMachine(machineId: string): string {
  if (machineId === '') throw new RuntimeError('invalid-name', 'the machine id is empty');
  return escapeId(machineId, /[A-Za-z0-9_.]/);
}

/** A unit name in container ids and cgroup paths (`@` and `:` are escaped). */
export function escapeUnit(unit: string): string {
  return escapeId(unit, /[A-Za-z0-9_.-]/);
}

/** Where one machine's units and logs live, and how their containers are named. */
export class MachineLayout {
  readonly machineId: string;
  /** `<stateDir>/<machine>`: everything of this machine, nothing of any other. */
  readonly root: string;
  readonly unitsDir: string;
  readonly logsDir: string;
  /**
   * `<stateDir>/unit-secrets/<machine>`: outside the 0700 machine root, so a process-driver
   * unit running as its own User= can reach its secrets directory (and no other: each is
   * 0500, owned by its unit's user). `-` never survives {@link escapeMachine}, so no machine
   * id can be named `unit-secrets`.
   */
  readonly secretsRoot: string;
  private readonly machinePart: string;

  constructor(stateDir: string, machineId: string) {
    this.machineId = machineId;
    this.machinePart = escapeMachine(machineId);
    this.root = join(stateDir, this.machinePart);
    this.unitsDir = join(this.root, 'units');
    this.logsDir = join(this.root, 'logs');
    this.secretsRoot = join(stateDir, 'unit-secrets', this.machinePart);
  }

  /** Throws `invalid-name` unless `unit` is safe in paths and ids. */
  checkUnit(unit: string): void {
    if (!isSafeUnitName(unit)) {
      throw new RuntimeError('invalid-name', `unit name ${JSON.stringify(unit)} is not valid`);
    }
  }

  /** The unit's state directory (bundle, pid and exit files, meta.json). */
  unitDir(unit: string): string {
    this.checkUnit(unit);
    return join(this.unitsDir, unit);
  }

  /** Where the unit's secrets are written on the host (a tmpfs when the agent is root). */
  secretsDir(unit: string): string {
    this.checkUnit(unit);
    return join(this.secretsRoot, unit);
  }

  /** The unit's current log file; the previous one is this plus `.1`. */
  logPath(unit: string): string {
    this.checkUnit(unit);
    return join(this.logsDir, `${unit}.log`);
  }

  /** `flotilla-<machine>-<unit>`: unique per host because the machine id is in it. */
  containerId(unit: string): string {
    this.checkUnit(unit);
    return `${this.containerPrefix()}${escapeUnit(unit)}`;
  }

  /** Every container id of this machine starts with this, and no other machine's does. */
  containerPrefix(): string {
    return `${ID_PREFIX}-${this.machinePart}-`;
  }

  /** The cgroup of this machine, relative to each controller's mount point. */
  machineCgroup(): string {
    return `/${ID_PREFIX}/${this.machinePart}`;
  }

  /** The cgroup of a unit's container, relative to each controller's mount point. */
  cgroupPath(unit: string): string {
    this.checkUnit(unit);
    return `${this.machineCgroup()}/${escapeUnit(unit)}`;
  }
}

/** Files inside a unit directory. */
export const UNIT_FILES = {
  meta: 'meta.json',
  pid: 'main.pid',
  exit: 'exit',
} as const;
