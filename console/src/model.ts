/**
 * The page's own model of the cluster: machines, units, pending units and rollouts, filled by
 * the listings and kept current by the event stream's batches. Every change marks what it
 * touched (the machines whose tiles must be redrawn, whether the grouping changed), so a view
 * redraws what changed, never the whole cluster per event. DOM-free: the tests run it in Node.
 */
import type {
  EventJson,
  MachineStatusJson,
  RolloutJson,
  UnitStateJson,
  UnitStatusJson,
} from './types.js';

/** What a unit's cell on the map shows. */
export type CellState = 'running' | 'changing' | 'failed' | 'unhealthy' | 'stopped';

/** The part of a unit's state the console shows. */
export interface StateLite {
  readonly machine: string;
  readonly load: string;
  readonly active: string;
  readonly sub: string;
  readonly health: string;
  readonly restarts: number;
}

export interface UnitRow {
  readonly name: string;
  /** `web@.service` for `web@3.service`; '' for a unit that is no instance. */
  readonly template: string;
  desired: string;
  global: boolean;
  /** The machine of its placement ('' while unplaced); Global units use `copies`. */
  machine: string;
  state: StateLite | undefined;
  /** A Global unit: machine -> that copy's state (undefined until reported). */
  copies: Map<string, StateLite | undefined> | undefined;
  /** The planner's reason while it waits for a machine; '' when it does not. */
  pending: string;
}

export interface MachineRow {
  readonly id: string;
  /** The agent's metadata with the API's (machine-metadata/) merged over it. */
  metadata: Record<string, string>;
  agentMetadata: Record<string, string>;
  configMetadata: Record<string, string>;
  address: string;
  cpuMillicores: number;
  memoryBytes: number;
  reservedCpu: number;
  reservedMemory: number;
  drained: boolean;
  lost: boolean;
  /** Names of the units placed on it, Global copies included. */
  readonly units: Set<string>;
}

export interface PendingRow {
  readonly name: string;
  readonly summary: string;
  /** Instances waiting alike under this one record (0 for a single unit). */
  readonly waiting: number;
}

/** How many events the feed keeps (the event page, a unit's recent events). */
export const RECENT_EVENTS = 1_000;

/** The template of an instance name: `web@3.service` -> `web@.service`. */
export function templateOf(name: string): string {
  const at = name.indexOf('@');
  const dot = name.lastIndexOf('.');
  if (at < 0 || dot < at) return '';
  return at + 1 === dot ? '' : `${name.slice(0, at + 1)}${name.slice(dot)}`;
}

function stateLite(s: UnitStateJson | undefined, machine?: string): StateLite | undefined {
  if (s === undefined) return undefined;
  return {
    machine: s.machine ?? machine ?? '',
    load: s.loadState ?? '',
    active: s.activeState ?? '',
    sub: s.subState ?? '',
    health: s.health ?? '',
    restarts: s.restarts ?? 0,
  };
}

/** Whether `name` is a template (`web@.service`), not a unit that runs. */
export function isTemplateName(name: string): boolean {
  return /@\.[^.@]+$/.test(name);
}

/** The colour class of one copy of a unit on one machine. */
export function cellState(unit: UnitRow, machine: string): CellState {
  const st = unit.global ? unit.copies?.get(machine) : unit.state;
  const here = st !== undefined && (unit.global || st.machine === machine);
  const active = here ? st.active : '';
  if (active === 'failed') return 'failed';
  if (unit.desired !== 'launched') return active === 'active' ? 'changing' : 'stopped';
  if (active === 'active') return st?.health === 'unhealthy' ? 'unhealthy' : 'running';
  return 'changing';
}

/** A unit's state in one word, for tables: its cell's state where placed, else pending/inactive. */
export function unitSummary(unit: UnitRow): string {
  if (unit.pending !== '') return 'pending';
  if (unit.global) {
    let worst: CellState = 'running';
    for (const m of unit.copies?.keys() ?? []) {
      const c = cellState(unit, m);
      if (c === 'failed' || (c === 'unhealthy' && worst !== 'failed')) worst = c;
      else if (worst === 'running') worst = c;
    }
    return (unit.copies?.size ?? 0) === 0 ? 'inactive' : worst;
  }
  if (unit.machine === '')
    return unit.desired === 'inactive' || unit.desired === '' ? 'inactive' : 'pending';
  return cellState(unit, unit.machine);
}

function num(v: string | undefined): number {
  const n = Number(v ?? 0);
  return Number.isFinite(n) ? n : 0;
}

