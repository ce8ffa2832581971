/**
 * UnitStatus: a unit with where it is placed, what its agent reports, why it is pending, and
 * the state derived from those. Built for a page of units, read at one revision.
 *
 * Placements are keyed by machine (placements/<machine>/<name>), so "where is unit X" has no
 * key of its own. For a page whose names span [first, last] we read, for every candidate
 * machine, the slice placements/<machine>/[first, last]: each slice holds exactly that page's
 * units on that machine, so the work is O(page + machines), independent of how many units the
 * cluster has, and the reads are batched 128 to a transaction. Candidates are the machines
 * the cluster knows at the page's revision (machines/ and machine-metadata/, keys only), the
 * machines the page's states name, and the machines the {@link PlacementMachines} index has
 * seen holding placements (which covers lost machines whose placements are still there).
 * states/ and unscheduled/ are keyed by unit name like units/, so each is one range read over
 * the same span; the span over states/ runs on past the last name's key to take in
 * states/<last>/<machine>, where each machine reports its copy of a Global unit (those keys
 * sort right after states/<name>, so the copies of every other unit of the page are inside).
 */
import type { Placement, Unit, UnitState, Unscheduled } from '../../proto/flotilla/v1/records.js';
import type { GlobalInstance, UnitStatus } from '../../proto/flotilla/v1/units.js';
import { codecs, type KeyValue, type Keys, type Store } from '../../store/index.js';
import { isInvalidUnit, type DefinitionCache } from '../snapshot.js';
import {
  getAt,
  knownMachines,
  lastSegment,
  prefixEnd,
  rangeAt,
  rangesAt,
  spanEnd,
  type KeyRange,
} from './reads.js';

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

/** Whether `unit`'s file says `Global=true` (false when it does not parse). */
function isGlobalUnit(unit: Unit, definitions: DefinitionCache): boolean {
  const def = definitions.get(unit);
  return !isInvalidUnit(def) && def.fleet.global;
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
  if (isGlobalUnit(unit, definitions)) return composeGlobal(unit, extras);
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
 * Extras of `names` (sorted, as a page of units/ is) at `revision`, by spans over states/,
 * unscheduled/ and each candidate machine's placements (see the module comment).
 */
export async function extrasBySpan(
  store: Store,
  names: readonly string[],
  revision: bigint,
  candidates: Iterable<string>,
): Promise<UnitExtras> {
  const extras = emptyExtras();
  const first = names[0];
  const last = names[names.length - 1];
  if (first === undefined || last === undefined) return extras;
  const wanted = new Set(names);
  const span = (key: (n: string) => string) => ({ start: key(first), end: spanEnd(key(last)) });
  // states/<first> up to and including states/<last>/<every machine>.
  const statesSpan = {
    start: store.keys.state(first),
    end: prefixEnd(`${store.keys.state(last)}/`),
  };
  const [states, pending] = await Promise.all([
    rangeAt(store, statesSpan, { revision }),
    rangeAt(
      store,
      span((n) => store.keys.unscheduled(n)),
      { revision },
    ),
  ]);
  addStates(store.keys, extras, states.kvs, wanted);
  addUnscheduled(extras, pending.kvs, wanted);
  const machines = await knownMachines(store, revision);
  for (const s of extras.states.values()) if (s.machine !== '') machines.add(s.machine);
  for (const byMachine of extras.copies.values()) for (const m of byMachine.keys()) machines.add(m);
  for (const m of candidates) machines.add(m);
  const ids = [...machines].sort();
  const ranges: KeyRange[] = ids.map((m) => span((n) => store.keys.placement(m, n)));
  const { results } = await rangesAt(store, ranges, revision);
  results.forEach((kvs, i) => addPlacements(extras, kvs, ids[i] ?? '', wanted));
  return extras;
}

/**
 * Units, states and pending reasons of `names` at `revision` by direct gets, for pages whose
 * names are not contiguous in units/ (a listing driven by one machine's placements): of a
 * Global unit, only `machine`'s copy is read.
 */
export async function recordsByKeys(
  store: Store,
  names: readonly string[],
  revision: bigint,
  machine: string,
): Promise<{ units: Map<string, Unit>; extras: UnitExtras }> {
  const keys = names.flatMap((n) => [
    store.keys.unit(n),
    store.keys.state(n),
    store.keys.globalState(n, machine),
    store.keys.unscheduled(n),
  ]);
  const { values } = await getAt(store, keys, revision);
  const wanted = new Set(names);
  const extras = emptyExtras();
  const units = new Map<string, Unit>();
  const found = [...values.values()];
  for (const kv of found) {
    const parsed = store.keys.parse(kv.key);
    if (parsed?.kind === 'unit') units.set(parsed.name, codecs.unit.decode(kv.key, kv.value));
  }
  addStates(
    store.keys,
    extras,
    found.filter((kv) => store.keys.parse(kv.key)?.kind === 'state'),
    wanted,
  );
  addUnscheduled(
    extras,
    found.filter((kv) => store.keys.parse(kv.key)?.kind === 'unscheduled'),
    wanted,
  );
  return { units, extras };
}

/** Adds placement key-values of `machine` to `extras`, for the `wanted` units only. */
export function addPlacements(
  extras: UnitExtras,
  kvs: readonly KeyValue[],
  machine: string,
  wanted: ReadonlySet<string>,
): void {
  for (const kv of kvs) {
    const name = lastSegment(kv.key);
    if (!wanted.has(name)) continue;
    const p = codecs.placement.decode(kv.key, kv.value);
    const placement = { ...p, unit: name, machine };
    const list = extras.placements.get(name);
    if (list === undefined) extras.placements.set(name, [placement]);
    else list.push(placement);
  }
}

/** Adds state key-values (a unit's own, or a Global unit's copies) of the `wanted` units. */
function addStates(
  keys: Keys,
  extras: UnitExtras,
  kvs: readonly KeyValue[],
  wanted: ReadonlySet<string>,
): void {
  for (const kv of kvs) {
    const parsed = keys.parse(kv.key);
    if (parsed?.kind !== 'state' || !wanted.has(parsed.name)) continue;
    const state = codecs.state.decode(kv.key, kv.value);
    if (parsed.machine === undefined) {
      extras.states.set(parsed.name, state);
      continue;
    }
    let byMachine = extras.copies.get(parsed.name);
    if (byMachine === undefined) extras.copies.set(parsed.name, (byMachine = new Map()));
    byMachine.set(parsed.machine, state);
  }
}

function addUnscheduled(
  extras: UnitExtras,
  kvs: readonly KeyValue[],
  wanted: ReadonlySet<string>,
): void {
  for (const kv of kvs) {
    const name = lastSegment(kv.key);
    if (wanted.has(name)) extras.unscheduled.set(name, codecs.unscheduled.decode(kv.key, kv.value));
  }
}
