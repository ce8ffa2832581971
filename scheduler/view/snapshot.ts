/**
 * The planner's snapshot, built from cluster records: live machines with the API's metadata
 * merged over the agent's own and their drained flag, the active units parsed from their
 * files, and the placements. The one place records become a snapshot: the leader's engine
 * builds it from its cluster cache, the API's Plan from a copy of the same mirror (readCluster
 * in api/reads.ts), so a dry run sees what the leader would. Pure: no etcd, no clock, so it is
 * tested with plain records.
 *
 * A unit whose stored file no longer parses (a file written by a newer Flotilla, a bug) is
 * reported and left alone: it is not given to the planner and neither are its placements, so
 * the planner neither places it nor stops it where it already runs.
 */
import type { Machine, MachineConfig, Placement, Unit } from '../../proto/flotilla/v1/records.js';
import type { PlannedPort, PlannerMachine, PlannerUnit, Snapshot } from '../planner/index.js';
import { templateOf } from '../../store/index.js';
import {
  parseUnit,
  parseUnitName,
  placesAlike,
  type UnitDefinition,
  type UnitStateName,
} from '../../unit/index.js';

/** Entries kept before the definition cache starts over: a few MB at most. */
const DEFINITION_CACHE_LIMIT = 20_000;

/** A stored unit whose file does not parse for its name. */
export interface InvalidUnit {
  readonly name: string;
  /** The parser's first problem, `file:line: message`. */
  readonly problem: string;
}

/**
 * Parsed definitions, shared by content: a unit file is parsed once per version, not once per
 * pass or call, and a template file without specifiers in `[X-Fleet]` places every instance
 * alike, so 100,000 instances of one template share one parse ({@link sharedByInstances}). A file that
 * does not parse is remembered with its problem.
 */
export class DefinitionCache {
  private readonly map = new Map<string, UnitDefinition | InvalidUnit>();
  private readonly byRecord = new WeakMap<Unit, UnitDefinition | InvalidUnit>();

  /**
   * @param onInvalid called when a file is found not to parse: once per version while it
   *   stays cached (the API logs it; the engine reports its snapshot's `invalid` instead).
   */
  constructor(private readonly onInvalid?: (unit: InvalidUnit) => void) {}

  /**
   * The definition of `unit` as the scheduler needs it, or the problem that keeps it from
   * having one: name, `[X-Fleet]` and resources are the unit's own; exec lines may be those
   * of another instance of its template (only agents run them, from their own parse).
   */
  get(unit: Unit): UnitDefinition | InvalidUnit {
    const shared = this.shared(unit);
    if (isInvalidUnit(shared))
      return shared.name === unit.name ? shared : { ...shared, name: unit.name };
    return shared.name.name === unit.name ? shared : { ...shared, name: parseUnitName(unit.name) };
  }

  /**
   * The parse `unit` shares with every unit of the same file: right in everything but
   * `name`, which may be another instance's. For what does not depend on the name
   * (resources, `[X-Fleet]` flags), without the cost of a per-unit copy.
   */
  shared(unit: Unit): UnitDefinition | InvalidUnit {
    // The mirror hands out one object per record version: most calls are answered by it.
    const known = this.byRecord.get(unit);
    if (known !== undefined) return known;
    const found = this.sharedOnce(unit);
    this.byRecord.set(unit, found);
    return found;
  }

  /**
   * {@link shared} for a record made for one request (the instance records a scale composes
   * for admission, a copy of a record under another name): found by content, not remembered
   * per record. A weak map entry for an object that dies young is dear: making 2 million
   * short-lived objects took 2.4-3.1 s with each entered in a weak map, 1.0-1.1 s without (on
   * this project's 2-core benchmark machine), and admission's look at one scale to 100,000
   * made 137,000 of them.
   */
  sharedOnce(unit: Unit): UnitDefinition | InvalidUnit {
    return this.byContent(unit, false) as UnitDefinition | InvalidUnit;
  }

