/**
 * The unit-file language's data model: what `parseUnit` produces and every other part of
 * Flotilla (planner, agent, API) consumes. Plain data, no behaviour, so it can cross module
 * boundaries and be built by test factories.
 */

/** Desired and derived unit states, fleet's three. */
export type UnitStateName = 'inactive' | 'loaded' | 'launched';

/** One `Key=Value` line (after continuation lines are joined). */
export interface UnitEntry {
  readonly key: string;
  readonly value: string;
  /** 1-based line of the key in the file. */
  readonly line: number;
}

/** One `[Section]` with its entries in file order; repeated keys appear repeatedly. */
export interface UnitSection {
  readonly name: string;
  readonly line: number;
  readonly entries: readonly UnitEntry[];
}

/** The systemd syntax of a file, before any meaning is given to keys. */
export interface UnitFileSyntax {
  readonly sections: readonly UnitSection[];
}

/** A parsed unit name: `web@3.service` is prefix `web`, instance `3`, type `service`. */
export interface UnitName {
  /** The full name, e.g. `web@3.service`. */
  readonly name: string;
  /** The part before `@` (or before the type suffix when there is no `@`). */
  readonly prefix: string;
  /** The instance after `@`; empty for a template (`web@.service`) and for plain units. */
  readonly instance: string;
  /** The unit type without the dot, e.g. `service`. */
  readonly type: string;
  /** `web@.service`: can only be started through instances. */
  readonly isTemplate: boolean;
  /** `web@3.service`. */
  readonly isInstance: boolean;
  /** For instances and templates, the template's name (`web@.service`); otherwise empty. */
  readonly template: string;
}

/**
 * MachineMetadata requirements: every key must match (AND), and for one key any of its
 * values may (OR). `region=eu region=us disk=ssd` is `{region: [eu, us], disk: [ssd]}`.
 */
export type MetadataRequirement = ReadonlyMap<string, readonly string[]>;

/** The `[X-Fleet]` section, with fleet's old names folded into the new ones. */
export interface FleetOptions {
  /** Full machine id or a unique prefix of one; empty when unset. */
  readonly machineId: string;
  readonly machineMetadata: MetadataRequirement;
  /** Unit names this unit must share a machine with (all of them). */
  readonly machineOf: readonly string[];
  /** Globs of unit names this unit may never share a machine with. */
  readonly conflicts: readonly string[];
  readonly global: boolean;
  /** Globs of unit names this unit displaces from its machine. */
  readonly replaces: readonly string[];
  /** At most this many instances of the same template per machine; 0 means no cap. */
  readonly maxPerMachine: number;
  /**
   * `MaxInstances=`: at most this many instances of the template may be started (a scale's
   * count, or its instances loaded or launched); 0 when unset (the scheduler's
   * `--max-instances` alone applies). The lower of the two is the template's ceiling.
   */
  readonly maxInstances: number;
  /** Spread instances of the same template evenly over this metadata key; empty when unset. */
  readonly spreadBy: string;
  /** At-most-once: stop this long (ms) after the agent's last renewed lease; 0 means never. */
  readonly stopOnDisconnectMs: number;
  /** `Update*=`: this unit's defaults for `flotctl update`; absent when none is set. */
  readonly update?: UpdateDefaults;
}

/**
 * `[X-Fleet] UpdateParallelism= UpdateDelaySec= UpdateMonitorSec= UpdateHealthyDeadlineSec=
 * UpdateFailureAction=`.
 */
export interface UpdateDefaults {
  readonly parallelism?: number;
  readonly delayMs?: number;
  readonly monitorMs?: number;
  /** How long an updated instance has to become active and healthy (more than 0, at most 1h). */
  readonly healthyDeadlineMs?: number;
  readonly failureAction?: 'pause' | 'rollback';
}

/** What a unit reserves on its machine, and the limits of its container. 0 means unlimited. */
export interface ResourceRequest {
  readonly cpuMillicores: number;
  readonly memoryBytes: number;
  readonly tasks: number;
}

/**
 * One exec line (`ExecStart=` and friends). Arguments keep `$VAR`/`${VAR}` references: they
 * are expanded by the agent against the unit's environment when the command runs.
 */
