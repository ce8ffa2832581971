/**
 * How flotctl prints: aligned tables with fleetctl's conventions (`--fields`, `--no-legend`,
 * `--full`: machine ids and hashes are shortened unless it is given), `-o json`, and the small
 * formatters every verb shares (machines, hashes, bytes, CPU, metadata, times).
 */
import type { MachineStatus } from '../proto/flotilla/v1/machines.js';
import type { UnitStatus } from '../proto/flotilla/v1/units.js';
import { UsageError, type CliIo } from './verb.js';

/** One column a list verb can print: `--fields` names it, the header is its name upper-cased. */
export type Column<T> = (row: T, full: boolean) => string;

/** The `--fields`, `--no-legend` and `--full` flags of every list verb, for parseArgs. */
export const TABLE_FLAGS = {
  fields: { type: 'string' },
  'no-legend': { type: 'boolean' },
  full: { type: 'boolean', short: 'l' },
} as const;

/** Help lines for {@link TABLE_FLAGS}. */
export function tableHelp(columns: Readonly<Record<string, unknown>>, defaults: string): string {
  return `  --fields LIST   columns to print, comma-separated (default ${defaults})
                  valid: ${Object.keys(columns).sort().join(',')}
  --no-legend     do not print the column headers
  -l, --full      do not shorten machine ids and hashes
`;
}

/** The columns `--fields` asks for (or the defaults); an unknown name is a usage error. */
export function parseFields(
  spec: string | undefined,
  columns: Readonly<Record<string, unknown>>,
  defaults: string,
): string[] {
  const raw = spec ?? defaults;
  const names = raw
    .split(',')
    .map((f) => f.trim().toLowerCase())
    .filter((f) => f !== '');
  if (names.length === 0) throw new UsageError('--fields is empty: name at least one column');
  for (const name of names) {
    if (!(name in columns)) {
      const valid = Object.keys(columns).sort().join(',');
      throw new UsageError(`--fields: unknown column "${name}" (valid: ${valid})`);
    }
  }
  return names;
}

/** Options of {@link renderTable}. */
export interface TableOptions {
  readonly full: boolean;
  readonly legend: boolean;
}

/** Rows rendered as aligned columns, two spaces apart, with a header line unless `legend` is false. */
export function renderTable<T>(
  rows: readonly T[],
  fields: readonly string[],
  columns: Readonly<Record<string, Column<T>>>,
  opts: TableOptions,
): string {
  let out = '';
  const table = new TableWriter(fields, columns, opts, (text) => (out += text));
  table.write(rows);
  table.end();
  return out;
}

/**
 * A table printed as its rows arrive, batch by batch (a listing's pages): each column is as
 * wide as its widest cell so far, so a later, wider cell widens its column from that batch on
 * (as kubectl's chunked listings do). One batch comes out exactly as {@link renderTable}'s.
 */
export class TableWriter<T> {
  private readonly widths: number[] = [];
  private started = false;

  constructor(
    private readonly fields: readonly string[],
    private readonly columns: Readonly<Record<string, Column<T>>>,
    private readonly opts: TableOptions,
    private readonly out: (text: string) => void,
  ) {}

  /** Prints one batch of rows (with the header before the first). */
  write(rows: readonly T[]): void {
    const cells = rows.map((row) =>
      this.fields.map((f) => {
        const column = this.columns[f];
        const value = column === undefined ? '-' : column(row, this.opts.full);
        return value === '' ? '-' : value;
      }),
    );
    if (!this.started && this.opts.legend) cells.unshift(this.fields.map((f) => f.toUpperCase()));
    this.started = true;
    if (cells.length > 0) this.out(alignColumns(cells, this.widths));
  }

  /** Ends the table: a table without rows still has its header. */
  end(): void {
    if (!this.started) this.write([]);
  }
}

/**
 * Pads every cell but the last of each line to its column's width: the widest cell of its
 * column in `lines`, or of `widths` when wider (which is updated, for the lines that follow).
 */
export function alignColumns(lines: readonly (readonly string[])[], widths: number[] = []): string {
  for (const line of lines) {
    line.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  }
  let out = '';
  for (const line of lines) {
    const last = line.length - 1;
    let text = '';
    line.forEach((cell, i) => {
      text += i === last ? cell : `${cell.padEnd(widths[i] ?? 0)}  `;
    });
    out += `${text.trimEnd()}\n`;
  }
  return out;
}

/** JSON.stringify's replacer for proto JSON: bigints become decimal strings. */
const bigintsAsText = (_k: string, v: unknown): unknown =>
  typeof v === 'bigint' ? v.toString() : v;

/** Writes `value` as indented JSON; bigints become decimal strings (as proto JSON has them). */
export function printJson(io: CliIo, value: unknown): void {
  io.stdout(`${JSON.stringify(value, bigintsAsText, 2)}\n`);
}

