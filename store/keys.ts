/**
 * The etcd key layout, under a configurable cluster prefix. Every key store/ reads or writes
 * is built here, and every key a watch reports is parsed back here, so the layout lives in
 * exactly one place.
 *
 * ```
 * <prefix>units/<name>                 Unit
 * <prefix>instance-counts/<template>   InstanceCount: a template's counted instances (API)
 * <prefix>placements/<machine>/<name>  Placement
 * <prefix>machines/<id>                Machine (agent's lease)
 * <prefix>machine-metadata/<id>        MachineConfig
 * <prefix>unit-states/<machine>/<name> UnitState as <machine> reports it (that agent's lease)
 * <prefix>unit-states/<machine>/<name>/global
 *                                      UnitState of <machine>'s copy of a Global unit (same)
 * <prefix>unscheduled/<name>           Unscheduled
 * <prefix>control/resume-rescheduling  ReschedulingPause (an operator ends that pause)
 * <prefix>scales/<template>            ScaleRequest (the last scale of a template asked for)
 * <prefix>rollouts/<name>              Rollout of a template or plain unit (API, then leader)
 * <prefix>lost-machines/<id>           LostMachine: a machine whose presence vanished (leader)
 * <prefix>schedulers/<replica>         SchedulerReplica (the replica's own lease)
 * <prefix>services/<name>              Service (API, at submit)
 * <prefix>unit-endpoints/<machine>/<service>/<unit>/<port-name>
 *                                      Endpoint (the agent running the unit, its lease)
 * <prefix>secrets/<name>               SecretRecord: a secret, sealed (API)
 * <prefix>election/...                 leader election
 * ```
 *
 * What an agent writes is keyed by its machine first, so an etcd role's prefix grant confines
 * each machine to its own records (store/etcd-auth.ts). Agents of earlier versions wrote
 * `states/<name>`, `states/<name>/<machine>` (Global copies) and
 * `endpoints/<service>/<machine>/<unit>/<port-name>`; those keys are still parsed (marked
 * `legacy`), so their records count until their agents restart and their leases take them.
 * They live in other directories because the old and new forms could not be told apart by
 * shape: machine ids, unit names and service names share their characters.
 */
import { StoreError } from './errors.js';

/** The default cluster prefix. */
export const DEFAULT_PREFIX = '/flotilla/';

/** The kinds of record, one per top-level directory. */
export type KeyKind =
  | 'unit'
  | 'instance-count'
  | 'placement'
  | 'machine'
  | 'machine-metadata'
  | 'state'
  | 'unscheduled'
  | 'control'
  | 'scale'
  | 'rollout'
  | 'lost-machine'
  | 'scheduler'
  | 'service'
  | 'endpoint'
  | 'secret'
  | 'election';

/** Directories of records written by agents of earlier versions (read, never written). */
export const LEGACY_DIRS: Readonly<Partial<Record<KeyKind, string>>> = {
  state: 'states/',
  endpoint: 'endpoints/',
};

/** The last segment of a Global unit's copy state key. */
const GLOBAL_MARK = 'global';

/** Directory name of each kind, relative to the prefix (with trailing slash). */
export const KIND_DIRS: Readonly<Record<KeyKind, string>> = {
  unit: 'units/',
  'instance-count': 'instance-counts/',
  placement: 'placements/',
  machine: 'machines/',
  'machine-metadata': 'machine-metadata/',
  state: 'unit-states/',
  unscheduled: 'unscheduled/',
  control: 'control/',
  scale: 'scales/',
  rollout: 'rollouts/',
  'lost-machine': 'lost-machines/',
  scheduler: 'schedulers/',
  service: 'services/',
  endpoint: 'unit-endpoints/',
  secret: 'secrets/',
  election: 'election/',
};

/**
 * What a key means. `machine` is set for placements, endpoints and states (except a legacy
 * `states/<name>`, which names none); `name` is the unit name there, else the last segment.
 */
export interface ParsedKey {
  readonly kind: KeyKind;
  /** For `endpoint`: the service, then `name` is the unit and `port` the Port= name. */
  readonly service?: string;
  readonly port?: string;
  /**
   * Unit name, or machine id for `machine`, `machine-metadata` and `lost-machine`, the replica
   * id for `scheduler`, or the election key's rest.
   */
  readonly name: string;
  readonly machine?: string;
  /** For `state`: the record is the state of one copy of a Global unit. */
  readonly global?: boolean;
  /** The key is in an earlier version's layout (see the module comment). */
  readonly legacy?: boolean;
}