  /**
   * {@link sharedOnce} for an instance whose template file places every instance alike; undefined
   * for any other unit (it must be parsed as itself). Admission asks this of every instance a
   * scale probes, so it slices the name and builds the key once.
   */
  sharedAlike(unit: Unit): UnitDefinition | InvalidUnit | undefined {
    return this.byContent(unit, true);
  }

  private byContent(unit: Unit, alikeOnly: boolean): UnitDefinition | InvalidUnit | undefined {
    const template = templateOf(unit.name);
    const versionKey = template === undefined ? undefined : templateKey(template, unit);
    const shared = versionKey !== undefined && alikeByKey(versionKey, unit.file);
    if (alikeOnly && !shared) return undefined;
    const key = shared ? versionKey : `${unit.name}\u0000${unit.hash}\u0000${unit.file.length}`;
    const hit = this.map.get(key);
    if (hit !== undefined) return hit;
    let result: UnitDefinition | InvalidUnit;
    try {
      result = parseUnit(unit.name, unit.file);
    } catch (err) {
      result = { name: unit.name, problem: describeProblem(err) };
    }
    if (this.map.size >= DEFINITION_CACHE_LIMIT) this.map.clear();
    this.map.set(key, result);
    if (isInvalidUnit(result)) this.onInvalid?.(result);
    return result;
  }

  get size(): number {
    return this.map.size;
  }
}

/** Template versions (name and hash) whose file places every instance alike. */
const alike = new Map<string, boolean>();

/**
 * Whether `unit` is an instance whose template file places every instance alike
 * ({@link placesAlike}): then one parse, and one validation, serve all its instances.
 * Remembered per template version, so 100,000 instances cost one look at the file.
 */
export function sharedByInstances(unit: Unit): boolean {
  const template = templateOf(unit.name);
  return template !== undefined && alikeByKey(templateKey(template, unit), unit.file);
}

/** A template version's key: its name, and the hash and length of the instance's file. */
function templateKey(template: string, unit: Unit): string {
  return `${template}\u0000${unit.hash}\u0000${unit.file.length}`;
}

/** Whether the template version `key`, whose file is `file`, places every instance alike. */
function alikeByKey(key: string, file: string): boolean {
  let yes = alike.get(key);
  if (yes === undefined) {
    yes = placesAlike(file);
    if (alike.size >= DEFINITION_CACHE_LIMIT) alike.clear();
    alike.set(key, yes);
  }
  return yes;
}

/** True for the cache's "does not parse" entries. */
export function isInvalidUnit(value: UnitDefinition | InvalidUnit): value is InvalidUnit {
  return 'problem' in value;
}

function describeProblem(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const { file, line } = err as Error & { file?: unknown; line?: unknown };
  const at =
    typeof file === 'string' && typeof line === 'number' && line > 0
      ? `${file}:${line}: `
      : typeof file === 'string'
        ? `${file}: `
        : '';
  return `${at}${err.message}`;
}

/** The records a snapshot is built from; keys are machine ids and unit names. */
export interface ClusterRecords {
  readonly machines: ReadonlyMap<string, Machine>;
  readonly configs: ReadonlyMap<string, MachineConfig>;
  readonly units: ReadonlyMap<string, Unit>;
  /** Unit name -> machine id -> placement. */
  readonly placements: ReadonlyMap<string, ReadonlyMap<string, Placement>>;
}

/** A snapshot plus what the commit step needs beside it. */
export interface BuiltSnapshot {
  readonly snapshot: Snapshot;
  /** Active units (loaded or launched) given to the planner, by name. */
  readonly active: ReadonlyMap<string, ActiveUnit>;
  /** Active units whose files do not parse: not planned, placements untouched. */
  readonly invalid: readonly InvalidUnit[];
}

/** An active unit: its record's hash and desired state, for the placement value. */
export interface ActiveUnit {
  readonly name: string;
  readonly hash: string;
  readonly desired: Exclude<UnitStateName, 'inactive'>;
}

