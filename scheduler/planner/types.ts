/**
 * The planner's input (a cluster snapshot) and output (a plan). Plain data: the scheduler
 * daemon builds a {@link Snapshot} from its etcd cache, calls `plan()`, and turns the
 * {@link Plan} into one fenced transaction. Nothing here refers to etcd, gRPC or time.
 */
import type { FleetOptions, ResourceRequest, UnitStateName } from '../../unit/model.js';

/** A live machine as the leader sees it. Machines absent from the snapshot are lost. */
export interface PlannerMachine {
  /** The machine id (systemd machine-id style); unique within a snapshot. */
  readonly id: string;
  /** The agent's own metadata with the API's `machine-metadata/` merged over it. */
  readonly metadata: ReadonlyMap<string, string>;
  /**
   * What the machine advertises. Reservations of placed units never exceed it: a machine
   * that advertises 0 memory takes only units that reserve no memory. `tasks` is unused.
   */
  readonly capacity: ResourceRequest;
  /** A drained machine takes nothing, and whatever runs on it is moved (within maxMoves). */
  readonly drained: boolean;
  /**
   * Whether the machine's runtime driver runs images (runc does, the process driver does
   * not): only such machines take units with an image (`PlannerUnit.image`). Default false.
   */
  readonly runsImages?: boolean;
  /**
   * The range dynamic ports are picked from (the agent's `--port-range`, inclusive). Default
   * {@link DEFAULT_PORT_RANGE}.
   */
  readonly portRange?: PortRange;
}

/** An inclusive range of port numbers. */
export interface PortRange {
  readonly first: number;
  readonly last: number;
}

/** The agent's default `--port-range` (Nomad's dynamic range): also for machines that name none. */
export const DEFAULT_PORT_RANGE: PortRange = { first: 20000, last: 32767 };

/** One `[X-Service] Port=` of a unit: `number` 0 for a dynamic port. */
export interface PortWanted {
  readonly name: string;
  readonly number: number;
}

/** A port a placement holds: `Placement.ports` in records.proto. */
export interface PlannedPort {
  readonly name: string;
  readonly number: number;
  /** Asked for by number (Port=NAME=NUMBER), not picked from the range. */
  readonly static: boolean;
}

/** An active unit (desired loaded or launched). Inactive units are simply not given. */
export interface PlannerUnit {
  /** Full unit name, e.g. `web@3.service`; unique within a snapshot. */
  readonly name: string;
  /** The template for instances (`web@.service`), '' for plain units. */
  readonly template: string;
  /** `[X-Fleet]`, specifiers already expanded for this instance. */
  readonly fleet: FleetOptions;
  /** What the unit reserves; 0 means it reserves none of that resource. */
  readonly resources: ResourceRequest;
  readonly desired: Exclude<UnitStateName, 'inactive'>;
  /** True when the unit runs an image (`[Container]`): it needs a machine that runs images. */
  readonly image?: boolean;
  /** `[X-Service] Port=` lines in file order: placement resources on its machine. */
  readonly ports?: readonly PortWanted[];
}

/**
 * Everything one pass decides from. The planner never mutates it. Machine ids and unit names
 * are expected to be unique; a repeated one keeps its first record.
 */
export interface Snapshot {
  readonly machines: readonly PlannerMachine[];
  readonly units: readonly PlannerUnit[];
  /**
   * Existing placements: unit name -> machine ids. A Global unit has several; any other
   * unit has at most one (extras are unplaced). Ids of machines not in `machines` are lost.
   */
  readonly placements: ReadonlyMap<string, readonly string[]>;
  /**
   * The ports existing placements hold: unit name -> machine id -> ports. A placement of a
   * unit with Port= lines that is missing here (or holds ports that no longer fit its file or
   * its machine's range) gets them picked, reported in `Plan.portChanges`.
   */
  readonly ports?: ReadonlyMap<string, ReadonlyMap<string, readonly PlannedPort[]>>;
}

