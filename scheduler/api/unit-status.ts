/**
 * UnitStatus: a unit with where it is placed, what its agent reports, why it is pending, and
 * the state derived from those, read from the replica's mirror, whose indexes answer each
 * of these by unit name: the status of one unit costs O(its placements), whatever the size
 * of the cluster.
 */
import type { Placement, Unit, UnitState, Unscheduled } from '../../proto/flotilla/v1/records.js';
import type { GlobalInstance, UnitStatus } from '../../proto/flotilla/v1/units.js';
import { inSpans, instanceNumber } from '../../lib/number-ranges.js';
import { templateOf, type ClusterMirror } from '../../store/index.js';
import { isInvalidUnit, type DefinitionCache } from '../view/snapshot.js';

/** Agent active states that count as running for the derived `launched`. */
export const RUNNING_STATES: ReadonlySet<string> = new Set(['active', 'activating', 'reloading']);

/** What the mirror holds about one unit beside its record. */
export interface UnitExtras {
  readonly placements: readonly Placement[];
  /** `unit-states/<machine>/<name>`: what the agent of a unit that is not Global reports. */
  readonly state: UnitState | undefined;
  /** `unit-states/<machine>/<name>/global`: machine -> that machine's copy of a Global unit. */
  readonly copies: ReadonlyMap<string, UnitState> | undefined;
  readonly unscheduled: Unscheduled | undefined;
}

/**
 * Derived state, one of three: inactive (no placement), launched (its agent reports it
 * running on the placement's machine), loaded (placed, otherwise). A Global unit has one
 * {@link GlobalInstance} per machine it is placed on instead, see {@link composeGlobal}.
 */
export function composeStatus(
  unit: Unit,
  extras: UnitExtras,
  definitions: DefinitionCache,
): UnitStatus {
  // Shared by content: a template's instances parse once.
  const def = definitions.shared(unit);
  const valid = isInvalidUnit(def) ? undefined : def;
  const image = valid?.container?.image ?? '';
  if (valid?.fleet.global === true) return { ...composeGlobal(unit, extras), global: true, image };
  return { ...composePlain(unit, extras), image };
}

/**
 * {@link composeStatus} with the addresses of the machines it names (from the mirror's
 * machine records), so clients need no list of every machine to show them.
 */
export function statusWithAddresses(
  mirror: ClusterMirror,
  unit: Unit,
  extras: UnitExtras,
  definitions: DefinitionCache,
): UnitStatus {
  const status = composeStatus(unit, extras, definitions);
  addAddress(mirror, status, status.placement?.machine);
  addAddress(mirror, status, status.state?.machine);
  for (const i of status.instances) {
    addAddress(mirror, status, i.placement?.machine);
    addAddress(mirror, status, i.state?.machine);
  }
  return status;
}

function addAddress(mirror: ClusterMirror, status: UnitStatus, id: string | undefined): void {
  if (id === undefined || id === '' || status.addresses[id] !== undefined) return;
  const address = mirror.machines.get(id)?.value.addresses[0];
  if (address !== undefined) status.addresses[id] = address;
}

function composePlain(unit: Unit, extras: UnitExtras): UnitStatus {
  const { placements, state, unscheduled } = extras;
  const placement =
    placements.length === 1
      ? placements[0]
      : (placements.find((p) => p.machine === state?.machine) ?? placements[0]);
  return {
    unit,
    ...(placement === undefined ? {} : { placement }),
    ...(state === undefined ? {} : { state }),
    ...(placement === undefined && unscheduled !== undefined ? { unscheduled } : {}),
    currentState: placement === undefined ? 'inactive' : placedState(placement, state),
    instances: [],
    addresses: {},
    global: false,
    image: '',
  };
}

/**
 * A Global unit: one instance per placement, in machine id order, each with its machine's own
 * copy state; launched when every copy runs, loaded when any is placed, inactive when none
 * is. The top-level placement and state stay empty.
 */
function composeGlobal(unit: Unit, extras: UnitExtras): UnitStatus {
  const { copies, unscheduled } = extras;
  const placements = [...extras.placements].sort((x, y) =>
    x.machine < y.machine ? -1 : x.machine > y.machine ? 1 : 0,
  );
  const instances = placements.map((placement): GlobalInstance => {
    const state = copies?.get(placement.machine);
    return {
      placement,
      ...(state === undefined ? {} : { state }),
      currentState: placedState(placement, state),
    };
  });
  let currentState = 'inactive';
  if (instances.length > 0) {
    const all = instances.every((i) => i.currentState === 'launched');
    currentState = all ? 'launched' : 'loaded';
  }
  return {
    unit,
    ...(instances.length === 0 && unscheduled !== undefined ? { unscheduled } : {}),
    currentState,
    instances,
    addresses: {},
    global: true,
    image: '',
  };
}

/** launched when `state` reports the unit running on the placement's machine, else loaded. */
function placedState(placement: Placement, state: UnitState | undefined): 'loaded' | 'launched' {
  const running =
    state !== undefined &&
    state.machine === placement.machine &&
    RUNNING_STATES.has(state.activeState);
  return running ? 'launched' : 'loaded';
}

/**
 * Placements, state and pending reason of unit `name` from the mirror: O(its placements).
 * With `machine`, a Global unit shows only that machine's copy.
 */
export function extrasOf(mirror: ClusterMirror, name: string, machine?: string): UnitExtras {
  const placements: Placement[] = [];
  const byMachine = mirror.placements.get(name);
  if (byMachine !== undefined) {
    for (const [id, e] of byMachine) {
      if (machine !== undefined && id !== machine) continue;
      // The leader writes the unit and machine into the value; a record that lacks them
      // (written by hand) gets them from its key.
      const p = e.value;
      placements.push(p.unit === name && p.machine === id ? p : { ...p, unit: name, machine: id });
    }
  }
  let copies: Map<string, UnitState> | undefined;
  for (const [id, e] of mirror.copies.get(name) ?? []) {
    if (machine !== undefined && id !== machine) continue;
    (copies ??= new Map()).set(id, e.value);
  }
  return {
    placements,
    state: mirror.states.get(name)?.value,
    copies,
    unscheduled: mirror.unscheduled.get(name)?.value ?? waitingWith(mirror, name),
  };
}

/**
 * The reasons of a numbered instance that its template's record lists as waiting
 * (leader/pending.ts: instances that wait alike share `unscheduled/<template>`), as the
 * instance's own: O(log ranges).
 */
export function waitingWith(mirror: ClusterMirror, name: string): Unscheduled | undefined {
  const template = templateOf(name);
  const shared = template === undefined ? undefined : mirror.unscheduled.get(template)?.value;
  if (shared === undefined || shared.waitingRanges.length === 0) return undefined;
  const n = instanceNumber(name);
  if (n === undefined || !inSpans(shared.waitingRanges, n)) return undefined;
  return { ...shared, unit: name, waiting: 0, waitingRanges: [] };
}
