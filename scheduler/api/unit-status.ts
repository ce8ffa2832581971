/**
 * UnitStatus: a unit with where it is placed, what its agent reports, why it is pending, and
 * the state derived from those, read from the replica's mirror, whose indexes answer each
 * of these by unit name: the status of one unit costs O(its placements), whatever the size
 * of the cluster.
 */
import type { Placement, Unit, UnitState, Unscheduled } from '../../proto/flotilla/v1/records.js';
import type { GlobalInstance, UnitStatus } from '../../proto/flotilla/v1/units.js';
import type { ClusterMirror } from '../../store/index.js';
import { isInvalidUnit, type DefinitionCache } from '../snapshot.js';

/** Agent active states that count as running for the derived `launched`. */
const RUNNING_STATES: ReadonlySet<string> = new Set(['active', 'activating', 'reloading']);

/** Placements, states and pending reasons of a set of units, by unit name. */
export interface UnitExtras {
  readonly placements: Map<string, Placement[]>;
  /** `states/<name>`: what the agent of a unit that is not Global reports. */
  readonly states: Map<string, UnitState>;
  /** `states/<name>/<machine>`: unit name -> machine -> that machine's copy of a Global unit. */
  readonly copies: Map<string, Map<string, UnitState>>;
  readonly unscheduled: Map<string, Unscheduled>;
}

/** Extras with nothing in them yet. */
function emptyExtras(): UnitExtras {
  return { placements: new Map(), states: new Map(), copies: new Map(), unscheduled: new Map() };
}

/**
 * Derived state, DESIGN.md's three: inactive (no placement), launched (its agent reports it
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
  const add = (id: string | undefined): void => {
    if (id === undefined || id === '' || status.addresses[id] !== undefined) return;
    const address = mirror.machines.get(id)?.value.addresses[0];
    if (address !== undefined) status.addresses[id] = address;
  };
  add(status.placement?.machine);
  add(status.state?.machine);
  for (const i of status.instances) {
    add(i.placement?.machine);
    add(i.state?.machine);
  }
  return status;
}

function composePlain(unit: Unit, extras: UnitExtras): UnitStatus {
  const placements = extras.placements.get(unit.name) ?? [];
  const state = extras.states.get(unit.name);
  const placement = placements.find((p) => p.machine === state?.machine) ?? placements[0];
  const unscheduled = extras.unscheduled.get(unit.name);
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
  const copies = extras.copies.get(unit.name);
  const placements = [...(extras.placements.get(unit.name) ?? [])].sort((x, y) =>
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
  const unscheduled = extras.unscheduled.get(unit.name);
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
 * Placements, states and pending reasons of `names` from the mirror: O(names + their
 * placements). With `machine`, a Global unit shows only that machine's copy.
 */
export function extrasOf(
  mirror: ClusterMirror,
  names: Iterable<string>,
  machine?: string,
): UnitExtras {
  const extras = emptyExtras();
  for (const name of names) {
    const byMachine = mirror.placements.get(name);
    if (byMachine !== undefined) {
      const list: Placement[] = [];
      for (const [id, e] of byMachine) {
        if (machine !== undefined && id !== machine) continue;
        // The leader writes the unit and machine into the value; a record that lacks them
        // (written by hand) gets them from its key.
        const p = e.value;
        list.push(p.unit === name && p.machine === id ? p : { ...p, unit: name, machine: id });
      }
      if (list.length > 0) extras.placements.set(name, list);
    }
    const state = mirror.states.get(name);
    if (state !== undefined) extras.states.set(name, state.value);
    const copies = mirror.copies.get(name);
    if (copies !== undefined) {
      const mine = new Map<string, UnitState>();
      for (const [id, e] of copies)
        if (machine === undefined || id === machine) mine.set(id, e.value);
      if (mine.size > 0) extras.copies.set(name, mine);
    }
    const pending = mirror.unscheduled.get(name);
    if (pending !== undefined) extras.unscheduled.set(name, pending.value);
  }
  return extras;
}
