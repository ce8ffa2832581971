/**
 * The planner's working copy of the cluster: who is placed where, with the indexes that keep
 * a pass fast. Every decision of a pass goes through `add`/`remove`, so later decisions see
 * earlier ones (counts, reservations, conflicts) and every index stays exact.
 */
import {
  countBits,
  andInto,
  clearBit,
  findInBits,
  fullBits,
  makeBits,
  orInto,
  setBit,
  type Bits,
} from './bitset.js';
import { compareNames, type CompiledUnit } from './compile.js';
import { SlotPorts } from './ports.js';
import { CHEAP_ITEMS, runToEnd, type Steps } from './steps.js';
import type { PlannedPort, PlannerMachine } from './types.js';

/** One live machine and what is placed on it. */
export class MachineSlot {
  /** Units placed here, sorted by name: a glob's literal prefix finds candidates by bisection. */
  readonly units: CompiledUnit[] = [];
  /** Reserved CPU millicores and memory bytes. */
  cpu = 0;
  memory = 0;
  /** template -> instances placed here (for MaxPerMachine). */
  readonly templates = new Map<string, number>();
  /** Placed units that declare Conflicts= / Replaces= (checked against newcomers). */
  readonly conflictDeclarers: CompiledUnit[] = [];
  readonly replaceDeclarers: CompiledUnit[] = [];
  /** Ports the placed units hold ([X-Service] Port=). */
  readonly ports: SlotPorts;

  constructor(
    /** Position in id order: the tie-break rank and the bit in every mask. */
    readonly idx: number,
    readonly machine: PlannerMachine,
  ) {
    this.ports = new SlotPorts(machine.portRange);
  }

  get id(): string {
    return this.machine.id;
  }

  /** Index of the first placed unit whose name is >= `name`. */
  lowerBound(name: string): number {
    let lo = 0;
    let hi = this.units.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.units[mid] as CompiledUnit).name < name) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  has(name: string): boolean {
    return this.units[this.lowerBound(name)]?.name === name;
  }
}

export class ClusterState {
  /** Live machines in id order. */
  readonly slots: readonly MachineSlot[];
  readonly byId: ReadonlyMap<string, MachineSlot>;
  readonly size: number;
  /** Machines that are not drained. */
  readonly live: Bits;
  /** Removals so far (the placement loop retries failures when this moved). */
  removals = 0;
  /**
   * Snapshot placements (`unit\u0000machine`) loaded with ports other than their records
   * hold (missing, or no longer fitting the file or the range): their records are rewritten.
   */
  readonly portChanges = new Set<string>();
  /** Inside {@link loading}: placements whose ports must be picked once all are loaded. */
  private pendingPorts: [CompiledUnit, MachineSlot, readonly PlannedPort[] | undefined][] = [];

  /** buckets[c] = machines with c placed units; the least-loaded ranker scans them upwards. */
  private readonly buckets: Bits[] = [];
  private readonly bucketSizes: number[] = [];
  /** key -> value -> machines. */
  private readonly meta = new Map<string, Map<string, Bits>>();
  /** Live machines whose driver runs images. */
  private readonly imageRunners: Bits;
  /** metadataKey (then `\u0001image` for image units) -> live machines passing it. */
  private readonly masks = new Map<string, Bits>();
  /** By unit key: the one machine of a non-global unit, -1 when unplaced. */
  private readonly single: Int32Array;
  /** By unit key: the machines of a Global unit, ascending. */
  private readonly many: (number[] | undefined)[] = [];
  /** template -> key -> spread index. */
  private readonly spread = new Map<string, Map<string, SpreadIndex>>();
  /** Inside {@link loading}: spread counts are made afterwards, from the machines. */
  private spreadHeld = false;
  private readonly scratch: Bits;
  private readonly all: Bits;

  /** @param unitCount number of compiled units (their keys are 0 .. unitCount-1) */
  constructor(machines: readonly PlannerMachine[], unitCount: number) {
    this.single = new Int32Array(unitCount).fill(-1);
    // Stable sort; a repeated id keeps its first record.
    const sorted = [...machines]
      .sort((a, b) => compareNames(a.id, b.id))
      .filter((m, i, all) => i === 0 || all[i - 1]?.id !== m.id);
    this.slots = sorted.map((m, i) => new MachineSlot(i, m));
    this.byId = new Map(this.slots.map((s) => [s.id, s]));
    this.size = this.slots.length;
    this.live = makeBits(this.size);
    this.all = fullBits(this.size);
    this.buckets.push(Uint32Array.from(this.all));
    this.bucketSizes.push(this.size);
    this.scratch = makeBits(this.size);
    this.imageRunners = makeBits(this.size);
    for (const s of this.slots) {
      if (!s.machine.drained) setBit(this.live, s.idx);
      if (!s.machine.drained && s.machine.runsImages === true) setBit(this.imageRunners, s.idx);
      for (const [k, v] of s.machine.metadata) {
        let values = this.meta.get(k);
        if (values === undefined) this.meta.set(k, (values = new Map()));
        let mask = values.get(v);
        if (mask === undefined) values.set(v, (mask = makeBits(this.size)));
        setBit(mask, s.idx);
      }
    }
  }

