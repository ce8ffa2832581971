/**
 * Units as the checkers want them: globs compiled once, metadata requirements keyed for the
 * mask cache, and the MachineOf graph analysed once per pass (cycles, depth, followers).
 */
import { compileGlob, type Glob } from '../../unit/glob.js';
import type { MetadataRequirement } from '../../unit/model.js';
import type { PlannerUnit, PortWanted } from './types.js';
import { CHEAP_ITEMS, runToEnd, sortedSteps, type Steps } from './steps.js';

/** A {@link PlannerUnit} prepared for the checkers. Immutable during a pass. */
export interface CompiledUnit {
  readonly name: string;
  readonly spec: PlannerUnit;
  readonly template: string;
  readonly global: boolean;
  readonly machineId: string;
  readonly metadata: MetadataRequirement;
  /** Canonical text of `metadata` ('' when empty): units with equal keys share one mask. */
  readonly metadataKey: string;
  readonly machineOf: readonly string[];
  readonly conflicts: readonly Glob[];
  readonly replaces: readonly Glob[];
  readonly cpu: number;
  readonly memory: number;
  readonly maxPerMachine: number;
  readonly spreadBy: string;
  /** Runs an image: only machines that run images take it. */
  readonly image: boolean;
  /** `[X-Service] Port=` lines (number 0: dynamic), in file order. */
  readonly ports: readonly PortWanted[];
  /** How many of `ports` are dynamic. */
  readonly dynamicPorts: number;
  /** '' when valid; otherwise why the unit can never be placed (e.g. a malformed glob). */
  readonly invalid: string;
  /** Position in name order: the unit's slot in the state's per-unit arrays. */
  key: number;
  /** The MachineOf peers that are active units (the others can never be placed). */
  peers: readonly CompiledUnit[];
  /** The first peer on a MachineOf cycle through this unit, '' when there is none. */
  cyclePeer: string;
  /** Longest MachineOf chain below this unit (0 without peers): peers are handled first. */
  depth: number;
  /** Cache of {@link placementSignature}. */
  signature?: string;
}

/** All units of a pass, with the reverse MachineOf edges. */
export interface CompiledUnits {
  readonly byName: ReadonlyMap<string, CompiledUnit>;
  /** Units sorted by name (code-unit order, locale independent). */
  readonly sorted: readonly CompiledUnit[];
  /** peer name -> the units that are MachineOf it. */
  readonly followers: ReadonlyMap<string, readonly CompiledUnit[]>;
}

/** Compile every unit and analyse the MachineOf graph. Throws nothing. */
export function compileUnits(units: readonly PlannerUnit[]): CompiledUnits {
  return runToEnd(compileUnitsSteps(units));
}

/** {@link compileUnits} as steps: a checkpoint every {@link CHEAP_ITEMS} units compiled. */
export function* compileUnitsSteps(units: readonly PlannerUnit[]): Steps<CompiledUnits> {
  const byName = new Map<string, CompiledUnit>();
  // The leader's snapshot lists units in name order already: then there is nothing to sort,
  // and the units are in order as they are compiled.
  let sorted: CompiledUnit[] = [];
  let ordered = true;
  let n = 0;
  for (const spec of units) {
    if (!byName.has(spec.name)) {
      const u = compileUnit(spec);
      const last = sorted[sorted.length - 1];
      if (last !== undefined && last.name > u.name) ordered = false;
      byName.set(spec.name, u);
      sorted.push(u);
    }
    if (++n % CHEAP_ITEMS === 0) yield;
  }
  if (!ordered) {
    // Sorted by UTF-16 code units, like compareNames (admission's instances come in number
    // order: web@10 before web@9 by name).
    const names = yield* sortedSteps([...byName.keys()]);
    sorted = names.map((name) => byName.get(name) as CompiledUnit);
    yield;
  }
  const followers = new Map<string, CompiledUnit[]>();
  for (let i = 0; i < sorted.length; i++) {
    const u = sorted[i] as CompiledUnit;
    u.key = i;
    if (u.machineOf.length > 0) {
      u.peers = u.machineOf.flatMap((p) => {
        const peer = byName.get(p);
        return peer === undefined ? [] : [peer];
      });
      // Followers in name order, like the units.
      for (const peer of u.machineOf) {
        const list = followers.get(peer);
        if (list === undefined) followers.set(peer, [u]);
        else list.push(u);
      }
    }
    if ((i + 1) % CHEAP_ITEMS === 0) yield;
  }
  yield;
  analyseMachineOf(sorted);
  return { byName, sorted, followers };
}

/** Plain code-unit comparison: deterministic everywhere, unlike localeCompare. */
export function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

const NO_PEERS: readonly CompiledUnit[] = [];
const NO_PORTS: readonly PortWanted[] = [];

