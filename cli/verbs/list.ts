/**
 * `flotctl list-units` and `list-unit-files`, with fleetctl's columns, `--fields`,
 * `--no-legend` and `--full`. list-units shows the units that are wanted or placed somewhere
 * (fleetctl shows the units loaded on machines; units waiting for a machine are shown too,
 * with `-` where a machine would be), a Global unit as one row per machine it is placed on,
 * each with that machine's copy (as fleetctl does); list-unit-files shows every submitted
 * file, templates included. `list-units --watch` redraws the table whenever the cluster
 * changes.
 */
import type { GlobalInstance, UnitStatus } from '../../proto/flotilla/v1/units.js';
import { withClient, type ApiClient } from '../client.js';
import {
  machineLegend,
  parseFields,
  addressesOf,
  JsonArrayWriter,
  printJsonLine,
  printWarnings,
  TableWriter,
  shortHash,
  TABLE_FLAGS,
  tableHelp,
  type Column,
  type MachineAddresses,
} from '../table.js';
import { describeUnit, isTemplateName } from '../unit-args.js';
import { jsonFields, jsonRow, type JsonKind, type RowFacts } from './list-json.js';
import { activeText } from '../unit-view.js';
import {
  EXIT_OK,
  UsageError,
  type CliIo,
  type GlobalOptions,
  type Verb,
  parseVerbArgs,
} from '../verb.js';

/** A unit (or one machine's copy of a Global unit) with what its columns need. */
interface Row {
  readonly status: UnitStatus;
  /** The copy this row shows, for a Global unit placed somewhere. */
  readonly copy?: GlobalInstance;
  readonly addresses: MachineAddresses;
  /** list-unit-files: whether the file says Global=true, parsed once per row. */
  readonly global?: boolean;
}

const placementMachine = (r: Row): string =>
  (r.copy === undefined ? r.status.placement : r.copy.placement)?.machine ?? '';
/** The agent's state, only when it reports from the unit's placement (or nothing is placed). */
const stateOf = (r: Row) => {
  const s = r.copy === undefined ? r.status.state : r.copy.state;
  const p = placementMachine(r);
  return s !== undefined && (p === '' || s.machine === p) ? s : undefined;
};

/** list-units' rows of a unit: one per copy of a placed Global unit, else one. */
function unitRows(status: UnitStatus, addresses: MachineAddresses): Row[] {
  if (status.instances.length === 0) return [{ status, addresses }];
  return status.instances.map((copy) => ({ status, copy, addresses }));
}

/** What a row's JSON object is made of: the same machine and state as its table cells. */
function factsOf(r: Row): RowFacts {
  const machine = placementMachine(r);
  return {
    status: r.status,
    machine,
    ip: r.addresses.get(machine) ?? '',
    state: stateOf(r),
    currentState: r.copy?.currentState ?? r.status.currentState,
    global: r.global ?? r.status.global,
  };
}

const UNIT_COLUMNS: Readonly<Record<string, Column<Row>>> = {
  unit: (r) => r.status.unit?.name ?? '-',
  machine: (r, full) => machineLegend(placementMachine(r), r.addresses, full),
  active: (r) => stateOf(r)?.activeState ?? '-',
  sub: (r) => stateOf(r)?.subState ?? '-',
  load: (r) => stateOf(r)?.loadState ?? '-',
  hash: (r, full) => shortHash(r.status.unit?.hash ?? '', full),
  dstate: (r) => r.status.unit?.desiredState ?? '-',
  state: (r) => r.copy?.currentState ?? r.status.currentState,
  container: (r) => stateOf(r)?.containerId ?? '-',
  pid: (r) => String(stateOf(r)?.pid ?? '-'),
  restarts: (r) => String(stateOf(r)?.restarts ?? '-'),
  health: (r) => stateOf(r)?.health || '-',
  status: (r) => activeText(stateOf(r)),
  reason: (r) => r.status.unscheduled?.summary ?? '-',
  // What the agent runs, else the digest the unit is pinned to ('-' for host-binary units).
  image: (r) => stateOf(r)?.image || r.status.image || '-',
};
// fleetctl's four, then what shows a restart loop (a crash-looping unit is "active running"
// most of the time): appended, so scripts that read fleetctl's columns by position still work.
const UNIT_DEFAULTS = 'unit,machine,active,sub,health,restarts';
/** Columns that a brief listing (ListUnitsRequest.brief) holds everything for. */
const BRIEF_COLUMNS: ReadonlySet<string> = new Set([
  'unit',
  'machine',
  'active',
  'sub',
  'load',
  'dstate',
  'state',
  'health',
  'restarts',
]);

