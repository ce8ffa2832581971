/**
 * The `[X-Fleet]` section with fleet's semantics: scheduling constraints, fleet's pre-0.9
 * option names as aliases, Flotilla's additions (MaxPerMachine, MaxInstances, SpreadBy,
 * StopOnDisconnect) and the combinations that can never be placed. Unknown keys are errors: a misspelt
 * constraint silently ignored would place a unit where it must not run.
 */
import { MAX_PROBLEMS, UnitError } from './errors.js';
import { compileGlob } from './glob.js';
import type { FleetOptions, UnitEntry, UnitName, UpdateDefaults } from './model.js';
import { parseUnitName } from './names.js';
import { expandSpecifiers } from './specifiers.js';
import { excerpt } from './excerpt.js';
import { didYouMean, parseTimeSpanMs, requireBoolean, timeSpanHint } from './values.js';
import { splitWords } from './words.js';

/** fleet's old names -> the current ones. */
export const FLEET_ALIASES: ReadonlyMap<string, string> = new Map([
  ['X-ConditionMachineID', 'MachineID'],
  ['X-ConditionMachineBootID', 'MachineID'],
  ['X-ConditionMachineOf', 'MachineOf'],
  ['X-Conflicts', 'Conflicts'],
  ['X-ConditionMachineMetadata', 'MachineMetadata'],
]);

/** Every `[X-Fleet]` key Flotilla understands (aliases aside). */
export const FLEET_KEYS: readonly string[] = [
  'MachineID',
  'MachineMetadata',
  'MachineOf',
  'Conflicts',
  'Global',
  'Replaces',
  'MaxPerMachine',
  'MaxInstances',
  'SpreadBy',
  'StopOnDisconnect',
  'UpdateParallelism',
  'UpdateDelaySec',
  'UpdateMonitorSec',
  'UpdateHealthyDeadlineSec',
  'UpdateFailureAction',
];

const ALL_NAMES = [...FLEET_KEYS, ...FLEET_ALIASES.keys()];

/** A value with the line that set it, so combination errors can point at a line. */
interface At<T> {
  readonly value: T;
  readonly line: number;
}

interface State {
  machineId: At<string> | null;
  metadata: At<readonly [string, string]>[];
  machineOf: At<string>[];
  conflicts: At<string>[];
  global: At<boolean> | null;
  replaces: At<string>[];
  maxPerMachine: number;
  maxInstances: At<number> | null;
  spreadBy: string;
  stopOnDisconnectMs: number;
  update: { -readonly [K in keyof UpdateDefaults]: UpdateDefaults[K] };
}

/**
 * Bounds that keep validation and placement cheap on hostile input (the self-peer check is
 * peers x globs glob matches). Far above anything a real unit needs.
 */
export const FLEET_LIMITS = { machineOf: 64, globs: 256, globLength: 512, metadata: 256 } as const;

/**
 * The largest `MaxInstances=`: the most instances one scale may ask for (the API's own limit
 * on a count), so a file can lower a template's ceiling below the scheduler's
 * `--max-instances` but never name one the API would not accept anyway.
 */
export const MAX_INSTANCES_LIMIT = 1_000_000;

/** Append `items` to `list`, refusing to grow it past `max`. */
function addAll<T>(
  list: At<T>[],
  items: readonly At<T>[],
  max: number,
  key: string,
  line: number,
): void {
  for (const item of items) {
    if (list.length >= max) {
      throw new UnitError('invalid-value', `${key}= has more than ${max} values`, { line });
    }
    list.push(item);
  }
}

type Handler = (state: State, value: string, line: number, key: string) => void;

function words(key: string, value: string, line: number): string[] {
  return splitWords(value, { escapes: 'plain', key, line }).map((w) => w.value);
}

function globs(key: string, value: string, line: number): At<string>[] {
  return words(key, value, line).map((g) => {
    if (g.length > FLEET_LIMITS.globLength) {
      throw new UnitError(
        'invalid-glob',
        `${key}=${excerpt(g)}: a glob may be at most ${FLEET_LIMITS.globLength} characters`,
        { line },
      );
    }
    try {
      compileGlob(g);
    } catch (err) {
      if (err instanceof UnitError)
        throw new UnitError(err.code, `${key}=: ${err.message}`, { line });
      throw err;
    }
    return { value: g, line };
  });
}