function compileUnit(spec: PlannerUnit): CompiledUnit {
  const f = spec.fleet;
  let invalid = '';
  const globs = (patterns: readonly string[]): Glob[] => {
    const out: Glob[] = [];
    for (const p of patterns) {
      try {
        out.push(compileGlob(p));
      } catch (err) {
        invalid = `invalid glob ${JSON.stringify(p)}: ${err instanceof Error ? err.message : ''}`;
      }
    }
    return out;
  };
  const conflicts = globs(f.conflicts);
  const replaces = globs(f.replaces);
  const ports = spec.ports ?? NO_PORTS;
  return {
    name: spec.name,
    spec,
    template: spec.template,
    global: f.global,
    machineId: f.machineId,
    metadata: f.machineMetadata,
    metadataKey: metadataKey(f.machineMetadata),
    machineOf: f.machineOf.length < 2 ? f.machineOf : [...new Set(f.machineOf)],
    conflicts,
    replaces,
    cpu: Math.max(0, spec.resources.cpuMillicores),
    memory: Math.max(0, spec.resources.memoryBytes),
    maxPerMachine: Math.max(0, f.maxPerMachine),
    spreadBy: f.spreadBy,
    image: spec.image === true,
    ports,
    dynamicPorts: ports.filter((p) => p.number === 0).length,
    invalid,
    key: 0,
    peers: NO_PEERS,
    cyclePeer: '',
    depth: 0,
  };
}

/**
 * Everything but the name that the feasibility chain looks at. Two units with equal
 * signatures get the same verdict from every checker that does not judge by name, so a
 * failure of one, on an unchanged cluster, is a failure of the other.
 */
export function placementSignature(u: CompiledUnit): string {
  u.signature ??= [
    u.template,
    u.cpu,
    u.memory,
    u.maxPerMachine,
    u.machineId,
    u.metadataKey,
    u.machineOf.join(','),
    u.conflicts.map((g) => g.source).join(','),
    u.replaces.map((g) => g.source).join(','),
    u.image ? 'image' : '',
    u.ports.map((p) => p.number).join(','),
    u.invalid,
  ].join('\u0000');
  return u.signature;
}

/** `disk=ssd;region=eu|us`: keys and values sorted, so equal requirements share a key. */
export function metadataKey(req: MetadataRequirement): string {
  if (req.size === 0) return '';
  const keys = [...req.keys()].sort(compareNames);
  return keys.map((k) => `${k}=${[...(req.get(k) ?? [])].sort(compareNames).join('|')}`).join(';');
}

/**
 * Tarjan's strongly connected components over "u is MachineOf peer" edges (peers that are
 * not active units are ignored: they simply never get placed). A unit on a cycle (or MachineOf
 * itself) gets `cyclePeer`; components come out peers-first, which gives `depth`. Only units
 * with peers start a search, so a cluster without MachineOf pays nothing.
 */
function analyseMachineOf(sorted: readonly CompiledUnit[]): void {
  const index = new Int32Array(sorted.length).fill(-1);
  const low = new Int32Array(sorted.length);
  const onStack = new Uint8Array(sorted.length);
  const stack: CompiledUnit[] = [];
  let next = 0;
  const work: { u: CompiledUnit; i: number }[] = [];
  const open = (u: CompiledUnit): void => {
    index[u.key] = low[u.key] = next++;
    stack.push(u);
    onStack[u.key] = 1;
    work.push({ u, i: 0 });
  };
  for (const root of sorted) {
    if (root.peers.length === 0 || (index[root.key] ?? 0) >= 0) continue;
    open(root);
    while (work.length > 0) {
      const top = work[work.length - 1] as (typeof work)[number];
      const peer = top.u.peers[top.i++];
      if (peer !== undefined) {
        if ((index[peer.key] ?? 0) < 0) open(peer);
        else if (onStack[peer.key] === 1) {
          low[top.u.key] = Math.min(low[top.u.key] ?? 0, index[peer.key] ?? 0);
        }
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent !== undefined) {
        low[parent.u.key] = Math.min(low[parent.u.key] ?? 0, low[top.u.key] ?? 0);
      }
      if (low[top.u.key] === index[top.u.key]) closeComponent(top.u);
    }
  }
  function closeComponent(head: CompiledUnit): void {
    const members: CompiledUnit[] = [];
    for (;;) {
      const m = stack.pop();
      if (m === undefined) break;
      onStack[m.key] = 0;
      members.push(m);
      if (m === head) break;
    }
    const inside = (u: CompiledUnit): boolean => members.includes(u);
    const cyclic = members.length > 1 || head.peers.includes(head);
    let depth = 0;
    for (const m of members) {
      for (const p of m.peers) if (!inside(p)) depth = Math.max(depth, p.depth + 1);
    }
    for (const m of members) {
      m.depth = depth;
      if (cyclic) m.cyclePeer = m.peers.find(inside)?.name ?? '';
    }
  }
}
