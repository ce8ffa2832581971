/**
 * The etcd key layout, under a configurable cluster prefix. Every key store/ reads or writes
 * is built here, and every key a watch reports is parsed back here, so the layout lives in
 * exactly one place.
 *
 * ```
 * <prefix>units/<name>                 Unit
 * <prefix>placements/<machine>/<name>  Placement
 * <prefix>machines/<id>                Machine (agent's lease)
 * <prefix>machine-metadata/<id>        MachineConfig
 * <prefix>states/<name>                UnitState (agent's lease)
 * <prefix>states/<name>/<machine>      UnitState of one copy of a Global unit (agent's lease)
 * <prefix>unscheduled/<name>           Unscheduled
 * <prefix>control/resume-rescheduling  ReschedulingPause (an operator ends that pause)
 * <prefix>scales/<template>            ScaleRequest (the last scale of a template asked for)
 * <prefix>rollouts/<name>              Rollout of a template or plain unit (API, then leader)
 * <prefix>lost-machines/<id>           LostMachine: a machine whose presence vanished (leader)
 * <prefix>schedulers/<replica>         SchedulerReplica (the replica's own lease)
 * <prefix>services/<name>              Service (API, at submit)
 * <prefix>endpoints/<service>/<machine>/<unit>/<port-name>
 *                                      Endpoint (the agent running the unit, its lease)
 * <prefix>secrets/<name>               SecretRecord: a secret, sealed (API)
 * <prefix>election/...                 leader election
 * ```
 */
import { StoreError } from './errors.js';

/** The default cluster prefix. */
export const DEFAULT_PREFIX = '/flotilla/';

/** The kinds of record, one per top-level directory. */
export type KeyKind =
  | 'unit'
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

/** Directory name of each kind, relative to the prefix (with trailing slash). */
export const KIND_DIRS: Readonly<Record<KeyKind, string>> = {
  unit: 'units/',
  placement: 'placements/',
  machine: 'machines/',
  'machine-metadata': 'machine-metadata/',
  state: 'states/',
  unscheduled: 'unscheduled/',
  control: 'control/',
  scale: 'scales/',
  rollout: 'rollouts/',
  'lost-machine': 'lost-machines/',
  scheduler: 'schedulers/',
  service: 'services/',
  endpoint: 'endpoints/',
  secret: 'secrets/',
  election: 'election/',
};

/**
 * What a key means. `machine` is set for placements and for the state of a Global unit's
 * copy (`states/<name>/<machine>`); `name` is the unit name there, else the last segment.
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

  state(name: string): string {
    return this.dir('state') + segment(name, 'unit name');
  }

  /**
   * The state of a Global unit's copy on `machine`. Every machine a Global unit runs on
   * reports its own copy here, so copies never overwrite each other and a lost machine's
   * lease takes only its own copy's record. Sorts right after {@link state}`(name)`.
   */
  globalState(name: string, machine: string): string {
    return `${this.state(name)}/${segment(machine, 'machine id')}`;
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

  /** The directory of one service's endpoints: what a machine routing or resolving it watches. */
  endpointsOf(service: string): string {
    return `${this.dir('endpoint')}${segment(service, 'service name')}/`;
  }

  /** One port of one instance of `service`, running on `machine`. */
  endpoint(service: string, machine: string, unit: string, port: string): string {
    return (
      this.endpointsOf(service) +
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
    if (!key.startsWith(this.prefix)) return undefined;
    const rest = key.slice(this.prefix.length);
    for (const kind of Object.keys(KIND_DIRS) as KeyKind[]) {
      const dir = KIND_DIRS[kind];
      if (!rest.startsWith(dir)) continue;
      const tail = rest.slice(dir.length);
      if (tail === '') return undefined;
      if (kind === 'election') return { kind, name: tail };
      if (kind === 'placement') {
        const parts = tail.split('/');
        const [machine, name] = parts;
        if (parts.length !== 2 || !machine || !name) return undefined;
        return { kind, machine, name };
      }
      if (kind === 'endpoint') {
        const parts = tail.split('/');
        const [service, machine, name, port] = parts;
        if (parts.length !== 4 || !service || !machine || !name || !port) return undefined;
        return { kind, service, machine, name, port };
      }
      if (kind === 'state' && tail.includes('/')) {
        const parts = tail.split('/');
        const [name, machine] = parts;
        if (parts.length !== 2 || !name || !machine) return undefined;
        return { kind, name, machine };
      }
      return tail.includes('/') ? undefined : { kind, name: tail };
    }
    return undefined;
  }
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
