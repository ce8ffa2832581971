/**
 * A unit as flotctl follows it while it waits: its record, placements, agent state and pending
 * reasons, seeded from a ListUnits answer read at some revision and then kept current by the
 * Events.Watch stream from that revision + 1. The derived state is the API's own rule
 * (scheduler/api/unit-status.ts), so what flotctl waits for is what `list-units` shows. A
 * Global unit's copies report each on their own machine: the view keeps one state per machine
 * for them (the state events of a copy name its machine).
 */
import type { Event } from '../proto/flotilla/v1/events.js';
import type { Placement, Unit, UnitState, Unscheduled } from '../proto/flotilla/v1/records.js';
import type { UnitStatus } from '../proto/flotilla/v1/units.js';
import { inSpans, instanceNumber } from '../lib/number-ranges.js';
import { parseUnitName } from '../unit/names.js'; // not the index: see client.ts
import { machineLegend, type MachineAddresses } from './table.js';

/** What a waiting verb waits for: a derived state, or the unit gone with its container. */
export type Target = 'launched' | 'loaded' | 'inactive' | 'gone';

/** Agent states the API counts as running (its `launched`). */
const RUNNING: ReadonlySet<string> = new Set(['active', 'activating', 'reloading']);
/** Agent states in which the container is surely stopped. */
const STOPPED: ReadonlySet<string> = new Set(['inactive', 'failed', '']);

/** One unit's records, current as of the last event applied. */
export class UnitView {
  unit: Unit | undefined;
  /** Set when the unit's record was deleted while it was followed. */
  destroyed = false;
  readonly placements = new Map<string, Placement>();
  state: UnitState | undefined;
  /** Whether the unit is Global, as its file said when last seen (kept once it is destroyed). */
  global = false;
  /** A Global unit's copies: machine id -> that machine's state. */
  readonly copies = new Map<string, UnitState>();
  /** Revision of the last state event; 0 when the state came from the listing. */
  stateRevision = 0n;
  /** The template of a numbered instance, whose shared pending record may list it. */
  readonly template: string | undefined;
  /** Pending reasons: the unit's own record, its template's (if it lists it), the listing's. */
  private readonly pending: {
    own?: { value: Unscheduled; revision: bigint } | undefined;
    shared?: { value: Unscheduled; revision: bigint } | undefined;
    listed?: Unscheduled | undefined;
  } = {};

  /** `since`: the listing's revision; events at or below it are already in the view. */
  constructor(
    readonly name: string,
    readonly since: bigint,
  ) {
    this.template = instanceNumber(name) === undefined ? undefined : templateOfInstance(name);
  }

  /**
   * Why the unit waits, if the leader says it does: its own `unscheduled/` record, else its
   * template's shared record when that lists it (docs/architecture.md, "Pending costs one
   * record per template"), else what the listing said.
   */
  get unscheduled(): Unscheduled | undefined {
    const { own, shared, listed } = this.pending;
    return own?.value ?? shared?.value ?? listed;
  }

  /** Revision of the unscheduled event that said so; 0 when it came from the listing. */
  get unscheduledRevision(): bigint {
    const { own, shared } = this.pending;
    return own?.revision ?? shared?.revision ?? 0n;
  }

  /** A view of `name` from its ListUnits entry (undefined when it is not submitted). */
  static fromStatus(name: string, status: UnitStatus | undefined, revision: bigint): UnitView {
    const view = new UnitView(name, revision);
    if (status === undefined) return view;
    view.unit = status.unit;
    view.global = status.global;
    if (status.placement !== undefined) {
      view.placements.set(status.placement.machine, status.placement);
    }
    view.state = status.state;
    for (const copy of status.instances) {
      if (copy.placement === undefined) continue;
      view.placements.set(copy.placement.machine, copy.placement);
      if (copy.state !== undefined) view.copies.set(copy.placement.machine, copy.state);
    }
    if (status.unscheduled !== undefined) view.pending.listed = status.unscheduled;
    return view;
  }

  /** Applies one event of this unit; returns whether it changed anything. */
  apply(ev: Event): boolean {
    if (ev.revision <= this.since) return false;
    if (ev.kind === 'unscheduled' && ev.name === this.template && this.template !== undefined) {
      return this.applyShared(ev);
    }
    if (ev.name !== this.name) return false;
    const put = ev.type === 'put';
    switch (ev.kind) {
      case 'unit':
        this.unit = put ? ev.unit : undefined;
        if (put) this.global = ev.global;
        this.destroyed = !put;
        return true;
      case 'placement':
        if (put && ev.placement !== undefined) this.placements.set(ev.machine, ev.placement);
        else this.placements.delete(ev.machine);
        return true;
      case 'state':
        if (this.global && ev.machine !== '') {
          if (put && ev.state !== undefined) this.copies.set(ev.machine, ev.state);
          else this.copies.delete(ev.machine);
        } else if (put) {
          this.state = ev.state;
        } else if (ev.machine === '' || ev.machine === this.state?.machine) {
          // Each machine reports under its own key: the old machine's record going, after
          // the unit moved, leaves the new machine's report in place.
          this.state = undefined;
        }
        this.stateRevision = ev.revision;
        return true;
      case 'unscheduled':
        this.pending.listed = undefined;
        this.pending.own =
          put && ev.unscheduled !== undefined
            ? { value: ev.unscheduled, revision: ev.revision }
            : undefined;
        return true;
      default:
        return false;
    }
  }