  /** How many machines `u` is placed on. */
  placementCount(u: CompiledUnit): number {
    if (!u.global) return (this.single[u.key] ?? -1) < 0 ? 0 : 1;
    return this.many[u.key]?.length ?? 0;
  }

  /** Machine indexes `u` is placed on (ascending; empty when unplaced). */
  placementsOf(u: CompiledUnit): readonly number[] {
    if (u.global) return this.many[u.key] ?? [];
    const idx = this.single[u.key] ?? -1;
    return idx < 0 ? [] : [idx];
  }

  /**
   * Record a placement and update every index. The caller has checked feasibility. `ports`:
   * what the placement holds already (a snapshot placement, a recheck); without them, its
   * dynamic ports are picked now.
   */
  add(u: CompiledUnit, s: MachineSlot, ports?: readonly PlannedPort[]): void {
    const at = s.lowerBound(u.name);
    if (s.units[at]?.name === u.name) return;
    if (this.spreadHeld && (u.ports.length > 0 || (ports?.length ?? 0) > 0)) {
      // Loading: ports a record holds are taken first, picks wait until every record is in,
      // so a pick never takes a number a placement loaded later holds.
      const complete =
        ports !== undefined && u.ports.every((w) => ports.some((p) => p.name === w.name));
      if (!complete) this.pendingPorts.push([u, s, ports]);
      else if (s.ports.hold(u, ports)) this.portChanges.add(`${u.name}\u0000${s.id}`);
    } else if (u.ports.length > 0) s.ports.hold(u, ports);
    this.move(s, s.units.length, s.units.length + 1);
    s.units.splice(at, 0, u);
    s.cpu += u.cpu;
    s.memory += u.memory;
    if (u.template !== '') s.templates.set(u.template, (s.templates.get(u.template) ?? 0) + 1);
    if (u.conflicts.length > 0) s.conflictDeclarers.push(u);
    if (u.replaces.length > 0) s.replaceDeclarers.push(u);
    if (!u.global) this.single[u.key] = s.idx;
    else {
      const list = this.many[u.key];
      if (list === undefined) this.many[u.key] = [s.idx];
      else list.splice(lowerBoundNum(list, s.idx), 0, s.idx);
    }
    this.bumpSpread(u, s, 1);
  }

  /** Undo {@link add}. Returns false when `u` was not placed on `s`. */
  remove(u: CompiledUnit, s: MachineSlot): boolean {
    const at = s.lowerBound(u.name);
    if (s.units[at]?.name !== u.name) return false;
    this.move(s, s.units.length, s.units.length - 1);
    s.units.splice(at, 1);
    s.cpu -= u.cpu;
    s.memory -= u.memory;
    s.ports.release(u);
    if (u.template !== '') {
      const n = (s.templates.get(u.template) ?? 1) - 1;
      if (n === 0) s.templates.delete(u.template);
      else s.templates.set(u.template, n);
    }
    if (u.conflicts.length > 0) dropFrom(s.conflictDeclarers, u);
    if (u.replaces.length > 0) dropFrom(s.replaceDeclarers, u);
    if (!u.global) this.single[u.key] = -1;
    else {
      const list = this.many[u.key];
      if (list !== undefined) list.splice(lowerBoundNum(list, s.idx), 1);
    }
    this.bumpSpread(u, s, -1);
    this.removals++;
    return true;
  }

  /**
   * Live machines that pass `u`'s MachineMetadata and, for an image unit, run images (cached
   * per distinct requirement).
   */
  staticMask(u: CompiledUnit): Bits {
    if (u.metadataKey === '' && !u.image) return this.live;
    const cacheKey = u.image ? `${u.metadataKey}\u0001image` : u.metadataKey;
    const hit = this.masks.get(cacheKey);
    if (hit !== undefined) return hit;
    const mask = Uint32Array.from(u.image ? this.imageRunners : this.live);
    for (const [key, values] of u.metadata) {
      const any = makeBits(this.size);
      for (const v of values) {
        const m = this.meta.get(key)?.get(v);
        if (m !== undefined) orInto(any, m);
      }
      andInto(mask, mask, any);
    }
    this.masks.set(cacheKey, mask);
    return mask;
  }

