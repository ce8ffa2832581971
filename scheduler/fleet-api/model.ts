/**
 * fleet's entities (schema/v1.json of fleet v1.0.0) over Flotilla's records, read from the
 * replica's mirror. Every field of fleet's schema is `omitempty`, so empty fields are left
 * out here too.
 *
 * States follow fleet's `determineJobState`, not Flotilla's derived state, where they differ:
 * - `inactive` while the unit is not placed or its placement's machine has reported nothing;
 *   so a new unit is `inactive` at once (fleetctl's submit waits for exactly that);
 * - `loaded` once placed and reported by that machine;
 * - `launched` once that machine runs it, or has tried to and systemd says `failed` (fleet's
 *   agent had launched it: fleetctl's `start` then finds it not active and exits 1, where
 *   waiting for a `launched` that never comes would hang it).
 * A Global unit has neither currentState nor machineID: fleetctl waits on its desiredState.
 */
import type { Machine, MachineConfig, Placement, Unit } from '../../proto/flotilla/v1/records.js';
import type { ClusterMirror } from '../../store/index.js';
import { isInvalidUnit, mergedMetadata, type DefinitionCache } from '../view/snapshot.js';
import type { FleetFiles } from './fleet-files.js';

/** fleet's UnitState. */
export interface FleetUnitState {
  readonly name: string;
  readonly hash?: string;
  readonly machineID?: string;
  readonly systemdLoadState?: string;
  readonly systemdActiveState?: string;
  readonly systemdSubState?: string;
}

/** fleet's Machine. */
export interface FleetMachine {
  readonly id: string;
  readonly primaryIP?: string;
  readonly metadata?: Readonly<Record<string, string>>;
}

/** What the model reads: the mirror, parsed files (for Global=) and fleet's view of files. */
export interface FleetModel {
  readonly mirror: ClusterMirror;
  readonly definitions: DefinitionCache;
  readonly files: FleetFiles;
}

/** Active states that mean the placement's machine has launched the unit (see above). */
const LAUNCHED: ReadonlySet<string> = new Set(['active', 'activating', 'reloading', 'failed']);

/** Whether `unit` is a Global unit (`[X-Fleet] Global=true`); false for a file that no longer parses. */
export function isGlobal(model: FleetModel, unit: Unit): boolean {
  const def = model.definitions.shared(unit);
  return !isInvalidUnit(def) && def.fleet.global;
}

/**
 * fleet's Unit of `unit` as JSON: the options spliced in from the cache, so a listing costs no
 * option objects per unit.
 */
export function unitJson(model: FleetModel, unit: Unit): string {
  const { optionsJson } = model.files.of(unit);
  let json = `{"name":${JSON.stringify(unit.name)}`;
  if (optionsJson !== '[]') json += `,"options":${optionsJson}`;
  if (unit.desiredState !== '') json += `,"desiredState":${JSON.stringify(unit.desiredState)}`;
  if (!isGlobal(model, unit)) {
    const { currentState, machineID } = placedState(model.mirror, unit);
    json += `,"currentState":${JSON.stringify(currentState)}`;
    if (machineID !== undefined) json += `,"machineID":${JSON.stringify(machineID)}`;
  }
  return `${json}}`;
}

/** fleet's currentState of a unit that is not Global, and the machine it is placed on. */
export function placedState(
  mirror: ClusterMirror,
  unit: Unit,
): { currentState: 'inactive' | 'loaded' | 'launched'; machineID?: string } {
  const byMachine = mirror.placements.get(unit.name);
  if (byMachine === undefined || byMachine.size === 0) return { currentState: 'inactive' };
  const state = mirror.states.get(unit.name)?.value;
  const onState = state === undefined ? undefined : byMachine.get(state.machine)?.value;
  const placement: Placement | undefined = onState ?? byMachine.values().next().value?.value;
  const machineID = onState !== undefined ? state?.machine : byMachine.keys().next().value;
  if (placement === undefined || machineID === undefined) return { currentState: 'inactive' };
  if (onState === undefined || state === undefined) return { currentState: 'inactive', machineID };
  const launched = LAUNCHED.has(state.activeState) && placement.desiredState === 'launched';
  const running = state.activeState === 'active' || state.activeState === 'activating';
  return { currentState: launched || running ? 'launched' : 'loaded', machineID };
}

/**
 * fleet's UnitStates of `unit`, in machine id order: the state its agent reports, or one per
 * machine that runs a copy of a Global unit. None for a unit no machine reports.
 */
export function unitStates(model: FleetModel, unit: Unit): FleetUnitState[] {
  const { hash } = model.files.of(unit);
  const rows: FleetUnitState[] = [];
  const state = model.mirror.states.get(unit.name)?.value;
  if (state !== undefined) rows.push(stateRow(unit.name, hash, state.machine, state));
  const copies = model.mirror.copies.get(unit.name);
  if (copies !== undefined) {
    const ids = [...copies.keys()].sort();
    for (const id of ids) {
      const copy = copies.get(id)?.value;
      if (copy !== undefined) rows.push(stateRow(unit.name, hash, id, copy));
    }
  }
  return rows;
}

function stateRow(
  name: string,
  hash: string,
  machine: string,
  s: { loadState: string; activeState: string; subState: string },
): FleetUnitState {
  return {
    name,
    hash,
    ...(machine === '' ? {} : { machineID: machine }),
    ...(s.loadState === '' ? {} : { systemdLoadState: s.loadState }),
    ...(s.activeState === '' ? {} : { systemdActiveState: s.activeState }),
    ...(s.subState === '' ? {} : { systemdSubState: s.subState }),
  };
}

/** fleet's Machine: the id, the first address as primaryIP, metadata merged as the planner sees it. */
export function fleetMachine(
  id: string,
  machine: Machine,
  config: MachineConfig | undefined,
): FleetMachine {
  const metadata = mergedMetadata(machine, config);
  const primaryIP = machine.addresses[0] ?? '';
  return {
    id,
    ...(primaryIP === '' ? {} : { primaryIP }),
    ...(Object.keys(metadata).length === 0 ? {} : { metadata }),
  };
}