  /** An event of the template's shared pending record: does it list this instance? */
  private applyShared(ev: Event): boolean {
    const record = ev.type === 'put' ? ev.unscheduled : undefined;
    const n = instanceNumber(this.name);
    const listed = record !== undefined && n !== undefined && inSpans(record.waitingRanges, n);
    this.pending.listed = undefined;
    this.pending.shared = listed
      ? {
          value: { ...record, unit: this.name, waiting: 0, waitingRanges: [] },
          revision: ev.revision,
        }
      : undefined;
    return true;
  }

  /** The placement shown: the one on the reporting agent's machine, else the first. */
  get placement(): Placement | undefined {
    const onState = this.state === undefined ? undefined : this.placements.get(this.state.machine);
    return onState ?? this.placements.values().next().value;
  }

  /**
   * The API's derived state: inactive (no placement), launched (running there), or loaded. A
   * Global unit is launched when every placed copy runs.
   */
  get currentState(): 'inactive' | 'loaded' | 'launched' {
    const p = this.placement;
    if (p === undefined) return 'inactive';
    if (this.global) {
      const runs = (m: string): boolean => RUNNING.has(this.copies.get(m)?.activeState ?? '');
      return [...this.placements.keys()].every(runs) ? 'launched' : 'loaded';
    }
    const s = this.state;
    return s !== undefined && s.machine === p.machine && RUNNING.has(s.activeState)
      ? 'launched'
      : 'loaded';
  }

  /** Whether the container may still run somewhere (its agent reports it not stopped). */
  get mayRun(): boolean {
    const states = [...this.copies.values()];
    if (this.state !== undefined) states.push(this.state);
    return states.some((s) => !STOPPED.has(s.activeState));
  }

  /** Whether the agent runs the current file (when both sides say which one). */
  get runsCurrentHash(): boolean {
    const want = this.unit?.hash ?? '';
    const have = this.state?.hash ?? '';
    return want === '' || have === '' || want === have;
  }

  /** Whether the unit is where `target` wants it. */
  reached(target: Target): boolean {
    switch (target) {
      case 'launched':
        // Active, not just activating: a unit that fails at once is never "launched".
        return (
          this.currentState === 'launched' &&
          this.state?.activeState === 'active' &&
          this.runsCurrentHash
        );
      case 'loaded':
        return this.currentState === 'loaded' && !this.runsOnPlacement();
      case 'inactive':
        return this.placements.size === 0 && !this.mayRun;
      case 'gone':
        return this.unit === undefined && this.placements.size === 0 && !this.mayRun;
    }
  }

  /** The agent reports the unit failed (not restarting) on its placement's machine. */
  get failedOnPlacement(): boolean {
    const p = this.placement;
    return (
      p !== undefined && this.state?.machine === p.machine && this.state.activeState === 'failed'
    );
  }

  /** Where the unit is and how it is, in a few words, for progress and timeout messages. */
  describe(addresses: MachineAddresses): string {
    if (this.unit === undefined) return 'not submitted';
    const p = this.placement;
    if (p === undefined) {
      if (this.unscheduled !== undefined) return `pending: ${this.unscheduled.summary}`;
      return this.mayRun ? `stopping (${activeText(this.state)})` : 'not placed yet';
    }
    if (this.global) {
      const n = this.placements.size;
      const running = [...this.copies.values()].filter((s) => RUNNING.has(s.activeState));
      return `placed on ${n} machine${n === 1 ? '' : 's'}, running on ${running.length}`;
    }
    const where = `on ${machineLegend(p.machine, addresses, false)}`;
    const s = this.state;
    if (s === undefined || s.machine !== p.machine) return `placed ${where}, not reported yet`;
    return `${activeText(s)} ${where}`;
  }

  private runsOnPlacement(): boolean {
    const p = this.placement;
    return p !== undefined && this.state?.machine === p.machine && this.mayRun;
  }
}

/** `active/running`, or `-` when there is no state. */
export function activeText(state: UnitState | undefined): string {
  if (state === undefined || state.activeState === '') return '-';
  return state.subState === '' ? state.activeState : `${state.activeState}/${state.subState}`;
}

/** Why a failed unit failed: the agent's message, else its exit status or signal. */
export function failureText(state: UnitState | undefined): string {
  if (state === undefined) return 'failed';
  if (state.message !== '') return state.message;
  if (state.exitSignal !== '') return `killed by ${state.exitSignal}`;
  if (state.exitStatus > 0) return `exit status ${state.exitStatus}`;
  return 'failed';
}

/** `web@7.service` -> `web@.service`; undefined for a name that does not parse. */
function templateOfInstance(name: string): string | undefined {
  try {
    const parsed = parseUnitName(name);
    return parsed.isInstance ? parsed.template : undefined;
  } catch {
    return undefined;
  }
}

/** Ranges a {@link waitingText} names before it counts the rest. */
const SHOWN_RANGES = 3;

/**
 * The instances a template's shared pending record lists, in a few words:
 * `99,994 instances wait: api@{7..100000}.service`. Empty for any other record.
 */
export function waitingText(record: Unscheduled): string {
  if (record.waiting <= 0) return '';
  const at = record.unit.indexOf('@');
  const head = record.unit.slice(0, at + 1);
  const tail = record.unit.slice(at + 1);
  const shown = record.waitingRanges
    .slice(0, SHOWN_RANGES)
    .map((r) => (r.first === r.last ? `${r.first}` : `${r.first}..${r.last}`));
  const more = record.waitingRanges.length - shown.length;
  const which =
    shown.length === 1 && !shown[0]?.includes('..')
      ? `${head}${shown[0] ?? ''}${tail}`
      : `${head}{${shown.join(',')}}${tail}`;
  const n = record.waiting;
  const many = n === 1 ? '1 instance waits' : `${n.toLocaleString('en-US')} instances wait`;
  return `${many}: ${which}${more > 0 ? ` and ${more} more ranges` : ''}`;
}