  /**
   * Machines whose id is `prefix` or starts with it, ascending. An exact id match alone wins,
   * so `MachineID=ab` names machine `ab` even when machine `abc` exists.
   */
  matchMachineId(prefix: string): number[] {
    let lo = 0;
    let hi = this.slots.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.slots[mid] as MachineSlot).id < prefix) lo = mid + 1;
      else hi = mid;
    }
    const out: number[] = [];
    for (let i = lo; i < this.slots.length; i++) {
      const id = (this.slots[i] as MachineSlot).id;
      if (!id.startsWith(prefix)) break;
      if (id === prefix) return [i];
      out.push(i);
    }
    return out;
  }

  /**
   * Runs `load` (which adds the snapshot's placements) without SpreadBy bookkeeping, then
   * counts each spread template's instances per value once, from the machines' own counts:
   * O(machines) instead of a level move per placement. Nothing may rank by spread inside `load`.
   */
  loading<R>(load: () => R): R {
    this.beginLoading();
    try {
      return load();
    } finally {
      runToEnd(this.endLoading());
    }
  }

  /** {@link loading}'s start, for a pass run as steps: spread bookkeeping waits. */
  beginLoading(): void {
    this.spreadHeld = true;
  }

  /** {@link loading}'s end as steps: held ports picked, spread counted, then checkpoints. */
  *endLoading(): Steps<void> {
    this.spreadHeld = false;
    let n = 0;
    for (const [u, s, ports] of this.pendingPorts) {
      if (s.has(u.name) && s.ports.hold(u, ports)) this.portChanges.add(`${u.name}\u0000${s.id}`);
      if (++n % CHEAP_ITEMS === 0) yield;
    }
    this.pendingPorts = [];
    for (const [template, byKey] of this.spread) {
      for (const [key, index] of byKey) {
        const counts = new Map<string, number>();
        for (const s of this.slots) {
          const c = s.templates.get(template) ?? 0;
          const value = s.machine.metadata.get(key);
          if (c > 0 && value !== undefined) counts.set(value, (counts.get(value) ?? 0) + c);
        }
        index.setCounts(counts);
        yield;
      }
    }
  }

  /** Start counting a template's instances per value of `key` (before placements are added). */
  trackSpread(template: string, key: string): void {
    let byKey = this.spread.get(template);
    if (byKey === undefined) this.spread.set(template, (byKey = new Map()));
    if (byKey.has(key)) return;
    const values = this.meta.get(key) ?? new Map<string, Bits>();
    byKey.set(key, new SpreadIndex(values, this.size, this.all));
  }

  spreadIndex(template: string, key: string): SpreadIndex | undefined {
    return this.spread.get(template)?.get(key);
  }

  /**
   * Visit machines of `mask` in least-loaded order (fewest placed units, then id) until
   * `visit` accepts one; returns its index or -1. Stops at the first acceptance, so a pass
   * never scores every machine.
   */
  findLeastLoaded(mask: Bits | null, visit: (idx: number) => boolean): number {
    for (let c = 0; c < this.buckets.length; c++) {
      if ((this.bucketSizes[c] ?? 0) === 0) continue;
      const hit = findInBits(this.buckets[c] as Bits, mask, visit);
      if (hit >= 0) return hit;
    }
    return -1;
  }

  /** `a AND b` into a scratch mask owned by the state (valid until the next call). */
  intersect(a: Bits, b: Bits): Bits {
    return andInto(this.scratch, a, b);
  }

  private move(s: MachineSlot, from: number, to: number): void {
    while (this.buckets.length <= to) {
      this.buckets.push(makeBits(this.size));
      this.bucketSizes.push(0);
    }
    clearBit(this.buckets[from] as Bits, s.idx);
    setBit(this.buckets[to] as Bits, s.idx);
    this.bucketSizes[from] = (this.bucketSizes[from] ?? 1) - 1;
    this.bucketSizes[to] = (this.bucketSizes[to] ?? 0) + 1;
  }

  private bumpSpread(u: CompiledUnit, s: MachineSlot, delta: 1 | -1): void {
    if (u.template === '' || this.spreadHeld) return;
    const byKey = this.spread.get(u.template);
    if (byKey === undefined) return;
    for (const [key, index] of byKey) {
      const value = s.machine.metadata.get(key);
      if (value !== undefined) index.bump(value, delta);
    }
  }
}

