/**
 * The agent's reconciler, pure half: from what is placed on this machine (desired) and what
 * the agent runs or has reported (actual), the tasks that make them agree. No I/O, no clock
 * (time is an input), so every rule is a table test and the loop around it stays
 * level-triggered: computing the tasks twice from the same inputs gives the same tasks.
 */
import type { UnitDefinition } from '../../unit/index.js';

/** A placement's desired state, as the leader wrote it. */
export type PlacedState = 'loaded' | 'launched';

/** What the agent knows of the unit file a placement names, at the placement's hash. */
export type FileStatus =
  /** Parsed: the file with the placement's hash. */
  | { readonly kind: 'ok'; readonly def: UnitDefinition }
  /** The file with the placement's hash does not parse; `message` says why. */
  | { readonly kind: 'invalid'; readonly message: string }
  /** Neither `units/<name>` nor (for an instance) its template exists. */
  | { readonly kind: 'missing' }
  /** Not known yet: being fetched, etcd unreachable, or the record has another hash so far. */
  | { readonly kind: 'pending' };

/** One placement on this machine. */
export interface DesiredUnit {
  readonly name: string;
  readonly hash: string;
  readonly state: PlacedState;
  readonly file: FileStatus;
}

/**
 * One unit the agent has: `running` is supervised by the UnitManager (whatever its state,
 * failed included); the others are only a reported state: `loaded` (placed with desired state
 * loaded), `invalid` (its file does not parse), `not-found` (its file is missing).
 */
export interface ActualUnit {
  readonly name: string;
  readonly hash: string;
  readonly kind: 'running' | 'loaded' | 'invalid' | 'not-found';
}

/**
 * Where the agent stands with etcd, for `[X-Fleet] StopOnDisconnect=`. `lastContactAt` is
 * when the lease was last renewed (or the agent started, before its first renewal).
 */
export interface Connection {
  readonly disconnected: boolean;
  readonly lastContactAt: number;
  readonly now: number;
}

/** Why a unit is stopped. */
export type StopReason =
  /** No longer placed here: stop it and delete its state record. */
  | 'unplaced'
  /** StopOnDisconnect= ran out: stop it, keep it placed, start it again once back online. */
  | 'disconnected';

/** One thing to do. Tasks for different units are independent. */
export type Task =
  /** Start the unit (stopping the supervised one first when its hash differs). */
  | {
      readonly type: 'start';
      readonly name: string;
      readonly hash: string;
      readonly def: UnitDefinition;
      readonly restart: boolean;
    }
  | { readonly type: 'stop'; readonly name: string; readonly reason: StopReason }
  /** Desired `loaded`: stop it if it runs, then report it loaded. */
  | { readonly type: 'load'; readonly name: string; readonly hash: string }
  /** The file cannot be run: stop what runs, report a failed state with `message`. */
  | {
      readonly type: 'fail';
      readonly name: string;
      readonly hash: string;
      readonly loadState: 'error' | 'not-found';
      readonly message: string;
    }
  /** A reported (not running) unit that is no longer placed: delete its state record. */
  | { readonly type: 'forget'; readonly name: string };

/** Inputs of {@link computeTasks}. */
export interface ReconcileInput {
  readonly desired: readonly DesiredUnit[];
  readonly actual: readonly ActualUnit[];
  /** Units stopped for StopOnDisconnect that must not start again until etcd is re-read. */
  readonly held: ReadonlySet<string>;
  readonly connection: Connection;
}

/** True when a StopOnDisconnect unit must not run now: cut off for longer than it allows. */
export function isCutOff(def: UnitDefinition, connection: Connection): boolean {
  const limit = def.fleet.stopOnDisconnectMs;
  if (limit <= 0 || !connection.disconnected) return false;
  return connection.now >= connection.lastContactAt + limit;
}

/**
 * The tasks that bring `actual` to `desired`, in name order. Safety properties (tested): it
 * never stops a unit that is placed here with an unchanged, runnable file while connected;
 * it never starts a unit that is not placed here; at most one task per unit.
 */
export function computeTasks(input: ReconcileInput): Task[] {
  const actual = new Map(input.actual.map((a) => [a.name, a]));
  const tasks: Task[] = [];
  const placed = new Set<string>();
  for (const d of input.desired) {
    placed.add(d.name);
    const task = taskFor(d, actual.get(d.name), input);
    if (task !== undefined) tasks.push(task);
  }
  for (const a of input.actual) {
    if (placed.has(a.name)) continue;
    tasks.push(
      a.kind === 'running'
        ? { type: 'stop', name: a.name, reason: 'unplaced' }
        : { type: 'forget', name: a.name },
    );
  }
  return tasks.sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
}

function taskFor(
  d: DesiredUnit,
  a: ActualUnit | undefined,
  input: ReconcileInput,
): Task | undefined {
  const running = a?.kind === 'running';
  const file = d.file;
  switch (file.kind) {
    case 'pending':
      return undefined;
    case 'missing':
      // Keep what runs: a destroyed unit's placement is deleted next, a stop then follows.
      if (running || (a?.kind === 'not-found' && a.hash === d.hash)) return undefined;
      return {
        type: 'fail',
        name: d.name,
        hash: d.hash,
        loadState: 'not-found',
        message: `the unit file of ${d.name} is not in etcd`,
      };
    case 'invalid':
      if (a?.kind === 'invalid' && a.hash === d.hash) return undefined;
      return {
        type: 'fail',
        name: d.name,
        hash: d.hash,
        loadState: 'error',
        message: file.message,
      };
    case 'ok':
      break;
  }
  if (d.state === 'loaded') {
    if (a?.kind === 'loaded' && a.hash === d.hash) return undefined;
    return { type: 'load', name: d.name, hash: d.hash };
  }
  if (isCutOff(file.def, input.connection)) {
    return running ? { type: 'stop', name: d.name, reason: 'disconnected' } : undefined;
  }
  if (input.held.has(d.name)) return undefined;
  if (running && a.hash === d.hash) return undefined;
  return { type: 'start', name: d.name, hash: d.hash, def: file.def, restart: running };
}