/** The page's cluster model; see the module comment. */
export class ClusterModel {
  readonly units = new Map<string, UnitRow>();
  readonly machines = new Map<string, MachineRow>();
  readonly pending = new Map<string, PendingRow>();
  readonly rollouts = new Map<string, RolloutJson>();
  /** The newest events applied, oldest first (at most {@link RECENT_EVENTS}). */
  readonly recent: EventJson[] = [];
  /** How many of {@link units} are templates (`web@.service`), which run nowhere themselves. */
  templates = 0;
  /** The last etcd revision applied. */
  revision = 0;
  /** Bumped by every change: views compare it to know whether to re-derive. */
  version = 0;
  /** Counts service and endpoint events: what the services view re-reads on. */
  servicesVersion = 0;
  /** Machines whose tiles changed since the last {@link takeDirty}. */
  private dirty = new Set<string>();
  /** A machine came, went or changed metadata: the map's grouping may have changed. */
  layoutDirty = true;
  /** Placements changed since the last machines listing: reservations may be stale. */
  placementsChanged = false;
  private readonly listeners = new Set<() => void>();

  /** Calls `fn` after every applied listing or batch; returns the unsubscriber. */
  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Tells the listeners that the model changed. */
  notify(): void {
    this.version += 1;
    for (const fn of this.listeners) fn();
  }

  /** The machines changed since the last call (and forgets them). */
  takeDirty(): Set<string> {
    const d = this.dirty;
    this.dirty = new Set();
    return d;
  }

  /** Forgets everything (before a re-list after the stream fell too far behind). */
  clear(): void {
    this.units.clear();
    this.machines.clear();
    this.pending.clear();
    this.rollouts.clear();
    this.templates = 0;
    this.layoutDirty = true;
  }

  /** Applies one ListMachines page. */
  addMachines(list: readonly MachineStatusJson[]): void {
    for (const ms of list) {
      const rec = ms.machine ?? ms.lost?.machine;
      const id = rec?.id;
      if (id === undefined) continue;
      const m = this.machine(id);
      m.agentMetadata = { ...(rec?.metadata ?? {}) };
      m.metadata = { ...m.agentMetadata, ...(ms.metadata ?? {}) };
      m.address = rec?.addresses?.[0] ?? '';
      m.cpuMillicores = num(rec?.capacity?.cpuMillicores);
      m.memoryBytes = num(rec?.capacity?.memoryBytes);
      m.reservedCpu = num(ms.reserved?.cpuMillicores);
      m.reservedMemory = num(ms.reserved?.memoryBytes);
      m.drained = ms.drained === true;
      m.lost = ms.lost !== undefined && ms.machine === undefined;
      this.dirty.add(id);
    }
    this.layoutDirty = true;
  }

  /** Applies one ListUnits page. */
  addUnits(list: readonly UnitStatusJson[]): void {
    for (const us of list) {
      const name = us.unit?.name;
      if (name === undefined) continue;
      const u = this.unit(name);
      u.desired = us.unit?.desiredState ?? '';
      u.global = us.global === true;
      if (u.global) {
        for (const inst of us.instances ?? []) {
          const m = inst.placement?.machine;
          if (m === undefined) continue;
          this.place(u, m);
          u.copies?.set(m, stateLite(inst.state, m));
        }
      } else {
        const m = us.placement?.machine;
        if (m !== undefined) this.place(u, m);
        u.state = stateLite(us.state);
      }
      const un = us.unscheduled;
      if (un !== undefined) this.setPending(name, un.summary ?? '', un.waiting ?? 0);
    }
  }

  /** Applies a batch of events in order. */
  apply(events: readonly EventJson[]): void {
    for (const ev of events) {
      this.applyOne(ev);
      const rev = Number(ev.revision ?? 0);
      if (rev > this.revision) this.revision = rev;
      this.recent.push(ev);
    }
    if (this.recent.length > RECENT_EVENTS) {
      this.recent.splice(0, this.recent.length - RECENT_EVENTS);
    }
  }