export interface ExecCommand {
  /**
   * The program as written (after the prefixes are stripped): an absolute path, or a bare
   * name (no `/`) that the agent resolves against `PATH`, like systemd >= 239.
   */
  readonly path: string;
  /** argv, argv[0] included (replaced by the `@` prefix's second word when given). */
  readonly argv: readonly string[];
  /** `-` prefix: a failing exit status is not a failure. */
  readonly ignoreFailure: boolean;
  /** `+` prefix: runs with full privileges (outside the User= switch). */
  readonly privileged: boolean;
  /** 1-based line of the key in the file. */
  readonly line: number;
}

export type ServiceType = 'simple' | 'exec' | 'oneshot';
export type RestartPolicy = 'no' | 'on-failure' | 'always';

/** A file named by `EnvironmentFile=`; `-path` means a missing file is not an error. */
export interface EnvironmentFileRef {
  readonly path: string;
  readonly optional: boolean;
}

/** The `[Service]` section. Durations are milliseconds. */
export interface ServiceOptions {
  readonly type: ServiceType;
  readonly execStartPre: readonly ExecCommand[];
  readonly execStart: readonly ExecCommand[];
  readonly execStartPost: readonly ExecCommand[];
  readonly execStop: readonly ExecCommand[];
  readonly execStopPost: readonly ExecCommand[];
  readonly restart: RestartPolicy;
  readonly restartSecMs: number;
  /** 0 means no timeout (systemd's `TimeoutStopSec=0` and `infinity`). */
  readonly timeoutStopSecMs: number;
  /** Signal name such as `SIGTERM`. */
  readonly killSignal: string;
  /** `Environment=` assignments in order; later ones win. */
  readonly environment: readonly (readonly [string, string])[];
  readonly environmentFiles: readonly EnvironmentFileRef[];
  /** Empty when unset. As written: an absolute path or `~`, optionally `-`-prefixed (missing is OK). */
  readonly workingDirectory: string;
  /** Empty when unset (the agent's own user). */
  readonly user: string;
  /** Empty when unset (the default rootfs of the runtime). */
  readonly rootDirectory: string;
  readonly privateNetwork: boolean;
  /** `AmbientCapabilities=`: what the unit's processes hold (kernel order); absent: none. */
  readonly ambientCapabilities?: readonly string[];
  /** `CapabilityBoundingSet=`: what they could ever gain; absent: the ambient set. */
  readonly capabilityBoundingSet?: readonly string[];
  /** `NoNewPrivileges=`; absent: on in containers (the process driver cannot enforce it). */
  readonly noNewPrivileges?: boolean;
  readonly resources: ResourceRequest;
  /**
   * Set by the agent for image units only: host directories bound into the container
   * (`[Container] Volume=`), whose root is then `rootDirectory` (the unit's overlay).
   */
  readonly binds?: readonly BindMount[];
  /** Set by the agent for image units only: the pinned image that `rootDirectory` holds. */
  readonly image?: string;
  /** The unit's health check (`HealthCmd=` and friends); absent when it has none. */
  readonly health?: HealthCheck;
  /** `StartLimitIntervalSec=`/`StartLimitBurst=`; absent: systemd's defaults (start-limit.ts). */
  readonly startLimit?: StartLimit;
  /** `Secret=` names (secrets.ts), each once; absent or empty: none. */
  readonly secrets?: readonly string[];
}

/**
 * systemd's start rate limit: more than `burst` starts within `intervalMs` and the unit ends
 * failed. Either at 0: no limit.
 */
export interface StartLimit {
  readonly intervalMs: number;
  readonly burst: number;
}

/** `Pull=`: when an agent fetches the image (podman's policies). */
export type PullPolicy = 'missing' | 'always' | 'never' | 'newer';

/** One `Volume=`: a host path (absolute) or a named volume the agent keeps, at `destination`. */
export interface VolumeSpec {
  /** An absolute host path, or a volume name (`[A-Za-z0-9][A-Za-z0-9_.-]*`). */
  readonly source: string;
  readonly named: boolean;
  /** Absolute, inside the container. */
  readonly destination: string;
  readonly readOnly: boolean;
}

