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
 * the same span.
 */
import type { Placement, Unit, UnitState, Unscheduled } from '../../proto/flotilla/v1/records.js';
import type { UnitStatus } from '../../proto/flotilla/v1/units.js';
import { codecs, type KeyValue, type Store } from '../../store/index.js';
import {
  getAt,
  knownMachines,
  lastSegment,
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
  readonly states: Map<string, UnitState>;
  readonly unscheduled: Map<string, Unscheduled>;
}

/**
 * Derived state, DESIGN.md's three: inactive (no placement), launched (its agent reports it
 * running on the placement's machine), loaded (placed, otherwise). Of a Global unit's
 * placements, the one on the reporting agent's machine is shown, else the first by machine.
 */
export function composeStatus(unit: Unit, extras: UnitExtras): UnitStatus {
  const placements = extras.placements.get(unit.name) ?? [];
  const state = extras.states.get(unit.name);
  const placement = placements.find((p) => p.machine === state?.machine) ?? placements[0];
  const unscheduled = extras.unscheduled.get(unit.name);
  let currentState = 'inactive';
  if (placement !== undefined) {
    const running =
      state !== undefined &&
      state.machine === placement.machine &&
      RUNNING_STATES.has(state.activeState);
    currentState = running ? 'launched' : 'loaded';
  }
  return {
    unit,
    ...(placement === undefined ? {} : { placement }),
    ...(state === undefined ? {} : { state }),
    ...(placement === undefined && unscheduled !== undefined ? { unscheduled } : {}),
    currentState,
    instances: [],
  };
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
  const extras: UnitExtras = { placements: new Map(), states: new Map(), unscheduled: new Map() };
  const first = names[0];
  const last = names[names.length - 1];
  if (first === undefined || last === undefined) return extras;
  const wanted = new Set(names);
  const span = (key: (n: string) => string) => ({ start: key(first), end: spanEnd(key(last)) });
  const [states, pending] = await Promise.all([
    rangeAt(
      store,
      span((n) => store.keys.state(n)),
      { revision },
    ),
    rangeAt(
      store,
      span((n) => store.keys.unscheduled(n)),
      { revision },
    ),
  ]);
  addStates(extras, states.kvs, wanted);
  addUnscheduled(extras, pending.kvs, wanted);
  const machines = await knownMachines(store, revision);
  for (const s of extras.states.values()) if (s.machine !== '') machines.add(s.machine);
  for (const m of candidates) machines.add(m);
  const ids = [...machines].sort();
  const ranges: KeyRange[] = ids.map((m) => span((n) => store.keys.placement(m, n)));
  const { results } = await rangesAt(store, ranges, revision);
  results.forEach((kvs, i) => addPlacements(extras, kvs, ids[i] ?? '', wanted));
  return extras;
}

/**
 * Units, states and pending reasons of `names` at `revision` by direct gets, for pages whose
 * names are not contiguous in units/ (a listing driven by one machine's placements).
 */
export async function recordsByKeys(
  store: Store,
  names: readonly string[],
  revision: bigint,
): Promise<{ units: Map<string, Unit>; extras: UnitExtras }> {
  const keys = names.flatMap((n) => [
    store.keys.unit(n),
    store.keys.state(n),
    store.keys.unscheduled(n),
  ]);
  const { values } = await getAt(store, keys, revision);
  const wanted = new Set(names);
  const extras: UnitExtras = { placements: new Map(), states: new Map(), unscheduled: new Map() };
  const units = new Map<string, Unit>();
  const found = [...values.values()];
  for (const kv of found) {
    const parsed = store.keys.parse(kv.key);
    if (parsed?.kind === 'unit') units.set(parsed.name, codecs.unit.decode(kv.key, kv.value));
  }
  addStates(
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

function addStates(extras: UnitExtras, kvs: readonly KeyValue[], wanted: ReadonlySet<string>) {
  for (const kv of kvs) {
    const name = lastSegment(kv.key);
    if (wanted.has(name)) extras.states.set(name, codecs.state.decode(kv.key, kv.value));
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