/** list-units shows units that are wanted on a machine, placed on one, or still reported. */
function isListedUnit(s: UnitStatus): boolean {
  const unit = s.unit;
  if (unit === undefined || isTemplateName(unit.name)) return false;
  const placed = s.placement !== undefined || s.instances.length > 0;
  return unit.desiredState !== 'inactive' || placed || s.state !== undefined;
}

const FILE_COLUMNS: Readonly<Record<string, Column<Row>>> = {
  unit: (r) => r.status.unit?.name ?? '-',
  hash: (r, full) => shortHash(r.status.unit?.hash ?? '', full),
  dstate: (r) => r.status.unit?.desiredState ?? '-',
  state: (r) => (r.global === true ? '-' : r.status.currentState),
  target: (r, full) =>
    r.global === true ? 'global' : machineLegend(placementMachine(r), r.addresses, full),
  global: (r) => String(r.global === true),
  desc: (r) => describeUnit(r.status.unit) || '-',
};
const FILE_DEFAULTS = 'unit,hash,dstate,state,target';

const LIST_UNITS_HELP = `Usage: flotctl list-units [--fields LIST] [--no-legend] [-l|--full] [--machine M] [--watch] [GLOB]

Lists the units that run, are placed, or wait for a machine, with their state as the agents
report it; a Global unit has one row per machine it is placed on, with that machine's copy.
GLOB (shell syntax, e.g. 'web@*') narrows the list by unit name; --machine to the units
placed on one machine (id or unique prefix).

Options:
${tableHelp(UNIT_COLUMNS, UNIT_DEFAULTS)}  --machine M     only units placed on machine M
  --watch         keep listing: redraw the table whenever the cluster changes (Ctrl-C ends)
  -o json         one flat object per row: every column, ids and hashes in full, numbers as
                  numbers, null for "-"; --fields picks keys (also ip, runningHash, since,
                  global, file: the unit file's text, only when named)
`;

const LIST_FILES_HELP = `Usage: flotctl list-unit-files [--fields LIST] [--no-legend] [-l|--full] [GLOB]

Lists every unit file in the cluster, loaded or not, templates included: its hash, the state
the user wants (DSTATE), the state it is in (STATE) and the machine it is placed on (TARGET).

Options:
${tableHelp(FILE_COLUMNS, FILE_DEFAULTS)}  -o json         one flat object per file: unit, hash, dstate, state, machine, ip, global
                  (--fields picks keys; desc and file, the unit file's text, when named)
`;

export const listUnitsVerb: Verb = {
  name: 'list-units',
  summary: 'list the units that run or wait for a machine, with their state',
  help: LIST_UNITS_HELP,
  async run(args: readonly string[], io: CliIo, globals: GlobalOptions): Promise<number> {
    const { values, positionals } = parseVerbArgs(args, {
      ...TABLE_FLAGS,
      machine: { type: 'string' },
      watch: { type: 'boolean' },
    });
    if (positionals.length > 1) throw new UsageError('give at most one name glob');
    const json = globals.output === 'json';
    const fields = json
      ? jsonFields('units', values.fields)
      : parseFields(values.fields, UNIT_COLUMNS, UNIT_DEFAULTS);
    // Files only when shown: a description, or the file itself (-o json --fields ...,file); a
    // table of summary columns asks for the summary only.
    const filter = {
      nameGlob: positionals[0] ?? '',
      machine: values.machine ?? '',
      withFiles: fields.includes('desc') || fields.includes('file'),
      brief: !json && fields.every((f) => BRIEF_COLUMNS.has(f)),
    };
    const opts = { full: values.full === true, legend: values['no-legend'] !== true };
    const draw = async (api: ApiClient): Promise<bigint> => {
      if (globals.output === 'json' && values.watch === true) {
        const listing = await api.listAllUnits(filter);
        const units = listing.units.filter(isListedUnit);
        const rows = units.flatMap((u) => unitRows(u, addressesOf(units)));
        printJsonLine(
          io,
          rows.map((r) => jsonRow('units', factsOf(r), fields)),
        );
        return listing.revision;
      }
      const table = new TableWriter(fields, UNIT_COLUMNS, opts, io.stdout);
      const out = pageOutput(globals, io, table, 'units', fields);
      let revision = 0n;
      for await (const page of api.unitPages(filter)) {
        if (revision === 0n) {
          revision = page.revision;
          if (values.watch !== true) printWarnings(io, page.warnings);
        }
        const units = page.units.filter(isListedUnit);
        out.write(units, (addresses) => units.flatMap((s) => unitRows(s, addresses)));
      }
      out.end();
      return revision;
    };
    return withClient(globals, async (api) => {
      if (values.watch !== true) {
        await draw(api);
        return EXIT_OK;
      }
      await redrawOnChange(api, io, draw);
      return EXIT_OK;
    });
  },
};