/** `''` becomes the default; a missing trailing slash is added, so `/a` and `/a/` are one. */
export function normalizePrefix(prefix: string | undefined): string {
  if (prefix === undefined || prefix === '') return DEFAULT_PREFIX;
  return prefix.endsWith('/') ? prefix : `${prefix}/`;
}

/** Builders and the parser for one cluster prefix. Immutable. */
export class Keys {
  /** The normalised prefix, always ending in `/`. */
  readonly prefix: string;

  constructor(prefix?: string) {
    this.prefix = normalizePrefix(prefix);
  }

  /** The directory (a key prefix, ending in `/`) holding every record of `kind`. */
  dir(kind: KeyKind): string {
    return this.prefix + KIND_DIRS[kind];
  }

  unit(name: string): string {
    return this.dir('unit') + segment(name, 'unit name');
  }

  /**
   * The numbered instances of template `template` (`web@.service`) that a scale made, as one
   * record (store/instance-counts.ts); the mirror shows each as if `units/<instance>` held it.
   */
  instanceCount(template: string): string {
    return this.dir('instance-count') + segment(template, 'template name');
  }

  placement(machine: string, name: string): string {
    return this.placementsOn(machine) + segment(name, 'unit name');
  }

  /** The directory of one machine's placements: what that machine's agent watches. */
  placementsOn(machine: string): string {
    return `${this.dir('placement')}${segment(machine, 'machine id')}/`;
  }

  machine(id: string): string {
    return this.dir('machine') + segment(id, 'machine id');
  }

  machineMetadata(id: string): string {
    return this.dir('machine-metadata') + segment(id, 'machine id');
  }

  /** The state of unit `name` (not Global) as `machine`'s agent reports it. */
  state(machine: string, name: string): string {
    return this.statesOn(machine) + segment(name, 'unit name');
  }

  /**
   * The state of a Global unit's copy on `machine`. Every machine a Global unit runs on
   * reports its own copy here, so copies never overwrite each other and a lost machine's
   * lease takes only its own copy's record. Sorts right after {@link state}`(machine, name)`.
   */
  globalState(name: string, machine: string): string {
    return `${this.state(machine, name)}/${GLOBAL_MARK}`;
  }

  /** The directory of every state one machine's agent reports: its role may write it. */
  statesOn(machine: string): string {
    return `${this.dir('state')}${segment(machine, 'machine id')}/`;
  }

  /** An earlier version's `states/<name>` (tests of the upgrade write it). */
  legacyState(name: string): string {
    return `${this.prefix}${LEGACY_DIRS.state ?? ''}${segment(name, 'unit name')}`;
  }

  /** An earlier version's `states/<name>/<machine>` of a Global unit's copy. */
  legacyGlobalState(name: string, machine: string): string {
    return `${this.legacyState(name)}/${segment(machine, 'machine id')}`;
  }

  /** The directory of an earlier version's records of `kind` (`states/`, `endpoints/`). */
  legacyDir(kind: 'state' | 'endpoint'): string {
    return `${this.prefix}${LEGACY_DIRS[kind] ?? ''}`;
  }

  unscheduled(name: string): string {
    return this.dir('unscheduled') + segment(name, 'unit name');
  }

  /** An operator's request to the leader to end the rescheduling pause the record names. */
  resumeRescheduling(): string {
    return `${this.dir('control')}resume-rescheduling`;
  }

  /**
   * The last scale asked of a template (`web@.service`): written as each scale round begins,
   * and required unchanged by every transaction of that round, so of two concurrent scales
   * the one that began last wins and the other stops (scheduler/api/scale.ts).
   */
  scale(template: string): string {
    return this.dir('scale') + segment(template, 'template name');
  }

  /** The rolling update of a template (or plain unit) `name`. */
  rollout(name: string): string {
    return this.dir('rollout') + segment(name, 'unit name');
  }

  /** A machine the leader saw vanish, kept for a while (see LostMachine in records.proto). */
  lostMachine(id: string): string {
    return this.dir('lost-machine') + segment(id, 'machine id');
  }

  /** One scheduler replica's advertisement, under its own lease. */
  scheduler(replica: string): string {
    return this.dir('scheduler') + segment(replica, 'replica id');
  }

  /** A service a submitted unit declares ([X-Service]). */
  service(name: string): string {
    return this.dir('service') + segment(name, 'service name');
  }

  /** The directory of every endpoint one machine's agent publishes: its role may write it. */
  endpointsOn(machine: string): string {
    return `${this.dir('endpoint')}${segment(machine, 'machine id')}/`;
  }

