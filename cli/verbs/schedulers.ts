/**
 * `list-schedulers`: the scheduler replicas that run (each advertises itself in etcd), which
 * one leads, and whether each one's copy of the cluster keeps up with etcd. Any replica
 * answers for all of them.
 */
import type { SchedulerReplicaStatus } from '../../proto/flotilla/v1/machines.js';
import { withClient } from '../client.js';
import {
  formatAge,
  formatTime,
  parseFields,
  printJson,
  renderTable,
  TABLE_FLAGS,
  tableHelp,
  type Column,
} from '../table.js';
import {
  EXIT_FAILURE,
  EXIT_OK,
  UsageError,
  type CliIo,
  type GlobalOptions,
  type Verb,
  parseVerbArgs,
} from '../verb.js';

/** A row and the time it is shown at (for ages). */
interface Row {
  readonly status: SchedulerReplicaStatus;
  readonly now: number;
}

/** `in sync`, or how far behind and since when. */
export function formatLag(lag: bigint, sinceMs: bigint, now: number): string {
  if (lag <= 0n) return 'in sync';
  const revisions = `${lag} revision${lag === 1n ? '' : 's'}`;
  return `${revisions} behind for ${formatAge(Number(sinceMs), now)}`;
}

const COLUMNS: Readonly<Record<string, Column<Row>>> = {
  name: ({ status }) => status.replica?.name ?? '-',
  api: ({ status }) => status.replica?.api || '-',
  leader: ({ status }) => (status.leader ? 'yes' : 'no'),
  sync: ({ status, now }) =>
    formatLag(status.replica?.lagRevisions ?? 0n, status.replica?.lagSinceUnixMs ?? 0n, now),
  version: ({ status }) => status.replica?.version || '-',
  pid: ({ status }) => String(status.replica?.pid ?? '-'),
  started: ({ status }) => formatTime(status.replica?.startedUnixMs ?? 0n),
  id: ({ status }) => status.replica?.id ?? '-',
};
const DEFAULTS = 'name,api,leader,sync,version';

const HELP = `Usage: flotctl list-schedulers [--fields LIST] [--no-legend]

Lists the scheduler replicas that run: each one's API address, whether it is the elected
leader (which alone places units), whether its copy of the cluster is in sync with etcd
(checked every few seconds; a replica behind answers reads late), and its version. Any
replica answers for all of them. A replica that was killed stays listed until its lease
runs out (the election TTL, 5 s by default).

Exit status: 0, or 1 when no replica leads (an election is under way, or none runs).

Options:
${tableHelp(COLUMNS, DEFAULTS)}`;

export const listSchedulersVerb: Verb = {
  name: 'list-schedulers',
  summary: 'list the scheduler replicas, which one leads and whether each is in sync',
  help: HELP,
  async run(args: readonly string[], io: CliIo, globals: GlobalOptions): Promise<number> {
    const { values, positionals } = parseVerbArgs(args, TABLE_FLAGS);
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const fields = parseFields(values.fields, COLUMNS, DEFAULTS);
    const res = await withClient(globals, (api) => api.listSchedulers());
    const now = Date.now();
    const leads = res.schedulers.some((s) => s.leader);
    if (globals.output === 'json') {
      printJson(
        io,
        res.schedulers.map(({ replica, leader }) => ({
          id: replica?.id ?? '',
          name: replica?.name ?? '',
          api: replica?.api ?? '',
          leader,
          lagRevisions: Number(replica?.lagRevisions ?? 0n),
          lagSinceUnixMs: Number(replica?.lagSinceUnixMs ?? 0n),
          version: replica?.version ?? '',
          pid: replica?.pid ?? 0,
          startedUnixMs: Number(replica?.startedUnixMs ?? 0n),
        })),
      );
      return leads ? EXIT_OK : EXIT_FAILURE;
    }
    if (!leads) {
      io.stderr(
        res.schedulers.length === 0
          ? 'WARNING: no scheduler replica runs: start one (flotilla scheduler)\n'
          : `WARNING: no replica leads at this moment: an election is under way among ${res.schedulers.length}; units are placed again once one wins\n`,
      );
    }
    const rows = res.schedulers.map((status) => ({ status, now }));
    const opts = { full: values.full === true, legend: values['no-legend'] !== true };
    io.stdout(renderTable(rows, fields, COLUMNS, opts));
    return leads ? EXIT_OK : EXIT_FAILURE;
  },
};
