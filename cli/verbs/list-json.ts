/**
 * `-o json` of `list-units` and `list-unit-files`: one flat object per table row (a Global
 * unit's copies each one row, as in the table), with every column the table can show plus the
 * ids it shortens, full (machine id, hashes), numbers as numbers, and `null` where the table
 * shows `-`, so every row has the same keys. The unit file's text only when `--fields` names
 * `file`. The shapes are documented in docs/cli.md ("JSON output"); keys are only ever added.
 */
import type { UnitState } from '../../proto/flotilla/v1/records.js';
import type { UnitStatus } from '../../proto/flotilla/v1/units.js';
import { describeUnit } from '../unit-args.js';
import { activeText } from '../unit-view.js';
import { UsageError } from '../verb.js';

/** A JSON row's values. */
export type JsonValue = string | number | boolean | null;
export type JsonRow = Record<string, JsonValue>;

/** What one row of a listing is about (list.ts works it out, as for the table). */
export interface RowFacts {
  readonly status: UnitStatus;
  /** The machine the row's copy is placed on, '' when none. */
  readonly machine: string;
  /** That machine's public address, '' when unknown. */
  readonly ip: string;
  /** The agent's report for this row, when it reports from the row's machine. */
  readonly state: UnitState | undefined;
  /** The row's derived state (a Global copy's own). */
  readonly currentState: string;
  /** Whether the unit is Global=true. */
  readonly global: boolean;
}

const text = (v: string | undefined): string | null => (v === undefined || v === '' ? null : v);

/** list-units' keys, in order; `file` only when asked for. */
const UNIT_KEYS: Readonly<Record<string, (f: RowFacts) => JsonValue>> = {
  unit: (f) => f.status.unit?.name ?? null,
  machine: (f) => text(f.machine),
  ip: (f) => text(f.ip),
  active: (f) => text(f.state?.activeState),
  sub: (f) => text(f.state?.subState),
  load: (f) => text(f.state?.loadState),
  status: (f) => (f.state === undefined ? null : text(activeText(f.state).replace(/^-$/, ''))),
  dstate: (f) => text(f.status.unit?.desiredState),
  state: (f) => f.currentState,
  hash: (f) => text(f.status.unit?.hash),
  runningHash: (f) => text(f.state?.hash),
  container: (f) => text(f.state?.containerId),
  pid: (f) => (f.state !== undefined && f.state.pid > 0 ? f.state.pid : null),
  restarts: (f) => f.state?.restarts ?? null,
  health: (f) => text(f.state?.health),
  since: (f) => (f.state !== undefined && f.state.since > 0n ? Number(f.state.since) : null),
  reason: (f) => text(f.status.unscheduled?.summary),
  image: (f) => text(f.state?.image) ?? text(f.status.image),
  global: (f) => f.global,
  desc: (f) => text(describeUnit(f.status.unit)),
  file: (f) => text(f.status.unit?.file),
};

/** list-unit-files' keys. */
const FILE_KEYS: Readonly<Record<string, (f: RowFacts) => JsonValue>> = {
  unit: UNIT_KEYS['unit'] ?? (() => null),
  hash: (f) => text(f.status.unit?.hash),
  dstate: (f) => text(f.status.unit?.desiredState),
  state: (f) => (f.global ? null : f.currentState),
  machine: (f) => (f.global ? null : text(f.machine)),
  ip: (f) => (f.global ? null : text(f.ip)),
  global: (f) => f.global,
  desc: (f) => text(describeUnit(f.status.unit)),
  file: (f) => text(f.status.unit?.file),
};

/** Which keys a listing's JSON rows carry. */
export type JsonKind = 'units' | 'files';

function keysOf(kind: JsonKind): Readonly<Record<string, (f: RowFacts) => JsonValue>> {
  return kind === 'units' ? UNIT_KEYS : FILE_KEYS;
}

/**
 * The keys `--fields` asks for with `-o json` (every key but `desc` and `file` without it); an unknown
 * key is a usage error naming the valid ones.
 */
export function jsonFields(kind: JsonKind, spec: string | undefined): string[] {
  const keys = Object.keys(keysOf(kind));
  // desc and file need the unit's file, which a large listing should not carry unasked.
  if (spec === undefined) return keys.filter((k) => k !== 'file' && k !== 'desc');
  const names = spec
    .split(',')
    .map((f) => f.trim())
    .filter((f) => f !== '');
  if (names.length === 0) throw new UsageError('--fields is empty: name at least one key');
  for (const name of names) {
    if (!keys.includes(name)) {
      throw new UsageError(
        `--fields: unknown key "${name}" for -o json (valid: ${keys.join(',')})`,
      );
    }
  }
  return names;
}

/** One row as JSON, with `fields` in their order. */
export function jsonRow(kind: JsonKind, facts: RowFacts, fields: readonly string[]): JsonRow {
  const keys = keysOf(kind);
  const row: JsonRow = {};
  for (const f of fields) row[f] = keys[f]?.(facts) ?? null;
  return row;
}
