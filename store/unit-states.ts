/**
 * The mirror's index of unit states. Each agent reports under its own machine's keys
 * (`unit-states/<machine>/<name>`, store/keys.ts), so while a unit that is not Global moves,
 * two machines may report it for a moment: the old one until it has stopped it, the new one
 * from its start. {@link PlacedStates.get} answers "the" state of such a unit the way the one
 * shared record of earlier versions did: the report of the machine it is placed on, else the
 * latest report. Records of earlier versions (`states/<name>`, `states/<name>/<machine>`) are
 * filed alongside, by the machine their value (or key) names.
 *
 * A deletion removes an entry only if the entry came from the deleted key: an agent that
 * rewrites its old-form record under the new key and then deletes the old one (or the reverse)
 * never leaves the index without the record that still exists.
 */
import type { UnitState } from '../proto/flotilla/v1/records.js';
import type { CacheEntry } from './cache.js';

type Entry = CacheEntry<UnitState>;

/** Sets `map[outer][inner]` to `value`, or deletes it (and an emptied inner map) when undefined. */
export function setNested<V>(
  map: Map<string, Map<string, V>>,
  outer: string,
  inner: string,
  value: V | undefined,
): void {
  let byInner = map.get(outer);
  if (value !== undefined) {
    if (byInner === undefined) map.set(outer, (byInner = new Map()));
    byInner.set(inner, value);
  } else if (byInner !== undefined) {
    byInner.delete(inner);
    if (byInner.size === 0) map.delete(outer);
  }
}

/**
 * {@link setNested} for entries filed from two keys (a record's old and new form): a deletion
 * removes only the entry its own key filed.
 */
export function fileByKey<V extends { readonly key: string }>(
  map: Map<string, Map<string, V>>,
  outer: string,
  inner: string,
  key: string,
  value: V | undefined,
): void {
  if (value === undefined && map.get(outer)?.get(inner)?.key !== key) return;
  setNested(map, outer, inner, value);
}

/** The states of units that are not Global, by the machines that report them. */
export class PlacedStates {
  /** Unit name -> reporting machine -> entry. */
  readonly byMachine = new Map<string, Map<string, Entry>>();

  constructor(
    /** Unit name -> machine id -> placement (the mirror's own index). */
    private readonly placements: ReadonlyMap<string, ReadonlyMap<string, unknown>>,
  ) {}

  /**
   * The state of `name`: the report of a machine it is placed on, else the latest report.
   * O(machines reporting it): one, or two while it moves.
   */
  get(name: string): Entry | undefined {
    const reports = this.byMachine.get(name);
    if (reports === undefined) return undefined;
    const placed = this.placements.get(name);
    let latest: Entry | undefined;
    // By key, not by entry: no [machine, entry] pair per report (a wait's count asks for
    // every instance's state twice a second).
    for (const machine of reports.keys()) {
      const e = reports.get(machine) as Entry;
      if (placed?.has(machine) === true) return e;
      if (latest === undefined || e.modRevision > latest.modRevision) latest = e;
    }
    return latest;
  }

  /** Files a put (`value`) or a deletion of `key`, reported by `machine`. */
  file(name: string, machine: string, key: string, value: Entry | undefined): void {
    fileByKey(this.byMachine, name, machine, key, value);
  }
}