  private applyOne(ev: EventJson): void {
    const name = ev.name ?? '';
    const del = ev.type === 'delete';
    switch (ev.kind) {
      case 'unit': {
        if (del) {
          this.removeUnit(name);
          return;
        }
        const u = this.unit(name);
        u.desired = ev.unit?.desiredState ?? '';
        if (ev.global === true && !u.global) {
          u.global = true;
          u.copies = new Map();
        }
        this.touchUnit(u);
        return;
      }
      case 'placement': {
        const machine = ev.machine ?? ev.placement?.machine ?? '';
        const u = this.units.get(name) ?? (del ? undefined : this.unit(name));
        if (u === undefined) return;
        if (del) this.unplace(u, machine);
        else this.place(u, machine);
        return;
      }
      case 'state': {
        const u = this.units.get(name);
        if (u === undefined) return;
        const machine = ev.machine ?? ev.state?.machine ?? '';
        if (u.global) {
          if (u.copies?.has(machine) === true)
            u.copies.set(machine, del ? undefined : stateLite(ev.state, machine));
        } else if (del) {
          if (u.state?.machine === machine || machine === '') u.state = undefined;
        } else {
          u.state = stateLite(ev.state, machine);
        }
        this.dirty.add(machine);
        return;
      }
      case 'unscheduled':
        if (del) this.setPending(name, '', 0);
        else this.setPending(name, ev.unscheduled?.summary ?? '', ev.unscheduled?.waiting ?? 0);
        return;
      case 'machine': {
        const id = ev.machine ?? name;
        const m = this.machine(id);
        if (del) m.lost = true;
        else {
          const rec = ev.machineRecord;
          m.lost = false;
          m.agentMetadata = { ...(rec?.metadata ?? {}) };
          m.metadata = { ...m.agentMetadata, ...m.configMetadata };
          m.address = rec?.addresses?.[0] ?? m.address;
          m.cpuMillicores = num(rec?.capacity?.cpuMillicores);
          m.memoryBytes = num(rec?.capacity?.memoryBytes);
        }
        this.dirty.add(id);
        this.layoutDirty = true;
        return;
      }
      case 'machine-config': {
        const id = ev.machine ?? ev.machineConfig?.machine ?? name;
        const m = this.machine(id);
        m.drained = !del && ev.machineConfig?.drained === true;
        m.configMetadata = del ? {} : { ...(ev.machineConfig?.metadata ?? {}) };
        m.metadata = { ...m.agentMetadata, ...m.configMetadata };
        this.dirty.add(id);
        this.layoutDirty = true;
        return;
      }
      case 'rollout':
        if (del) this.rollouts.delete(name);
        else if (ev.rollout !== undefined) this.rollouts.set(name, ev.rollout);
        return;
      case 'service':
      case 'endpoint':
        // The services view asks the API again when this moves (services are not modelled).
        this.servicesVersion += 1;
        return;
      default:
        return;
    }
  }

  private unit(name: string): UnitRow {
    let u = this.units.get(name);
    if (u === undefined) {
      u = {
        name,
        template: templateOf(name),
        desired: '',
        global: false,
        machine: '',
        state: undefined,
        copies: undefined,
        pending: '',
      };
      this.units.set(name, u);
      if (isTemplateName(name)) this.templates += 1;
    }
    return u;
  }

  private machine(id: string): MachineRow {
    let m = this.machines.get(id);
    if (m === undefined) {
      m = {
        id,
        metadata: {},
        agentMetadata: {},
        configMetadata: {},
        address: '',
        cpuMillicores: 0,
        memoryBytes: 0,
        reservedCpu: 0,
        reservedMemory: 0,
        drained: false,
        lost: false,
        units: new Set(),
      };
      this.machines.set(id, m);
      this.layoutDirty = true;
    }
    return m;
  }

  private place(u: UnitRow, machine: string): void {
    if (machine === '') return;
    if (u.global) {
      if (u.copies === undefined) u.copies = new Map();
      if (!u.copies.has(machine)) u.copies.set(machine, undefined);
    } else {
      if (u.machine !== '' && u.machine !== machine) this.unplace(u, u.machine);
      u.machine = machine;
    }
    this.machine(machine).units.add(u.name);
    this.dirty.add(machine);
    this.placementsChanged = true;
  }

  private unplace(u: UnitRow, machine: string): void {
    if (u.global) u.copies?.delete(machine);
    else if (u.machine === machine) u.machine = '';
    this.machines.get(machine)?.units.delete(u.name);
    this.dirty.add(machine);
    this.placementsChanged = true;
  }

  private touchUnit(u: UnitRow): void {
    if (u.global) for (const m of u.copies?.keys() ?? []) this.dirty.add(m);
    else if (u.machine !== '') this.dirty.add(u.machine);
  }

  private removeUnit(name: string): void {
    const u = this.units.get(name);
    if (u === undefined) return;
    if (u.global) for (const m of [...(u.copies?.keys() ?? [])]) this.unplace(u, m);
    else if (u.machine !== '') this.unplace(u, u.machine);
    this.units.delete(name);
    this.pending.delete(name);
    if (isTemplateName(name)) this.templates -= 1;
  }

  private setPending(name: string, summary: string, waiting: number): void {
    if (summary === '' && waiting === 0) this.pending.delete(name);
    else this.pending.set(name, { name, summary, waiting });
    const u = this.units.get(name);
    if (u !== undefined) u.pending = summary === '' && waiting === 0 ? '' : summary || 'waiting';
  }
}