export const listUnitFilesVerb: Verb = {
  name: 'list-unit-files',
  summary: 'list every submitted unit file, loaded or not',
  help: LIST_FILES_HELP,
  async run(args: readonly string[], io: CliIo, globals: GlobalOptions): Promise<number> {
    const { values, positionals } = parseVerbArgs(args, TABLE_FLAGS);
    if (positionals.length > 1) throw new UsageError('give at most one name glob');
    const json = globals.output === 'json';
    const fields = json
      ? jsonFields('files', values.fields)
      : parseFields(values.fields, FILE_COLUMNS, FILE_DEFAULTS);
    // The global column needs no file: the API says whether a unit is Global.
    const filter = {
      nameGlob: positionals[0] ?? '',
      withFiles: fields.includes('desc') || fields.includes('file'),
    };
    const opts = { full: values.full === true, legend: values['no-legend'] !== true };
    return withClient(globals, async (api) => {
      const table = new TableWriter(fields, FILE_COLUMNS, opts, io.stdout);
      const out = pageOutput(globals, io, table, 'files', fields);
      let first = true;
      for await (const { units, warnings } of api.unitPages(filter)) {
        if (first) printWarnings(io, warnings);
        first = false;
        out.write(units, (addresses) =>
          units.map((status) => ({ status, addresses, global: status.global })),
        );
      }
      out.end();
      return EXIT_OK;
    });
  },
};

/** Where a listing's pages go as they arrive: the table's rows, or with `-o json` as objects. */
interface PageOutput {
  /** `rows` makes the page's rows, given the machine addresses the page carries. */
  write(units: readonly UnitStatus[], rows: (addresses: MachineAddresses) => Row[]): void;
  end(): void;
}

function pageOutput(
  globals: GlobalOptions,
  io: CliIo,
  table: TableWriter<Row>,
  kind: JsonKind,
  fields: readonly string[],
): PageOutput {
  if (globals.output !== 'json') {
    return {
      write: (units, rows) => table.write(rows(addressesOf(units))),
      end: () => table.end(),
    };
  }
  const json = new JsonArrayWriter(io.stdout);
  return {
    write: (units, rows) =>
      json.write(rows(addressesOf(units)).map((r) => jsonRow(kind, factsOf(r), fields))),
    end: () => json.end(),
  };
}

/**
 * Draws, then follows Events.Watch from the drawn revision + 1 and draws again (at most
 * every 250 ms) after changes, until Ctrl-C. On a terminal each drawing replaces the last.
 */
async function redrawOnChange(
  api: ApiClient,
  io: CliIo,
  draw: (api: ApiClient) => Promise<bigint>,
): Promise<void> {
  const clear = (): void => {
    if (io.isTty === true) io.stdout('\x1b[H\x1b[2J');
  };
  clear();
  const from = (await draw(api)) + 1n;
  let dirty = false;
  let drawing: Promise<void> = Promise.resolve();
  const redraw = async (): Promise<void> => {
    try {
      clear();
      if (io.isTty !== true) io.stdout('\n');
      await draw(api);
    } catch (err) {
      io.stderr(`${api.error(err).message}\n`);
    }
  };
  const timer = setInterval(() => {
    if (!dirty) return;
    dirty = false;
    drawing = drawing.then(redraw);
  }, 250);
  try {
    const req = { fromRevision: from, unitGlob: '', machine: '', withFiles: false };
    for await (const _ev of api.watch(req, { follow: true, signal: io.signal })) dirty = true;
  } finally {
    clearInterval(timer);
    await drawing;
  }
}
