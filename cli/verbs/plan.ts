/**
 * `flotctl plan FILE|UNIT...`: a dry run of the scheduler's planner on the cluster as it is,
 * as if the files were submitted and the units started. Nothing is written. Shows where each
 * unit would go, what it would displace, and why the ones that cannot be placed cannot.
 */
import { PlanResponse, type PlannedUnit, type UnitFile } from '../../proto/flotilla/v1/units.js';
import { withClient } from '../client.js';
import { alignColumns, machineLegend, printJson, type MachineAddresses } from '../table.js';
import { countedReason } from '../../lib/reasons.js';
import { isFile, readUnitFile, unitNameOf } from '../unit-args.js';
import {
  EXIT_FAILURE,
  EXIT_OK,
  UsageError,
  type CliIo,
  type GlobalOptions,
  type Verb,
  parseVerbArgs,
} from '../verb.js';

const HELP = `Usage: flotctl plan [--no-legend] [-l|--full] FILE|UNIT...

Asks the scheduler where units would go, without changing anything: local unit files are
planned as if submitted and started (replacing units of the same name), names of submitted
units (or of instances of submitted templates) as if started. Files are checked as submit
checks them, images in their registry included. A template file plans the instances named
with it, else its existing instances on the new file. Prints each unit's machine and
the units it would displace (Replaces=); for a unit that cannot be placed, the reasons,
counted over the machines.

Options:
  --no-legend   do not print the column headers
  -l, --full    do not shorten machine ids

Exit status: 0 when every unit can be placed, 1 when any cannot, 2 for a usage error.
`;

export const planVerb: Verb = {
  name: 'plan',
  summary: 'show where units would be placed, without changing anything',
  help: HELP,
  async run(args: readonly string[], io: CliIo, globals: GlobalOptions): Promise<number> {
    const { values, positionals } = parseVerbArgs(args, {
      'no-legend': { type: 'boolean' },
      full: { type: 'boolean', short: 'l' },
    });
    if (positionals.length === 0) throw new UsageError('give at least one unit file or unit');
    const files: UnitFile[] = [];
    const names: string[] = [];
    for (const arg of positionals) {
      if (await isFile(arg)) files.push(await readUnitFile(arg));
      else names.push(unitNameOf(arg));
    }
    const { res, addresses } = await withClient(globals, async (api) => ({
      res: await api.plan({ files, names: [...new Set(names)], drainMachine: '' }),
      addresses: await api.addresses(),
    }));
    const unplaceable = res.units.filter((u) => u.machine === '');
    if (globals.output === 'json') {
      printJson(io, PlanResponse.toJSON(res));
    } else {
      io.stdout(planText(res, addresses, values.full === true, values['no-legend'] !== true));
    }
    return unplaceable.length === 0 ? EXIT_OK : EXIT_FAILURE;
  },
};

/** The plan as a table, then one line per reason of each unplaceable unit, then a summary. */
export function planText(
  res: PlanResponse,
  addresses: MachineAddresses,
  full: boolean,
  legend: boolean,
): string {
  const rows: string[][] = res.units.map((u) => [
    u.name,
    machinesOf(u, addresses, full),
    u.displaces.length === 0 ? '-' : u.displaces.join(','),
    u.unscheduled?.summary ?? '-',
  ]);
  if (legend) rows.unshift(['UNIT', 'MACHINE', 'DISPLACES', 'REASON']);
  let out = alignColumns(rows);
  const placed = res.units.length - res.units.filter((u) => u.machine === '').length;
  out += `\n${placed} of ${res.units.length} unit${res.units.length === 1 ? '' : 's'} can be placed on ${res.machines} machine${res.machines === 1 ? '' : 's'}\n`;
  for (const u of res.units) {
    if (u.machine !== '' || u.unscheduled === undefined) continue;
    out += `${u.name} cannot be placed:\n`;
    for (const r of u.unscheduled.reasons) out += `  ${countedReason(r.machines, r.reason)}\n`;
  }
  return out;
}

function machinesOf(u: PlannedUnit, addresses: MachineAddresses, full: boolean): string {
  if (u.machine === '') return '-';
  return u.machine
    .split(',')
    .map((m) => machineLegend(m, addresses, full))
    .join(',');
}
