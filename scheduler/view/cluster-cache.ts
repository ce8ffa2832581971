/**
 * The leader's view of the cluster, kept on the replica's one {@link ClusterMirror} (which the
 * API serves from too). Every replica keeps it warm, leader or not, so a newly elected leader
 * plans at once. What a pass needs is kept current change by change: each machine as the
 * planner sees it (metadata merged, drained), each active unit parsed once per version. A
 * view therefore costs one walk over the records in name order, never a parse or a sort of
 * the whole cluster; and changes that cannot change a plan (agents' states) wake nobody.
 */
import type { Logger } from 'pino';
import type { Placement, Unscheduled } from '../../proto/flotilla/v1/records.js';
import type { ReschedulingPause } from '../../proto/flotilla/v1/machines.js';
import {
  Listeners,
  type CacheEntry,
  type ClusterMirror,
  type KeyKind,
  type Store,
  type Unsubscribe,
} from '../../store/index.js';
import {
  CHEAP_ITEMS,
  runToEnd,
  type PlannerMachine,
  type PlannerUnit,
  type Steps,
} from '../planner/index.js';
import {
  activeDesired,
  DefinitionCache,
  isInvalidUnit,
  toPlannerMachine,
  toPlannerUnit,
  type ActiveUnit,
  type BuiltSnapshot,
  type InvalidUnit,
} from './snapshot.js';

/** What changed, as far as planning is concerned. */
export interface ClusterChange {
  readonly kinds: ReadonlySet<KeyKind | 'other'>;
  /** True for a listing (the first, or a re-list after a compaction). */
  readonly resync: boolean;
}

/** A machine appeared or vanished (its presence key was written or deleted). */
export type MachineEvent =
  { readonly type: 'seen'; readonly id: string } | { readonly type: 'lost'; readonly id: string };

/** One pass's view: the planner's snapshot and the entries needed for compare-and-swap. */
export interface ClusterView extends BuiltSnapshot {
  /** Unit name -> machine id -> the placement entry (with its mod revision). */
  readonly placements: ReadonlyMap<string, ReadonlyMap<string, CacheEntry<Placement>>>;
  /** Unit name -> its unscheduled/ entry. */
  readonly unscheduled: ReadonlyMap<string, CacheEntry<Unscheduled>>;
  /** The mirror's revision when the view's walk began. */
  readonly revision: bigint;
}

/** Kinds whose changes can change a plan (states and unscheduled records cannot). */
const PLANNING_KINDS: ReadonlySet<KeyKind | 'other'> = new Set([
  'unit',
  'machine',
  'machine-metadata',
  'placement',
  'control',
]);

/**
 * Units the view walks between checkpoints: fewer than elsewhere, since each new version of a
 * unit is parsed on the way (tens of microseconds each, more on a loaded host).
 */
const VIEW_UNITS = 64;

/** A unit as the planner sees it, memoised per record version. */
type Planned =
  | { readonly modRevision: bigint; readonly unit: PlannerUnit; readonly active: ActiveUnit }
  | { readonly modRevision: bigint; readonly invalid: InvalidUnit }
  | { readonly modRevision: bigint; readonly skip: true };

/** The leader's view of the replica's mirror. */
export class ClusterCache {
  private readonly definitions = new DefinitionCache();
  private readonly changes = new Listeners<ClusterChange>();
  private readonly machineEvents = new Listeners<MachineEvent>();
  private readonly reported = new Set<string>();
  /** Planner machines, rebuilt for a machine when its record or its config changes. */
  private readonly plannerMachines = new Map<string, PlannerMachine>();
  private sortedMachines: PlannerMachine[] | undefined;
  private readonly planned = new Map<string, Planned>();
  /**
   * Units whose records were deleted since the last view, while nothing else that may change
   * a plan changed (deleted placements aside: they only free room); undefined once anything
   * else did, or before the first view.
   */
  private vanished: Set<string> | undefined;
  private readonly unsubscribe: Unsubscribe;