function lowerBoundNum(list: readonly number[], x: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((list[mid] as number) < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function dropFrom(list: CompiledUnit[], u: CompiledUnit): void {
  const i = list.indexOf(u);
  if (i >= 0) list.splice(i, 1);
}

/**
 * SpreadBy bookkeeping for one (template, metadata key): how many instances of the template
 * run on machines of each value, and which machines sit at each such count. The ranker reads
 * the machines at the lowest count first, so "spread evenly" costs a few mask operations per
 * placement instead of a sort of all values.
 */
export class SpreadIndex {
  /** value -> instances of the template on machines with that value. */
  private readonly counts = new Map<string, number>();
  /** levels[c] = machines whose value currently has c instances. */
  private readonly levels: Bits[] = [];
  /** levelSizes[c] = how many machines levels[c] holds. */
  private readonly levelSizes: number[] = [];
  /**
   * The counts whose level holds machines, ascending: at most one per value. The ranker walks
   * these, not every count up to the highest, so a template with thousands of instances per
   * value costs no more per placement than one with a few.
   */
  private readonly occupied: number[] = [];
  /** value -> machines with that value. */
  private readonly valueSizes = new Map<string, number>();
  /** Machines without the key: ranked after every machine that has it. */
  readonly missing: Bits;

  /**
   * @param values value -> machines with that value (the metadata index for the key)
   * @param size number of machines
   * @param all every machine
   */
  constructor(
    private readonly values: ReadonlyMap<string, Bits>,
    private readonly size: number,
    all: Bits,
  ) {
    const level0 = makeBits(size);
    for (const [value, mask] of values) {
      orInto(level0, mask);
      this.valueSizes.set(value, countBits(mask));
    }
    this.levels.push(level0);
    const machines = countBits(level0);
    this.levelSizes.push(machines);
    if (machines > 0) this.occupied.push(0);
    this.missing = makeBits(size);
    for (let w = 0; w < all.length; w++) this.missing[w] = (all[w] ?? 0) & ~(level0[w] ?? 0);
  }

  /** Count one more (delta 1) or one fewer (delta -1) instance on a machine with `value`. */
  bump(value: string, delta: 1 | -1): void {
    this.setCount(value, (this.counts.get(value) ?? 0) + delta);
  }

  /** Sets every value's count: those in `counts`, and 0 for the rest. */
  setCounts(counts: ReadonlyMap<string, number>): void {
    for (const value of this.counts.keys()) if (!counts.has(value)) this.setCount(value, 0);
    for (const [value, n] of counts) this.setCount(value, n);
  }

  private setCount(value: string, count: number): void {
    if (!this.values.has(value)) return;
    const before = this.counts.get(value) ?? 0;
    const after = Math.max(0, count);
    if (after === before) return;
    this.counts.set(value, after);
    this.moveValue(value, before, after);
  }

  /** Moves the machines with `value` from level `before` to level `after`. */
  private moveValue(value: string, before: number, after: number): void {
    const mask = this.values.get(value) as Bits;
    while (this.levels.length <= after) {
      this.levels.push(makeBits(this.size));
      this.levelSizes.push(0);
    }
    const from = this.levels[before] as Bits;
    const to = this.levels[after] as Bits;
    for (let w = 0; w < mask.length; w++) {
      const m = mask[w] ?? 0;
      from[w] = (from[w] ?? 0) & ~m;
      to[w] = (to[w] ?? 0) | m;
    }
    const moved = this.valueSizes.get(value) ?? 0;
    this.resize(before, -moved);
    this.resize(after, moved);
  }

  /** Adds `delta` machines to level `count`, keeping `occupied` to the levels that hold any. */
  private resize(count: number, delta: number): void {
    if (delta === 0) return;
    const was = this.levelSizes[count] ?? 0;
    const now = was + delta;
    this.levelSizes[count] = now;
    if (was === 0 && now > 0) this.occupied.splice(lowerBoundNum(this.occupied, count), 0, count);
    else if (was > 0 && now === 0) this.occupied.splice(lowerBoundNum(this.occupied, count), 1);
  }

  /** Instances on machines with `value`. */
  count(value: string): number {
    return this.counts.get(value) ?? 0;
  }

  /** Machine masks from most to least wanted: lowest instance count first, then `missing`. */
  *rankLevels(): Generator<Bits> {
    for (const count of this.occupied) yield this.levels[count] as Bits;
    yield this.missing;
  }

  /** The rank level of one machine (its value's count; missing ranks after all counts). */
  levelOf(value: string | undefined): number {
    if (value === undefined || !this.values.has(value)) return Number.MAX_SAFE_INTEGER;
    return this.count(value);
  }
}