/**
 * A JSON array printed element by element as a listing's pages arrive, exactly as
 * {@link printJson} prints the whole array.
 */
export class JsonArrayWriter {
  private count = 0;

  constructor(private readonly out: (text: string) => void) {}

  write(values: readonly unknown[]): void {
    let text = '';
    for (const value of values) {
      // Newlines only come from the indentation: JSON escapes those inside strings.
      const json = JSON.stringify(value, bigintsAsText, 2).replace(/\n/g, '\n  ');
      text += `${this.count === 0 ? '[\n' : ',\n'}  ${json}`;
      this.count += 1;
    }
    if (text !== '') this.out(text);
  }

  end(): void {
    this.out(this.count === 0 ? '[]\n' : '\n]\n');
  }
}

/** One JSON document per line (`watch -o json`, `journal -o json`). */
export function printJsonLine(io: CliIo, value: unknown): void {
  io.stdout(`${JSON.stringify(value, bigintsAsText)}\n`);
}

/** fleetctl's ellipsis: the first `n` characters and `...`, when that is actually shorter. */
export function ellipsize(text: string, n: number): string {
  return text.length > n + 3 ? `${text.slice(0, n)}...` : text;
}

/** A machine id as fleetctl shows it: 8 characters and `...` unless `full`. */
export function machineId(id: string, full: boolean): string {
  if (id === '') return '-';
  return full ? id : ellipsize(id, 8);
}

/** A content hash: 7 characters unless `full` (fleetctl's short hash). */
export function shortHash(hash: string, full: boolean): string {
  if (hash === '') return '-';
  return full ? hash : hash.slice(0, 7);
}

/** Machine ids to their public address (the first one the agent advertises). */
export type MachineAddresses = ReadonlyMap<string, string>;

/** `MachineAddresses` of a ListMachines answer. */
export function machineAddresses(machines: readonly MachineStatus[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of machines) {
    const id = m.machine?.id;
    if (id !== undefined) out.set(id, m.machine?.addresses[0] ?? '');
  }
  return out;
}

/** The machine addresses the API sent with `statuses` (each names the machines it shows). */
export function addressesOf(statuses: readonly UnitStatus[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const s of statuses)
    for (const [id, address] of Object.entries(s.addresses)) out.set(id, address);
  return out;
}

/** fleetctl's machine legend: `1a2b3c4d.../10.0.0.1` (the full id with `full`). */
export function machineLegend(id: string, addresses: MachineAddresses, full: boolean): string {
  if (id === '') return '-';
  const ip = addresses.get(id) ?? '';
  const shown = machineId(id, full);
  return ip === '' ? shown : `${shown}/${ip}`;
}

/** Metadata as `k=v,k2=v2`, keys sorted; `-` when empty. */
export function formatMetadata(metadata: Readonly<Record<string, string>>): string {
  const keys = Object.keys(metadata).sort();
  if (keys.length === 0) return '-';
  return keys.map((k) => `${k}=${metadata[k] ?? ''}`).join(',');
}

const BINARY_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/**
 * Bytes in IEC units as a table cell, e.g. `512MiB`, `1.5GiB`, `0`: the units of every memory
 * figure flotctl and the scheduler print (`256 MiB` in sentences), without the space so that
 * a table's columns stay split by whitespace.
 */
export function formatBytes(bytes: bigint): string {
  let value = Number(bytes);
  let unit = 0;
  while (value >= 1024 && unit < BINARY_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const shown = Number.isInteger(value) ? String(value) : value.toFixed(1).replace(/\.0$/, '');
  if (value === 0) return '0';
  return `${shown}${BINARY_UNITS[unit] ?? ''}`;
}

/** Millicores as cores, e.g. `0.5`, `4`, `1.25`. */
export function formatCpu(millicores: bigint): string {
  const cores = Number(millicores) / 1000;
  return Number.isInteger(cores) ? String(cores) : String(Math.round(cores * 100) / 100);
}

/** Unix milliseconds as local `YYYY-MM-DD HH:MM:SS`; `-` for 0. */
export function formatTime(ms: bigint | number): string {
  const n = Number(ms);
  if (n === 0) return '-';
  const d = new Date(n);
  const pad = (v: number, w = 2): string => String(v).padStart(w, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Local `HH:MM:SS.mmm`, for lines printed as things happen. */
export function formatClock(ms: number): string {
  const d = new Date(ms);
  const pad = (v: number, w = 2): string => String(v).padStart(w, '0');
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** How long ago, roughly: `5s`, `3min`, `2h`, `4d`. */
export function formatAge(sinceMs: number, nowMs: number): string {
  const s = Math.max(0, Math.round((nowMs - sinceMs) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}min`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

/**
 * The API's warnings about a listing (records it skipped), on stderr so the table or JSON on
 * stdout stays clean for scripts.
 */
export function printWarnings(io: CliIo, warnings: readonly string[]): void {
  for (const w of warnings) io.stderr(`WARNING: ${w}\n`);
}
