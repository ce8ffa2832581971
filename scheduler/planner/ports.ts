/**
 * Ports as placement resources (Nomad's model): what each machine's placed units hold, and
 * the pick of dynamic ports. A static port (`Port=http=8080`) is a conflict on its machine;
 * a dynamic one (`Port=http`) takes any free number of the machine's range.
 *
 * The pick is deterministic and spread: the first candidate of a unit's port is a hash of its
 * unit and port names into the range, then the next free number upwards (wrapping). So a unit
 * placed again on the same machine gets its old port back when it is still free, and a port
 * freed by a stopping instance is not handed at once to the next newcomer (lowest-free would
 * do exactly that, and the newcomer would race the old process for the bind). Cost: O(1)
 * expected per port while the range is not nearly full; O(range) at worst.
 */
import type { CompiledUnit } from './compile.js';
import { DEFAULT_PORT_RANGE, type PlannedPort, type PortRange } from './types.js';

/** The ports held on one machine. Kept exact by ClusterState.add/remove. */
export class SlotPorts {
  /** Port number -> how many placed units hold it (more than 1 only for a static conflict). */
  private readonly use = new Map<number, number>();
  /** Distinct numbers held inside the range: the range is full when this reaches its size. */
  private inRange = 0;
  /** Unit name -> the ports it holds here, in Port= order. */
  private readonly held = new Map<string, readonly PlannedPort[]>();
  readonly range: PortRange;

  constructor(range: PortRange | undefined) {
    const r = range ?? DEFAULT_PORT_RANGE;
    // A record without a sensible range (an agent before ports, a bad value) gets the default.
    const valid = r.first >= 1 && r.last <= 65535 && r.first <= r.last;
    this.range = valid ? r : DEFAULT_PORT_RANGE;
  }

  get rangeText(): string {
    return `${this.range.first}-${this.range.last}`;
  }

  /** Holders of `port` on this machine. */
  users(port: number): number {
    return this.use.get(port) ?? 0;
  }

  /** Free numbers left in the range. */
  freeInRange(): number {
    return this.range.last - this.range.first + 1 - this.inRange;
  }

  inside(port: number): boolean {
    return port >= this.range.first && port <= this.range.last;
  }

  /** The ports `unit` holds here, or undefined. */
  of(unit: string): readonly PlannedPort[] | undefined {
    return this.held.get(unit);
  }

  /**
   * Makes `u` hold ports here: static ones as asked; dynamic ones from `given` (by Port=
   * name) when that number is in the range and free, else picked. Returns true when the
   * result differs from `given` (a placement's record must then be rewritten).
   */
  hold(u: CompiledUnit, given: readonly PlannedPort[] | undefined): boolean {
    if (u.ports.length === 0) return given !== undefined && given.length > 0;
    const out: PlannedPort[] = [];
    // Static ones first, so a dynamic pick never takes a number the unit asks for itself.
    for (const want of u.ports) if (want.number > 0) this.take(want.number);
    for (const want of u.ports) {
      if (want.number > 0) {
        out.push({ name: want.name, number: want.number, static: true });
        continue;
      }
      const old = given?.find((p) => p.name === want.name && !p.static);
      const keep = old !== undefined && this.inside(old.number) && this.users(old.number) === 0;
      const number = keep ? old.number : this.pick(`${u.name}\u0000${want.name}`);
      this.take(number);
      out.push({ name: want.name, number, static: false });
    }
    this.held.set(u.name, out);
    return !samePorts(out, given);
  }

  /** Undoes {@link hold}. */
  release(u: CompiledUnit): void {
    const ports = this.held.get(u.name);
    if (ports === undefined) return;
    this.held.delete(u.name);
    for (const p of ports) this.drop(p.number);
  }

  /** A free number of the range; the caller has made sure one exists (the checker). */
  private pick(seed: string): number {
    const { first, last } = this.range;
    const size = last - first + 1;
    const start = first + (hash(seed) % size);
    for (let i = 0; i < size; i++) {
      const n = start + i > last ? start + i - size : start + i;
      if (this.users(n) === 0) return n;
    }
    // The range is full: only reachable when a checker was skipped. Share rather than throw,
    // so a pass always completes; the next recheck moves what does not fit.
    return start;
  }

  private take(port: number): void {
    const n = this.users(port);
    this.use.set(port, n + 1);
    if (n === 0 && this.inside(port)) this.inRange += 1;
  }

  private drop(port: number): void {
    const n = this.users(port);
    if (n <= 1) {
      this.use.delete(port);
      if (n === 1 && this.inside(port)) this.inRange -= 1;
    } else this.use.set(port, n - 1);
  }
}

/** FNV-1a, 32 bits: stable across runs and platforms (the planner allows no randomness). */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Equal names, numbers and kinds, in order. */
export function samePorts(
  a: readonly PlannedPort[],
  b: readonly PlannedPort[] | undefined,
): boolean {
  if (b === undefined) return a.length === 0;
  if (a.length !== b.length) return false;
  return a.every((p, i) => {
    const q = b[i];
    return q !== undefined && q.name === p.name && q.number === p.number && q.static === p.static;
  });
}