/**
 * The `[Container]` section (podman Quadlet's names): the unit runs an OCI image. What the
 * image itself says (Entrypoint, Cmd, Env, WorkingDir, User) is only known once an agent has
 * pulled it; these are the unit's overrides.
 */
export interface ContainerOptions {
  /** `Image=` as written (after submit, pinned: `host/repo:tag@sha256:...`). */
  readonly image: string;
  /** 1-based line of `Image=`. */
  readonly imageLine: number;
  /** `Exec=`: the arguments, replacing the image's Cmd; undefined when unset. */
  readonly exec?: readonly string[];
  /** `Entrypoint=`: replaces the image's Entrypoint (and then its Cmd); undefined when unset. */
  readonly entrypoint?: readonly string[];
  readonly environment: readonly (readonly [string, string])[];
  /** Empty when unset (the image's WorkingDir). */
  readonly workingDir: string;
  /** Empty when unset (the image's User). */
  readonly user: string;
  readonly volumes: readonly VolumeSpec[];
  readonly pull: PullPolicy;
  /** `Secret=` names (secrets.ts), each once; absent or empty: none. */
  readonly secrets?: readonly string[];
}

/** A host directory bound into a container (an image unit's `Volume=`, resolved by the agent). */
export interface BindMount {
  readonly source: string;
  readonly destination: string;
  readonly readOnly: boolean;
}

/** `HealthOnFailure=`: what the agent does once a unit turns unhealthy. */
export type HealthOnFailure = 'none' | 'kill' | 'restart' | 'stop';

/** A health check (podman Quadlet's keys). Durations are milliseconds. */
export interface HealthCheck {
  /** Run as `/bin/sh -c <command>` inside the unit's container, specifiers expanded. */
  readonly command: string;
  readonly intervalMs: number;
  /** A check still running after this long is killed and counts as a failure. */
  readonly timeoutMs: number;
  /** Consecutive failures that make the unit unhealthy. */
  readonly retries: number;
  /** Failures in this long after the main process started do not count. */
  readonly startPeriodMs: number;
  readonly onFailure: HealthOnFailure;
  /** 1-based line of `HealthCmd=`. */
  readonly line: number;
}

/**
 * One `[X-Service] Port=`: `Port=http` (dynamic: the leader picks a free port of the
 * machine's range when it places the unit) or `Port=http=8080` (static).
 */
export interface PortRequest {
  /** Lower-case letters, digits and `-`; the unit gets it as `$FLOTILLA_PORT_<NAME>`. */
  readonly name: string;
  /** 1-65535 for a static port; 0 for a dynamic one. */
  readonly number: number;
  /** 1-based line of the `Port=`. */
  readonly line: number;
}

/** The `[X-Service]` section: what the unit serves, for endpoints, DNS and the mesh. */
export interface ServiceDeclaration {
  /** `Name=`, default the unit's prefix (`web@3.service` -> `web`). */
  readonly name: string;
  /** `Port=` lines in file order; at least one. */
  readonly ports: readonly PortRequest[];
  /** `Publish=`: the routing mesh's port on every machine; 0 when unset. */
  readonly publish: number;
  /** The Port= name the mesh forwards to (`Publish=NUMBER:NAME`, default the first Port=). */
  readonly publishPortName: string;
  /** `Tags=` words, in order, without repeats. */
  readonly tags: readonly string[];
  /** `DrainSec=`: how long the agent waits between deleting the endpoints and stopping. */
  readonly drainMs: number;
}

/** A unit file with all meaning resolved, for one concrete name (specifiers expanded). */
export interface UnitDefinition {
  readonly name: UnitName;
  readonly description: string;
  readonly fleet: FleetOptions;
  readonly service: ServiceOptions;
  /** Set when the file has a `[Container]` section: the unit runs an image. */
  readonly container?: ContainerOptions;
  /** Set when the file has an `[X-Service]` section: the unit serves ports. */
  readonly xService?: ServiceDeclaration;
  /** Stable content hash of the file text (see hash.ts). */
  readonly hash: string;
  readonly syntax: UnitFileSyntax;
}