  constructor(
    private readonly store: Store,
    readonly mirror: ClusterMirror,
    private readonly logger: Logger,
  ) {
    this.unsubscribe = mirror.on((e) => {
      const kinds = new Set<KeyKind | 'other'>();
      if (e.resync) this.vanished = undefined;
      for (const c of e.changes) {
        kinds.add(c.kind);
        this.noteVanished(c.kind, c.change.type, c.parsed?.name);
        if (c.kind === 'machine' || c.kind === 'machine-metadata')
          this.machineChanged(c.parsed?.name);
        if (c.kind === 'machine' && c.parsed !== undefined) {
          const { change } = c;
          if (change.type === 'delete')
            this.machineEvents.emit({ type: 'lost', id: c.parsed.name });
          else if (change.prev === undefined)
            this.machineEvents.emit({ type: 'seen', id: c.parsed.name });
        }
      }
      if ([...kinds].some((k) => PLANNING_KINDS.has(k)))
        this.changes.emit({ kinds, resync: e.resync });
    });
  }

  /** Resolves once the mirror has listed the cluster. */
  ready(): Promise<void> {
    return this.mirror.ready();
  }

  /** Calls `fn` on every change that may change a plan (units, machines, metadata, placements). */
  onChange(fn: (change: ClusterChange) => void): Unsubscribe {
    return this.changes.on(fn);
  }

  /** Calls `fn` when a machine appears or vanishes, including those a re-list discovers. */
  onMachine(fn: (event: MachineEvent) => void): Unsubscribe {
    return this.machineEvents.on(fn);
  }

  /** Ids of the machines present now. */
  liveMachines(): string[] {
    return [...this.mirror.machines.keys()];
  }

  /** How many machines are present now. */
  machineCount(): number {
    return this.mirror.machines.size;
  }

  /** How many units hold at least one placement. */
  placedUnits(): number {
    return this.mirror.placements.size;
  }

  /** The operator's request to end a rescheduling pause, if one is waiting. */
  resumeRequest(): CacheEntry<ReschedulingPause> | undefined {
    return this.mirror.control.get(this.store.keys.resumeRescheduling());
  }

  /**
   * Waits until the mirror holds everything etcd holds now: a new leader calls this before its
   * first pass, so it sees every placement its predecessor wrote.
   */
  async catchUp(timeoutMs = 20_000): Promise<void> {
    await this.mirror.waitFor(await this.store.revision(), timeoutMs);
  }

  /** Resolves once the mirror shows `revision` (a pass's own writes). */
  waitFor(revision: bigint, timeoutMs?: number): Promise<void> {
    return this.mirror.waitFor(revision, timeoutMs);
  }

  /**
   * The units deleted since the last view or sweep when that is all that changed meanwhile
   * (a sweep then unplaces them without planning, see leader/engine.ts), taken: later calls
   * see only later deletions. Undefined when a pass must plan.
   */
  takeVanished(): string[] | undefined {
    if (this.vanished === undefined || this.vanished.size === 0) return undefined;
    const names = [...this.vanished];
    this.vanished.clear();
    return names;
  }

  /** The view one pass plans from: one walk over units and placements in the mirror. */
  view(): ClusterView {
    return runToEnd(this.viewSteps());
  }