function invalid(key: string, value: string, expected: string, line: number): UnitError {
  return new UnitError('invalid-value', `${key}=${excerpt(value)}: expected ${expected}`, {
    line,
  });
}

/** Each key's interpretation of a non-empty value (an empty one resets, see `resetKey`). */
const HANDLERS: Readonly<Record<string, Handler>> = {
  MachineID(s, v, line) {
    s.machineId = { value: v, line };
  },
  MachineMetadata(s, v, line, key) {
    for (const pair of words(key, v, line)) {
      const eq = pair.indexOf('=');
      const k = eq < 0 ? pair : pair.slice(0, eq);
      if (eq < 0 || eq === pair.length - 1) {
        throw new UnitError(
          'missing-value',
          `${key}="${excerpt(pair)}" has no value: write key=value, e.g. ${excerpt(k) || 'region'}=eu`,
          { line },
        );
      }
      if (k === '') throw invalid(key, pair, 'key=value with a non-empty key', line);
      addAll(
        s.metadata,
        [{ value: [k, pair.slice(eq + 1)] as const, line }],
        FLEET_LIMITS.metadata,
        key,
        line,
      );
    }
  },
  MachineOf(s, v, line, key) {
    for (const peer of words(key, v, line)) {
      try {
        parseUnitName(peer);
      } catch (err) {
        if (err instanceof UnitError)
          throw new UnitError('invalid-value', `${key}=: ${err.message}`, { line });
        throw err;
      }
      addAll(s.machineOf, [{ value: peer, line }], FLEET_LIMITS.machineOf, key, line);
    }
  },
  Conflicts(s, v, line, key) {
    addAll(s.conflicts, globs(key, v, line), FLEET_LIMITS.globs, key, line);
  },
  Replaces(s, v, line, key) {
    addAll(s.replaces, globs(key, v, line), FLEET_LIMITS.globs, key, line);
  },
  Global(s, v, line, key) {
    s.global = { value: requireBoolean(key, v, line), line };
  },
  MaxPerMachine(s, v, line, key) {
    const n = /^[0-9]{1,9}$/.test(v) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n)) throw invalid(key, v, 'a whole number (0 for no cap)', line);
    s.maxPerMachine = n;
  },
  MaxInstances(s, v, line, key) {
    const n = /^[0-9]{1,7}$/.test(v) ? Number(v) : NaN;
    if (!(n >= 1 && n <= MAX_INSTANCES_LIMIT)) {
      throw invalid(key, v, `a whole number from 1 to ${MAX_INSTANCES_LIMIT}`, line);
    }
    s.maxInstances = { value: n, line };
  },
  SpreadBy(s, v, line, key) {
    const w = words(key, v, line);
    if (w.length !== 1) throw invalid(key, v, 'one machine metadata key, e.g. zone', line);
    s.spreadBy = w[0] as string;
  },
  StopOnDisconnect(s, v, line, key) {
    const ms = parseTimeSpanMs(v);
    if (ms === undefined) throw new UnitError('invalid-value', timeSpanHint(key, v), { line });
    s.stopOnDisconnectMs = ms === Infinity ? 0 : ms;
  },
  UpdateParallelism(s, v, line, key) {
    const n = /^[0-9]{1,3}$/.test(v) ? Number(v) : NaN;
    if (!(n >= 1 && n <= 100)) throw invalid(key, v, 'a whole number from 1 to 100', line);
    s.update.parallelism = n;
  },
  UpdateDelaySec(s, v, line, key) {
    s.update.delayMs = updateSpan(key, v, line);
  },
  UpdateMonitorSec(s, v, line, key) {
    s.update.monitorMs = updateSpan(key, v, line);
  },
  UpdateHealthyDeadlineSec(s, v, line, key) {
    const ms = updateSpan(key, v, line);
    if (ms <= 0) throw invalid(key, v, 'a time span of more than 0 and at most 1h', line);
    s.update.healthyDeadlineMs = ms;
  },
  UpdateFailureAction(s, v, line, key) {
    if (v !== 'pause' && v !== 'rollback') throw invalid(key, v, 'pause or rollback', line);
    s.update.failureAction = v;
  },
};