/** The agent's metadata with the API's merged over it (the API's values win). */
export function mergedMetadata(
  machine: Machine | undefined,
  config: MachineConfig | undefined,
): Record<string, string> {
  return { ...(machine?.metadata ?? {}), ...(config?.metadata ?? {}) };
}

/** A live machine as the planner sees it. */
export function toPlannerMachine(
  id: string,
  machine: Machine,
  config: MachineConfig | undefined,
): PlannerMachine {
  return {
    id,
    metadata: new Map(Object.entries(mergedMetadata(machine, config))),
    capacity: {
      cpuMillicores: Number(machine.capacity?.cpuMillicores ?? 0n),
      memoryBytes: Number(machine.capacity?.memoryBytes ?? 0n),
      tasks: Number(machine.capacity?.tasks ?? 0n),
    },
    drained: config?.drained ?? false,
    // The driver the agent registered with: runc runs images, the process driver does not.
    runsImages: machine.driver === 'runc',
    // 0 in a record (an agent from before ports) leaves the planner's default range.
    ...(machine.portRangeFirst > 0 && machine.portRangeLast > 0
      ? { portRange: { first: machine.portRangeFirst, last: machine.portRangeLast } }
      : {}),
  };
}

/** A parsed active unit as the planner sees it. */
export function toPlannerUnit(
  def: UnitDefinition,
  desired: Exclude<UnitStateName, 'inactive'>,
): PlannerUnit {
  return {
    name: def.name.name,
    template: def.name.isInstance ? def.name.template : '',
    fleet: def.fleet,
    resources: def.service.resources,
    desired,
    image: def.container !== undefined,
    ...(def.xService !== undefined
      ? { ports: def.xService.ports.map((p) => ({ name: p.name, number: p.number })) }
      : {}),
  };
}

/** The desired state of a stored unit, when it is active; templates are never active. */
export function activeDesired(unit: Unit): Exclude<UnitStateName, 'inactive'> | undefined {
  const d = unit.desiredState;
  return d === 'loaded' || d === 'launched' ? d : undefined;
}

/**
 * Builds one pass's snapshot. Machines and units come out sorted by id and name so equal
 * records always give an equal snapshot (the planner is deterministic in its input order).
 */
export function buildSnapshot(
  records: ClusterRecords,
  definitions: DefinitionCache,
): BuiltSnapshot {
  const machines: PlannerMachine[] = [];
  for (const id of [...records.machines.keys()].sort()) {
    const machine = records.machines.get(id);
    if (machine !== undefined)
      machines.push(toPlannerMachine(id, machine, records.configs.get(id)));
  }
  const units: PlannerUnit[] = [];
  const active = new Map<string, ActiveUnit>();
  const invalid: InvalidUnit[] = [];
  const hidden = new Set<string>();
  for (const name of [...records.units.keys()].sort()) {
    const unit = records.units.get(name);
    const desired = unit === undefined ? undefined : activeDesired(unit);
    if (unit === undefined || desired === undefined) continue;
    const def = definitions.get(unit.name === name ? unit : { ...unit, name });
    if (isInvalidUnit(def)) {
      invalid.push(def);
      hidden.add(name);
      continue;
    }
    if (def.name.isTemplate) continue;
    units.push(toPlannerUnit(def, desired));
    active.set(name, { name, hash: unit.hash, desired });
  }
  const placements = new Map<string, string[]>();
  const ports = new Map<string, Map<string, readonly PlannedPort[]>>();
  for (const [name, byMachine] of records.placements) {
    if (hidden.has(name) || byMachine.size === 0) continue;
    placements.set(name, [...byMachine.keys()].sort());
    for (const [machine, p] of byMachine) {
      if (p.ports.length === 0) continue;
      let held = ports.get(name);
      if (held === undefined) ports.set(name, (held = new Map()));
      held.set(machine, p.ports);
    }
  }
  return { snapshot: { machines, units, placements, ports }, active, invalid };
}