/** Options of one pass; {@link fillPlanOptions} documents and applies the defaults. */
export interface PlanOptions {
  /**
   * At most this many already-placed units are stopped or moved because of something outside
   * the pass (their machine was lost or drained, metadata or capacity changed, a new unit
   * replaces them). New placements are never limited, and a MachineOf follower travels with
   * its peer for free. Default: unlimited.
   */
  readonly maxMoves?: number;
  /**
   * Reserved for seeded tie-breaking. Today every tie is broken by machine id, so no decision
   * draws on it; it is part of the input so a future randomized ranker stays replayable.
   * Default 0.
   */
  readonly seed?: number;
}

/** {@link PlanOptions} with every default applied. */
export interface ResolvedPlanOptions {
  readonly maxMoves: number;
  readonly seed: number;
}

/** Apply the defaults of {@link PlanOptions}; a negative or NaN maxMoves counts as 0. */
export function fillPlanOptions(options: PlanOptions = {}): ResolvedPlanOptions {
  const raw = options.maxMoves ?? Number.POSITIVE_INFINITY;
  const maxMoves = Number.isNaN(raw) || raw < 0 ? 0 : Math.floor(raw);
  return { maxMoves, seed: options.seed ?? 0 };
}

/** A new placement: write `placements/<machine>/<unit>`. */
export interface PlaceDecision {
  readonly unit: string;
  readonly machine: string;
  /** Units this placement displaces from `machine` (Replaces=); each is also in `unplace`. */
  readonly displaces: readonly string[];
  /** The ports it holds on `machine`, in Port= order; absent for a unit without Port=. */
  readonly ports?: readonly PlannedPort[];
}

/** An existing placement that stays where it is, but holds other ports from now on. */
export interface PortChange {
  readonly unit: string;
  readonly machine: string;
  readonly ports: readonly PlannedPort[];
}

/**
 * Why a placement is removed. `inactive`: the unit is inactive or destroyed. `duplicate`: a
 * non-global unit had several placements. `machine-lost`: its machine left the snapshot.
 * `infeasible`: it no longer passes a checker (see `detail`). `replaced`: a unit that
 * Replaces it took its machine. `peer-moved`: a MachineOf peer left the machine.
 */
export type UnplaceWhy =
  'inactive' | 'duplicate' | 'machine-lost' | 'infeasible' | 'replaced' | 'peer-moved';

/** A placement to delete: `placements/<machine>/<unit>`. */
export interface UnplaceDecision {
  readonly unit: string;
  readonly machine: string;
  readonly why: UnplaceWhy;
  /** Words for people, e.g. `machine is drained` or `replaced by web-v2.service`. */
  readonly detail: string;
}

/** One reason, counted over the machines it excluded (each machine counted once). */
export interface PlacementReason {
  readonly reason: string;
  readonly machines: number;
}

/** Why a unit got no placement; mirrors the `Unscheduled` record of records.proto. */
export interface Unscheduled {
  readonly unit: string;
  /** Machines considered (every machine in the snapshot). */
  readonly machines: number;
  /** Most machines first. */
  readonly reasons: readonly PlacementReason[];
  /** e.g. `0/5 machines: 3 conflict with web@1.service, 2 lack region=us`. */
  readonly summary: string;
}

/** A unit displaced by a Replaces= unit in this pass. */
export interface Displacement {
  readonly unit: string;
  readonly machine: string;
  readonly by: string;
}

/** An infeasible placement left where it is because the pass ran out of moves. */
export interface DeferredMove {
  readonly unit: string;
  readonly machine: string;
  readonly why: UnplaceWhy;
  readonly detail: string;
}

/**
 * The outcome of one pass. Apply `unplace` and `place` together (a moved unit appears in
 * both). Same snapshot and options -> the same plan, entry for entry.
 */
export interface Plan {
  readonly place: readonly PlaceDecision[];
  readonly unplace: readonly UnplaceDecision[];
  /** Active units left without any placement, with their reasons. */
  readonly unscheduled: ReadonlyMap<string, Unscheduled>;
  readonly displaced: readonly Displacement[];
  /** Work left for a later pass because of maxMoves. */
  readonly deferred: readonly DeferredMove[];
  /** Placements kept where they are with other ports: write them in place. */
  readonly portChanges: readonly PortChange[];
  /** Already-placed units stopped or moved by this plan, counted against maxMoves. */
  readonly moves: number;
  /** Machines in the snapshot. */
  readonly machines: number;
}
