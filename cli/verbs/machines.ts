/**
 * The machine verbs: `list-machines` (fleetctl's MACHINE IP METADATA, plus what placed units
 * reserve of each machine's CPU and memory, and its runtime driver; with a warning when no
 * scheduler leads or rescheduling is paused), `drain` / `undrain`, which stop a machine from
 * taking units (the leader moves its units off, rate limited) and let it take them again, and
 * `resume-rescheduling`, which ends a mass-loss pause.
 */
import {
  MachineStatus,
  ReschedulingPause,
  type SchedulerStatus,
} from '../../proto/flotilla/v1/machines.js';
import { PlanResponse } from '../../proto/flotilla/v1/units.js';
import { withClient } from '../client.js';
import {
  alignColumns,
  formatAge,
  formatBytes,
  formatCpu,
  formatMetadata,
  machineId,
  machineLegend,
  parseFields,
  printJson,
  printWarnings,
  renderTable,
  TABLE_FLAGS,
  tableHelp,
  type Column,
  type MachineAddresses,
} from '../table.js';
import {
  EXIT_OK,
  UsageError,
  type CliIo,
  type GlobalOptions,
  type Verb,
  parseVerbArgs,
} from '../verb.js';

const COLUMNS: Readonly<Record<string, Column<MachineStatus>>> = {
  machine: (m, full) => machineId(m.machine?.id ?? '', full),
  ip: (m) => m.machine?.addresses[0] ?? '-',
  metadata: (m) => formatMetadata(m.metadata),
  units: (m) => String(m.units),
  cpu: (m) =>
    `${formatCpu(m.reserved?.cpuMillicores ?? 0n)}/${formatCpu(m.machine?.capacity?.cpuMillicores ?? 0n)}`,
  memory: (m) =>
    `${formatBytes(m.reserved?.memoryBytes ?? 0n)}/${formatBytes(m.machine?.capacity?.memoryBytes ?? 0n)}`,
  tasks: (m) => `${m.reserved?.tasks ?? 0n}/${m.machine?.capacity?.tasks ?? 0n}`,
  driver: (m) => m.machine?.driver ?? '-',
  drained: (m) => String(m.drained),
  version: (m) => m.machine?.version ?? '-',
  endpoint: (m) => m.machine?.agentEndpoint ?? '-',
  state: (m) => machineState(m, Date.now()),
};
const DEFAULTS = 'machine,ip,metadata,units,cpu,memory,driver,state';

/** `ready`, `drained`, or for a lost machine since when and what moved off it. */
export function machineState(m: MachineStatus, now: number): string {
  const lost = m.lost;
  if (lost === undefined) return m.drained ? 'drained' : 'ready';
  const when = `lost ${formatAge(Number(lost.lostUnixMs), now)} ago`;
  if (lost.units === 0) return `${when}, had no units`;
  const moved = Math.max(0, lost.units - m.units);
  const left = m.units > 0 ? `, ${m.units} still placed there` : '';
  return `${when}, ${moved} of ${lost.units} unit${lost.units === 1 ? '' : 's'} moved${left}`;
}

const LIST_HELP = `Usage: flotctl list-machines [--fields LIST] [--no-legend] [-l|--full]

Lists the machines whose agents are connected, and those lost within the last hour (their
agent stopped renewing its lease: killed, cut off or stopped). CPU (cores) and MEMORY show
what placed units reserve out of the machine's capacity. STATE is ready, drained (takes no
new units), or lost with since when and how many of its units moved elsewhere. A warning on
stderr says when no scheduler leads, or when the leader has paused rescheduling because
more than half of the machines vanished at once.

Options:
${tableHelp(COLUMNS, DEFAULTS)}`;

export const listMachinesVerb: Verb = {
  name: 'list-machines',
  summary: 'list the machines of the cluster with their reserved and total capacity',
  help: LIST_HELP,
  async run(args: readonly string[], io: CliIo, globals: GlobalOptions): Promise<number> {
    const { values, positionals } = parseVerbArgs(args, TABLE_FLAGS);
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const fields = parseFields(values.fields, COLUMNS, DEFAULTS);
    const res = await withClient(globals, (api) => api.listMachines());
    const warning = schedulerWarning(res.scheduler);
    if (warning !== undefined) io.stderr(`WARNING: ${warning}\n`);
    printWarnings(io, res.warnings);
    if (globals.output === 'json') {
      printJson(
        io,
        res.machines.map((m) => MachineStatus.toJSON(m)),
      );
      return EXIT_OK;
    }
    const opts = { full: values.full === true, legend: values['no-legend'] !== true };
    io.stdout(renderTable(res.machines, fields, COLUMNS, opts));
    return EXIT_OK;
  },
};