/** A rollout's pause: a finite time span of at most an hour. */
function updateSpan(key: string, v: string, line: number): number {
  const ms = parseTimeSpanMs(v);
  if (ms === undefined) throw new UnitError('invalid-value', timeSpanHint(key, v), { line });
  if (ms > 3_600_000) throw invalid(key, v, 'a time span of at most 1h', line);
  return ms;
}

const UPDATE_FIELDS: Readonly<Record<string, keyof UpdateDefaults>> = {
  UpdateParallelism: 'parallelism',
  UpdateDelaySec: 'delayMs',
  UpdateMonitorSec: 'monitorMs',
  UpdateHealthyDeadlineSec: 'healthyDeadlineMs',
  UpdateFailureAction: 'failureAction',
};

/** An empty assignment resets the key to its default (lists become empty). */
function resetKey(s: State, canonical: string): void {
  if (canonical === 'MachineID') s.machineId = null;
  else if (canonical === 'MachineMetadata') s.metadata = [];
  else if (canonical === 'MachineOf') s.machineOf = [];
  else if (canonical === 'Conflicts') s.conflicts = [];
  else if (canonical === 'Replaces') s.replaces = [];
  else if (canonical === 'Global') s.global = null;
  else if (canonical === 'MaxPerMachine') s.maxPerMachine = 0;
  else if (canonical === 'MaxInstances') s.maxInstances = null;
  else if (canonical === 'SpreadBy') s.spreadBy = '';
  else if (canonical === 'StopOnDisconnect') s.stopOnDisconnectMs = 0;
  else if (Object.hasOwn(UPDATE_FIELDS, canonical)) {
    const field = UPDATE_FIELDS[canonical];
    s.update = Object.fromEntries(Object.entries(s.update).filter(([k]) => k !== field));
  }
}

/**
 * Interpret `[X-Fleet]` entries for the unit `name` (specifiers expand for it). Every
 * problem is pushed to `errors`; the result is best-effort when there are any.
 */
export function parseFleetSection(
  entries: readonly UnitEntry[],
  name: UnitName,
  errors: UnitError[],
): FleetOptions {
  const s: State = {
    machineId: null,
    metadata: [],
    machineOf: [],
    conflicts: [],
    global: null,
    replaces: [],
    maxPerMachine: 0,
    maxInstances: null,
    spreadBy: '',
    stopOnDisconnectMs: 0,
    update: {},
  };
  for (const e of entries) {
    if (errors.length >= MAX_PROBLEMS) break;
    const canonical = FLEET_ALIASES.get(e.key) ?? e.key;
    const handler = HANDLERS[canonical];
    if (handler === undefined || !Object.hasOwn(HANDLERS, canonical)) {
      errors.push(
        new UnitError(
          'unknown-key',
          `unknown [X-Fleet] key "${excerpt(e.key)}"${didYouMean(e.key, ALL_NAMES)}`,
          { line: e.line },
        ),
      );
      continue;
    }
    const value = expandSpecifiers(e.value, name);
    if (value === '') {
      resetKey(s, canonical);
      continue;
    }
    try {
      handler(s, value, e.line, e.key);
    } catch (err) {
      if (!(err instanceof UnitError)) throw err;
      errors.push(err);
    }
  }
  checkCombinations(s, errors);
  checkMaxInstances(s, name, errors);
  return toOptions(s);
}