  /** One port of one instance of `service`, running on `machine`. */
  endpoint(service: string, machine: string, unit: string, port: string): string {
    return (
      this.endpointsOn(machine) +
      `${segment(service, 'service name')}/${segment(unit, 'unit name')}/${segment(port, 'port name')}`
    );
  }

  /** An earlier version's `endpoints/<service>/<machine>/<unit>/<port-name>`. */
  legacyEndpoint(service: string, machine: string, unit: string, port: string): string {
    return (
      `${this.legacyDir('endpoint')}${segment(service, 'service name')}/` +
      `${segment(machine, 'machine id')}/${segment(unit, 'unit name')}/${segment(port, 'port name')}`
    );
  }

  /** A secret's sealed value (secrets.proto): only the agents that run a unit naming it read it. */
  secret(name: string): string {
    return this.dir('secret') + segment(name, 'secret name');
  }

  /** The election prefix; candidates' keys live below it. */
  election(): string {
    return this.dir('election');
  }

  /**
   * Maps a full key back to its kind and names, or `undefined` for keys outside this layout
   * (another prefix, an unknown directory, a malformed placement or state key).
   */
  parse(key: string): ParsedKey | undefined {
    // Every change a watch delivers is parsed here (hundreds of thousands in a big scale), so
    // it reads the key in place: the kinds listed once, no copy of its tail, no split.
    if (!key.startsWith(this.prefix)) return undefined;
    const at = this.prefix.length;
    for (const [kind, dir] of KIND_ENTRIES) {
      if (!key.startsWith(dir, at)) continue;
      const start = at + dir.length;
      if (start === key.length) return undefined;
      if (kind === 'election') return { kind, name: key.slice(start) };
      if (kind === 'placement') {
        const [machine, name] = segments(key, start, 2);
        return machine === undefined || name === undefined ? undefined : { kind, machine, name };
      }
      if (kind === 'endpoint') {
        const [machine, service, name, port] = segments(key, start, 4);
        if (machine === undefined || service === undefined || name === undefined) return undefined;
        return port === undefined ? undefined : { kind, service, machine, name, port };
      }
      if (kind === 'state') {
        const [machine, name, mark] = segments(key, start, 3, 2);
        if (machine === undefined || name === undefined) return undefined;
        if (mark === undefined) return { kind, machine, name };
        return mark === GLOBAL_MARK ? { kind, machine, name, global: true } : undefined;
      }
      return key.includes('/', start) ? undefined : { kind, name: key.slice(start) };
    }
    return parseLegacy(key.slice(at));
  }
}

const KIND_ENTRIES = Object.entries(KIND_DIRS) as [KeyKind, string][];

const NO_SEGMENTS: readonly never[] = [];

/**
 * The `/`-separated segments of `key` from `start`: exactly `most` of them, or at least
 * `least` (default: `most`), each non-empty; otherwise none.
 */
function segments(key: string, start: number, most: number, least = most): readonly string[] {
  const out: string[] = [];
  let from = start;
  for (;;) {
    const slash = key.indexOf('/', from);
    const end = slash < 0 ? key.length : slash;
    if (end === from || out.length === most) return NO_SEGMENTS;
    out.push(key.slice(from, end));
    if (slash < 0) return out.length >= least ? out : NO_SEGMENTS;
    from = slash + 1;
  }
}

/** A key of an earlier version's layout (LEGACY_DIRS), relative to the prefix. */
function parseLegacy(rest: string): ParsedKey | undefined {
  const [dir, ...parts] = rest.split('/');
  if (parts.some((p) => p === '')) return undefined;
  if (`${dir}/` === LEGACY_DIRS.state) {
    const [name, machine] = parts;
    if (name === undefined || parts.length > 2) return undefined;
    if (machine === undefined) return { kind: 'state', name, legacy: true };
    return { kind: 'state', name, machine, global: true, legacy: true };
  }
  if (`${dir}/` === LEGACY_DIRS.endpoint) {
    const [service, machine, name, port] = parts;
    if (parts.length !== 4 || !service || !machine || !name || !port) return undefined;
    return { kind: 'endpoint', service, machine, name, port, legacy: true };
  }
  return undefined;
}

/** The end of the key range covering every key that starts with `prefix` (etcd's range_end). */
export function prefixRangeEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    const byte = end[i] ?? 0;
    if (byte < 0xff) {
      end[i] = byte + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // every key from `prefix` on
}

function segment(value: string, what: string): string {
  if (value === '' || value.includes('/')) {
    throw new StoreError('invalid', `invalid ${what} ${JSON.stringify(value)}: empty or has '/'`);
  }
  return value;
}
