/**
 * Typed records: the canonical JSON form of the proto messages in
 * proto/flotilla/v1/records.proto, so `etcdctl get` stays readable and every reader decodes
 * the same way. int64 fields are JSON strings on the wire and `bigint` here.
 */
import {
  Endpoint,
  LostMachine,
  Machine,
  MachineConfig,
  Placement,
  Rollout,
  SchedulerReplica,
  Service,
  Unit,
  UnitState,
  Unscheduled,
} from '../proto/flotilla/v1/records.js';
import { InstanceCount } from '../proto/flotilla/v1/counts.js';
import { ReschedulingPause } from '../proto/flotilla/v1/machines.js';
import { ScaleRequest } from '../proto/flotilla/v1/units.js';
import { SecretRecord } from '../proto/flotilla/v1/secrets.js';
import { StoreError } from './errors.js';
import { instanceCountProblem } from './instance-counts.js';
import type { KeyKind } from './keys.js';

/** The record type stored under each key kind (election keys hold plain strings). */
export interface RecordTypes {
  unit: Unit;
  'instance-count': InstanceCount;
  placement: Placement;
  machine: Machine;
  'machine-metadata': MachineConfig;
  state: UnitState;
  unscheduled: Unscheduled;
  control: ReschedulingPause;
  scale: ScaleRequest;
  rollout: Rollout;
  'lost-machine': LostMachine;
  scheduler: SchedulerReplica;
  service: Service;
  endpoint: Endpoint;
  secret: SecretRecord;
}

/** A key kind that holds a proto record. */
export type RecordKind = keyof RecordTypes;

/** Encodes and decodes one record type. `decode` never returns a half-read record. */
export interface RecordCodec<T> {
  /** The proto message name, for error messages. */
  readonly type: string;
  /** The JSON text stored in etcd. */
  encode(value: T): string;
  /** Parses a stored value; throws StoreError `corrupt` naming `key` when it is not a `T`. */
  decode(key: string, raw: Buffer | string): T;
}

/** The generated message helpers this module needs (ts-proto's `MessageFns` subset). */
interface JsonMessageFns<T> {
  fromJSON(object: unknown): T;
  toJSON(message: T): unknown;
  fromPartial(object: object): T;
}

/** What JSON a field's value may be, from its default in a fresh message. */
type FieldKind = 'string' | 'number' | 'boolean' | 'array' | 'object';

/** A message's fields, each under its JSON name and its proto name, with the kind it takes. */
function fieldsOf(empty: object): { json: string; proto: string; kind: FieldKind }[] {
  return Object.entries(empty).map(([json, zero]) => ({
    json,
    proto: json.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`),
    kind:
      typeof zero === 'string'
        ? 'string'
        : typeof zero === 'number' || typeof zero === 'bigint'
          ? 'number' // int64 as a JSON string or number, enums by name or number
          : typeof zero === 'boolean'
            ? 'boolean'
            : Array.isArray(zero)
              ? 'array'
              : 'object',
  }));
}

/**
 * Why a parsed record's known fields do not have their types (ts-proto's fromJSON would coerce
 * `{"name": 5}` into the name "5"), or undefined. Unknown fields are ignored, as proto JSON
 * allows: a record written by a newer Flotilla still decodes.
 */
function wrongTypes(
  parsed: Record<string, unknown>,
  fields: ReturnType<typeof fieldsOf>,
): string | undefined {
  for (const { json, proto, kind } of fields) {
    const value = parsed[json] ?? parsed[proto];
    if (value === undefined || value === null) continue;
    const ok =
      kind === 'string'
        ? typeof value === 'string'
        : kind === 'number'
          ? typeof value === 'number' || typeof value === 'string'
          : kind === 'boolean'
            ? typeof value === 'boolean'
            : kind === 'array'
              ? Array.isArray(value)
              : typeof value === 'object';
    if (!ok) return `field ${json} is ${Array.isArray(value) ? 'an array' : typeof value}`;
  }
  return undefined;
}

function jsonCodec<T>(type: string, fns: JsonMessageFns<T>): RecordCodec<T> {
  const fields = fieldsOf(fns.fromPartial({}) as object);
  return {
    type,
    encode: (value) => JSON.stringify(fns.toJSON(value)),
    decode: (key, raw) => {
      const text = typeof raw === 'string' ? raw : raw.toString('utf8');
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch (err) {
        throw corrupt(type, key, err);
      }
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
        throw corrupt(type, key, new Error(`not a JSON object: ${text.slice(0, 80)}`));
      }
      const why = wrongTypes(parsed as Record<string, unknown>, fields);
      if (why !== undefined) throw corrupt(type, key, new Error(why));
      try {
        return fns.fromJSON(parsed);
      } catch (err) {
        throw corrupt(type, key, err);
      }
    },
  };
}

/** `codec`, refusing (as corrupt) a decoded value `problem` finds fault with. */
function checked<T>(
  codec: RecordCodec<T>,
  problem: (key: string, value: T) => string | undefined,
): RecordCodec<T> {
  return {
    ...codec,
    decode: (key, raw) => {
      const value = codec.decode(key, raw);
      const why = problem(key, value);
      if (why !== undefined) throw corrupt(codec.type, key, new Error(why));
      return value;
    },
  };
}

function corrupt(type: string, key: string, cause: unknown): StoreError {
  const why = cause instanceof Error ? cause.message : String(cause);
  return new StoreError('corrupt', `value at ${key} is not a ${type}: ${why}`, { key, cause });
}

/** One codec per record kind. */
export const codecs: { readonly [K in RecordKind]: RecordCodec<RecordTypes[K]> } = {
  unit: jsonCodec('Unit', Unit),
  'instance-count': checked(jsonCodec('InstanceCount', InstanceCount), instanceCountProblem),
  placement: jsonCodec('Placement', Placement),
  machine: jsonCodec('Machine', Machine),
  'machine-metadata': jsonCodec('MachineConfig', MachineConfig),
  state: jsonCodec('UnitState', UnitState),
  unscheduled: jsonCodec('Unscheduled', Unscheduled),
  control: jsonCodec('ReschedulingPause', ReschedulingPause),
  scale: jsonCodec('ScaleRequest', ScaleRequest),
  rollout: jsonCodec('Rollout', Rollout),
  'lost-machine': jsonCodec('LostMachine', LostMachine),
  scheduler: jsonCodec('SchedulerReplica', SchedulerReplica),
  service: jsonCodec('Service', Service),
  endpoint: jsonCodec('Endpoint', Endpoint),
  secret: jsonCodec('SecretRecord', SecretRecord),
};

/** The codec for a key kind, or undefined for kinds that hold no record (election). */
export function codecForKind(kind: KeyKind): RecordCodec<RecordTypes[RecordKind]> | undefined {
  return kind === 'election' ? undefined : codecs[kind];
}

/** A codec for raw UTF-8 strings (election values, test keys). */
export const stringCodec: RecordCodec<string> = {
  type: 'string',
  encode: (value) => value,
  decode: (_key, raw) => (typeof raw === 'string' ? raw : raw.toString('utf8')),
};
