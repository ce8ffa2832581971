/**
 * The JSON the scheduler's HTTP API answers with (docs/http-api.md): the proto messages'
 * JSON form, camelCase, 64-bit numbers as strings, fields at their default left out (so every
 * field is optional here). Only what the console reads is typed.
 */

export interface UnitJson {
  readonly name?: string;
  readonly file?: string;
  readonly hash?: string;
  readonly desiredState?: string;
}

export interface PlacementJson {
  readonly unit?: string;
  readonly machine?: string;
  readonly desiredState?: string;
}

export interface HealthCheckJson {
  readonly at?: string;
  readonly exitStatus?: number;
  readonly output?: string;
  readonly durationMs?: number;
}

export interface UnitStateJson {
  readonly name?: string;
  readonly machine?: string;
  readonly loadState?: string;
  readonly activeState?: string;
  readonly subState?: string;
  readonly pid?: number;
  readonly exitStatus?: number;
  readonly restarts?: number;
  readonly since?: string;
  readonly message?: string;
  readonly health?: string;
  readonly healthFailures?: number;
  readonly healthChecks?: readonly HealthCheckJson[];
  readonly restartReason?: string;
}

export interface PlacementReasonJson {
  readonly reason?: string;
  readonly machines?: number;
}

export interface UnscheduledJson {
  readonly unit?: string;
  readonly machines?: number;
  readonly reasons?: readonly PlacementReasonJson[];
  readonly summary?: string;
  readonly waiting?: number;
}

export interface GlobalInstanceJson {
  readonly placement?: PlacementJson;
  readonly state?: UnitStateJson;
  readonly currentState?: string;
}

export interface UnitStatusJson {
  readonly unit?: UnitJson;
  readonly placement?: PlacementJson;
  readonly state?: UnitStateJson;
  readonly unscheduled?: UnscheduledJson;
  readonly currentState?: string;
  readonly instances?: readonly GlobalInstanceJson[];
  readonly addresses?: Readonly<Record<string, string>>;
  readonly global?: boolean;
  readonly image?: string;
}

export interface ListUnitsJson {
  readonly units?: readonly UnitStatusJson[];
  readonly nextPageToken?: string;
  readonly revision?: string;
  readonly warnings?: readonly string[];
}

export interface ResourcesJson {
  readonly cpuMillicores?: string;
  readonly memoryBytes?: string;
}

export interface MachineJson {
  readonly id?: string;
  readonly addresses?: readonly string[];
  readonly metadata?: Readonly<Record<string, string>>;
  readonly capacity?: ResourcesJson;
  readonly driver?: string;
  readonly version?: string;
}

export interface MachineConfigJson {
  readonly machine?: string;
  readonly metadata?: Readonly<Record<string, string>>;
  readonly drained?: boolean;
}

export interface LostMachineJson {
  readonly machine?: MachineJson;
  readonly lostUnixMs?: string;
  readonly units?: number;
}

export interface MachineStatusJson {
  readonly machine?: MachineJson;
  readonly metadata?: Readonly<Record<string, string>>;
  readonly drained?: boolean;
  readonly units?: number;
  readonly reserved?: ResourcesJson;
  readonly lost?: LostMachineJson;
}

export interface ListMachinesJson {
  readonly machines?: readonly MachineStatusJson[];
  readonly nextPageToken?: string;
}

export interface RolloutStepJson {
  readonly unit?: string;
}

export interface RolloutJson {
  readonly unit?: string;
  readonly phase?: string;
  readonly rollback?: boolean;
  readonly parallelism?: number;
  readonly batch?: readonly RolloutStepJson[];
  readonly failed?: readonly string[];
  readonly message?: string;
  readonly total?: number;
  readonly toHash?: string;
  readonly fromHash?: string;
  readonly updatedAt?: string;
}

export interface RolloutStatusJson {
  readonly rollout?: RolloutJson;
  readonly updated?: number;
  readonly pending?: number;
  readonly inProgress?: number;
  readonly failed?: number;
  readonly total?: number;
}

/** One change of the cluster, as Events.Watch sends it. */
export interface EventJson {
  readonly revision?: string;
  readonly kind?: string;
  readonly type?: string;
  readonly name?: string;
  readonly machine?: string;
  readonly unit?: UnitJson;
  readonly placement?: PlacementJson;
  readonly state?: UnitStateJson;
  readonly machineRecord?: MachineJson;
  readonly machineConfig?: MachineConfigJson;
  readonly unscheduled?: UnscheduledJson;
  readonly global?: boolean;
  readonly rollout?: RolloutJson;
}

export interface PlannedUnitJson {
  readonly name?: string;
  readonly machine?: string;
  readonly displaces?: readonly string[];
  readonly unscheduled?: UnscheduledJson;
  readonly global?: boolean;
}

export interface PlanJson {
  readonly units?: readonly PlannedUnitJson[];
  readonly machines?: number;
}