function toOptions(s: State): FleetOptions {
  const metadata = new Map<string, string[]>();
  for (const {
    value: [k, v],
  } of s.metadata) {
    const list = metadata.get(k);
    if (list === undefined) metadata.set(k, [v]);
    else if (!list.includes(v)) list.push(v);
  }
  return {
    machineId: s.machineId?.value ?? '',
    machineMetadata: metadata,
    machineOf: unique(s.machineOf),
    conflicts: unique(s.conflicts),
    global: s.global?.value ?? false,
    replaces: unique(s.replaces),
    maxPerMachine: s.maxPerMachine,
    maxInstances: s.maxInstances?.value ?? 0,
    spreadBy: s.spreadBy,
    stopOnDisconnectMs: s.stopOnDisconnectMs,
    ...(Object.keys(s.update).length > 0 ? { update: { ...s.update } } : {}),
  };
}

/**
 * MaxInstances= bounds how many instances of a template may be started: it means nothing in
 * a plain unit's file, where it would look like a limit that is never applied.
 */
function checkMaxInstances(s: State, name: UnitName, errors: UnitError[]): void {
  if (s.maxInstances === null || name.isTemplate || name.isInstance) return;
  errors.push(
    new UnitError(
      'invalid-combination',
      `MaxInstances= bounds the instances of a template, and ${excerpt(name.name)} is not a template (name it like web@.service) or an instance of one`,
      { line: s.maxInstances.line },
    ),
  );
}

function unique(list: readonly At<string>[]): string[] {
  return [...new Set(list.map((a) => a.value))];
}

/** The invalid combinations (docs/architecture.md, "Unit files"); each error points at the later of the two keys. */
function checkCombinations(s: State, errors: UnitError[]): void {
  const clash = (a: string, aLine: number, b: string, bLine: number, why: string): void => {
    const line = Math.max(aLine, bLine);
    const other = line === aLine ? `${b}= (line ${bLine})` : `${a}= (line ${aLine})`;
    const self = line === aLine ? `${a}=` : `${b}=`;
    errors.push(
      new UnitError('invalid-combination', `${self} cannot be combined with ${other}: ${why}`, {
        line,
      }),
    );
  };
  const firstOf = (list: readonly At<string>[]): number | undefined => list[0]?.line;
  const global = s.global?.value === true ? s.global : null;
  if (s.machineId !== null) {
    const id = s.machineId;
    const pinned = 'a unit pinned to one machine cannot also';
    const of = firstOf(s.machineOf);
    if (of !== undefined)
      clash('MachineID', id.line, 'MachineOf', of, `${pinned} follow other units`);
    const c = firstOf(s.conflicts);
    if (c !== undefined) clash('MachineID', id.line, 'Conflicts', c, `${pinned} avoid other units`);
    if (global)
      clash('MachineID', id.line, 'Global', global.line, `${pinned} run on every machine`);
    const r = firstOf(s.replaces);
    if (r !== undefined)
      clash('MachineID', id.line, 'Replaces', r, `${pinned} displace other units`);
  }
  if (global) {
    const of = firstOf(s.machineOf);
    if (of !== undefined) {
      clash(
        'Global',
        global.line,
        'MachineOf',
        of,
        'a global unit runs everywhere, not where its peers are',
      );
    }
    const r = firstOf(s.replaces);
    if (r !== undefined) {
      clash(
        'Global',
        global.line,
        'Replaces',
        r,
        'a global unit cannot displace others everywhere',
      );
    }
  }
  const c = firstOf(s.conflicts);
  const r = firstOf(s.replaces);
  if (c !== undefined && r !== undefined) {
    clash('Conflicts', c, 'Replaces', r, 'use one of them: Replaces already implies not sharing');
  }
  for (const peer of s.machineOf) {
    for (const [key, list] of [
      ['Conflicts', s.conflicts],
      ['Replaces', s.replaces],
    ] as const) {
      const hit = list.find((g) => compileGlob(g.value).test(peer.value));
      if (hit === undefined) continue;
      errors.push(
        new UnitError(
          'invalid-combination',
          `MachineOf=${excerpt(peer.value)} is matched by this unit's own ${key}=${excerpt(hit.value)} (line ${hit.line}): it must share a machine with a unit it may not share one with`,
          { line: Math.max(peer.line, hit.line) },
        ),
      );
    }
  }
}