function drainVerb(drained: boolean): Verb {
  const name = drained ? 'drain' : 'undrain';
  const help = drained
    ? `Usage: flotctl drain [--dry-run] MACHINE

Drains a machine (its id or a unique prefix of it): it takes no new units, and the scheduler
moves the units it runs to other machines, a few at a time. The setting persists across agent
restarts until "flotctl undrain". Before draining, says what the scheduler's planner expects
for each unit there: the machine it moves to, why it would wait for one, or that a Global
unit's copy there is removed. Follow the moves with "flotctl list-units --machine MACHINE".

Options:
  --dry-run   only say what would happen; drain nothing
`
    : `Usage: flotctl undrain MACHINE

Lets a drained machine (its id or a unique prefix of it) take units again.
`;
  return {
    name,
    summary: drained
      ? 'move units off a machine and keep new ones away'
      : 'let a drained machine take units again',
    help,
    async run(args: readonly string[], io: CliIo, globals: GlobalOptions): Promise<number> {
      const { values, positionals } = parseVerbArgs(
        args,
        drained ? { 'dry-run': { type: 'boolean' } } : {},
      );
      const [machine, ...extra] = positionals;
      if (machine === undefined || extra.length > 0)
        throw new UsageError('give exactly one machine');
      const dryRun = values['dry-run'] === true;
      const { res, plan, addresses } = await withClient(globals, async (api) => {
        // Planned before draining: afterwards the units are already on their way.
        const plan = drained
          ? await api.plan({ files: [], names: [], drainMachine: machine })
          : undefined;
        return {
          plan,
          addresses: plan === undefined ? new Map<string, string>() : await api.addresses(),
          res: dryRun ? undefined : await api.drain(machine, drained),
        };
      });
      if (globals.output === 'json') {
        printJson(io, {
          ...(res === undefined ? {} : (MachineStatus.toJSON(res) as object)),
          ...(plan === undefined ? {} : { plan: PlanResponse.toJSON(plan) }),
        });
        return EXIT_OK;
      }
      if (plan !== undefined) {
        io.stdout(drainPlanText(plan, addresses, dryRun));
        return EXIT_OK;
      }
      const id = res?.machine?.id ?? machine;
      const units = `${res?.units ?? 0} unit${res?.units === 1 ? '' : 's'}`;
      io.stdout(`Machine ${id} undrained: it takes units again (${units} placed there now)\n`);
      return EXIT_OK;
    },
  };
}

/**
 * What draining does to each unit on the machine, from a plan with `drain_machine`:
 * `web@1.service  moves to 2f1e8c3a.../10.0.0.11`, `db.service  waits: 0/2 machines: ...`,
 * `monitor.service  Global: its copy here is removed`.
 */
export function drainPlanText(
  plan: PlanResponse,
  addresses: MachineAddresses,
  dryRun: boolean,
): string {
  const id = plan.drainMachine;
  const n = plan.units.length;
  const units = n === 0 ? 'it runs no units' : `of its ${n} unit${n === 1 ? '' : 's'}:`;
  const head = dryRun
    ? `Draining machine ${id} would keep new units away; ${units}\n`
    : `Machine ${id} drained: it takes no new units; ${units}\n`;
  const rows = plan.units.map((u): [string, string] => {
    const to = u.machine === '' ? [] : u.machine.split(',');
    if (u.global) return [u.name, 'Global: its copy here is removed'];
    if (to.length > 0 && !to.includes(id)) {
      return [u.name, `moves to ${to.map((m) => machineLegend(m, addresses, false)).join(',')}`];
    }
    const why = u.unscheduled?.summary ?? 'no other machine can take it';
    return [u.name, `waits for a machine: ${why}`];
  });
  const table = rows.length === 0 ? '' : alignColumns(rows.map(([u, what]) => [`  ${u}`, what]));
  const tail = dryRun ? 'Nothing was drained (--dry-run).\n' : '';
  return head + table + tail;
}

export const drainMachineVerb = drainVerb(true);
export const undrainMachineVerb = drainVerb(false);

/** What a user must know about scheduling before trusting the machine list, if anything. */
export function schedulerWarning(s: SchedulerStatus | undefined): string | undefined {
  if (s !== undefined && s.leader === '' && s.replicas > 0) {
    const n = s.replicas === 1 ? '1 replica runs' : `${s.replicas} replicas run`;
    return `leadership is changing: no scheduler leads at this moment while ${n}; one is elected within the election TTL and places units again (flotctl list-schedulers)`;
  }
  if (s === undefined || s.leader === '') {
    return 'no scheduler leads: units are neither placed nor moved until one runs (flotilla scheduler)';
  }
  const p = s.pause;
  if (p === undefined) return undefined;
  const ends =
    p.resumesAtUnixMs > 0n
      ? `until they return or until ${clock(p.resumesAtUnixMs)}`
      : 'until they return';
  return `rescheduling is PAUSED since ${clock(p.sinceUnixMs)}: ${p.reason}. The units of ${p.lost.join(', ')} stay where they were ${ends}; "flotctl resume-rescheduling" moves them now.`;
}

function clock(unixMs: bigint): string {
  return new Date(Number(unixMs)).toISOString().slice(11, 19) + 'Z';
}

const RESUME_HELP = `Usage: flotctl resume-rescheduling

When more than half of the machines vanish at once, the leading scheduler stops moving their
units: a network partition or an etcd problem is likelier than that many real failures, and
moving everything at once could overload what is left. The pause ends by itself when the
machines return, or after the scheduler's --reschedule-pause-timeout (5 minutes by default).
This command ends it now: the units of the machines still gone are placed elsewhere, a few at
a time. "flotctl list-machines" shows whether rescheduling is paused.

Exit status: 0 when the leader ended the pause, 1 when nothing is paused or no scheduler
leads.
`;

export const resumeReschedulingVerb: Verb = {
  name: 'resume-rescheduling',
  summary: 'move the units of lost machines now, ending a mass-loss pause',
  help: RESUME_HELP,
  async run(args: readonly string[], io: CliIo, globals: GlobalOptions): Promise<number> {
    const { positionals } = parseVerbArgs(args, {});
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const res = await withClient(globals, (api) => api.resumeRescheduling());
    const pause = res.pause ?? ReschedulingPause.create();
    if (globals.output === 'json') {
      printJson(io, ReschedulingPause.toJSON(pause));
      return EXIT_OK;
    }
    io.stdout(
      `Rescheduling resumed: the units of ${pause.lost.join(', ')} are placed elsewhere now\n`,
    );
    return EXIT_OK;
  },
};