  /**
   * {@link view} as steps, a checkpoint every {@link CHEAP_ITEMS} units or placements, for a
   * leader that builds it in slices of time while the mirror keeps changing. Safe because only
   * the leader writes placements: a unit created between two slices has none (it is simply
   * planned next pass), one changed or deleted is planned as it was (likewise), and the view's
   * `revision` is the mirror's when the walk began, so a placement written meanwhile is one
   * `decideWorkSteps` never decides about (`staleAfter`). Machines are taken at once.
   */
  *viewSteps(): Steps<ClusterView> {
    this.vanished = new Set();
    const { mirror } = this;
    const revision = mirror.revision;
    const machines = this.machinesSorted();
    const units: PlannerUnit[] = [];
    const active = new Map<string, ActiveUnit>();
    const invalid: InvalidUnit[] = [];
    const hidden = new Set<string>();
    const seen = this.planned.size > mirror.units.size * 2 ? new Set<string>() : undefined;
    // The units' B-tree may not change under an open iterator: each slice opens a new one
    // after the last name walked.
    let after: string | undefined;
    for (let more = true; more;) {
      more = false;
      let walked = 0;
      for (const [name, entry] of mirror.units.entries(after)) {
        if (name === after) continue;
        if (walked++ === VIEW_UNITS) {
          more = true;
          break;
        }
        after = name;
        seen?.add(name);
        let p = this.planned.get(name);
        if (p === undefined || p.modRevision !== entry.modRevision) {
          p = this.plan(name, entry.value, entry.modRevision);
          this.planned.set(name, p);
        }
        if ('unit' in p) {
          units.push(p.unit);
          active.set(name, p.active);
        } else if ('invalid' in p) {
          invalid.push(p.invalid);
          hidden.add(name);
        }
      }
      if (more) yield;
    }
    if (seen !== undefined)
      for (const name of this.planned.keys()) if (!seen.has(name)) this.planned.delete(name);
    const placements = new Map<string, string[]>();
    let n = 0;
    for (const [name, byMachine] of mirror.placements) {
      if (++n % CHEAP_ITEMS === 0) yield;
      if (!hidden.has(name)) placements.set(name, [...byMachine.keys()].sort());
    }
    const built = { snapshot: { machines, units, placements }, active, invalid };
    this.reportInvalid(built);
    return {
      ...built,
      placements: mirror.placements,
      unscheduled: mirror.unscheduled,
      revision,
    };
  }

  /** Stops following the mirror (the mirror's owner closes it). */
  close(): void {
    this.unsubscribe();
    this.changes.clear();
    this.machineEvents.clear();
  }

  private plan(
    name: string,
    unit: Parameters<typeof activeDesired>[0],
    modRevision: bigint,
  ): Planned {
    const desired = activeDesired(unit);
    if (desired === undefined) return { modRevision, skip: true };
    const def = this.definitions.get(unit.name === name ? unit : { ...unit, name });
    if (isInvalidUnit(def)) return { modRevision, invalid: def };
    if (def.name.isTemplate) return { modRevision, skip: true };
    return {
      modRevision,
      unit: toPlannerUnit(def, desired),
      active: { name, hash: unit.hash, desired },
    };
  }

  private noteVanished(kind: KeyKind | 'other', type: 'put' | 'delete', name?: string): void {
    if (this.vanished === undefined || !PLANNING_KINDS.has(kind)) return;
    if (kind === 'unit' && type === 'delete' && name !== undefined) this.vanished.add(name);
    else if (kind !== 'placement' || type !== 'delete') this.vanished = undefined;
  }

  private machineChanged(id: string | undefined): void {
    if (id === undefined) return;
    this.sortedMachines = undefined;
    const machine = this.mirror.machines.get(id);
    if (machine === undefined) this.plannerMachines.delete(id);
    else
      this.plannerMachines.set(
        id,
        toPlannerMachine(id, machine.value, this.mirror.configs.get(id)?.value),
      );
  }

  private machinesSorted(): PlannerMachine[] {
    this.sortedMachines ??= [...this.mirror.machines.keys()].flatMap((id) => {
      let m = this.plannerMachines.get(id);
      if (m === undefined) {
        const entry = this.mirror.machines.get(id);
        if (entry === undefined) return [];
        m = toPlannerMachine(id, entry.value, this.mirror.configs.get(id)?.value);
        this.plannerMachines.set(id, m);
      }
      return [m];
    });
    return this.sortedMachines;
  }

  /** Logs each unparseable unit version once, not on every pass. */
  private reportInvalid(built: BuiltSnapshot): void {
    for (const u of built.invalid) {
      const key = `${u.name}\u0000${u.problem}`;
      if (this.reported.has(key)) continue;
      if (this.reported.size > 10_000) this.reported.clear();
      this.reported.add(key);
      this.logger.error(
        { unit: u.name, problem: u.problem },
        'stored unit file does not parse; leaving it alone',
      );
    }
  }
}
