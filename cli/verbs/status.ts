/**
 * `flotctl status UNIT...` and `flotctl journal [-n N] [-f] UNIT`: what a unit is doing and
 * what it printed. Both read logs through the API's Logs.Tail, which relays the agent of the
 * unit's machine; when the logs cannot be had, status says so in one line and still succeeds.
 */
import { formatDuration } from '../../lib/duration.js';
import { LogLine } from '../../proto/flotilla/v1/logs.js';
import type { PortAssignment, UnitState } from '../../proto/flotilla/v1/records.js';
import { EndpointStatus } from '../../proto/flotilla/v1/services.js';
import { UnitStatus, type GlobalInstance } from '../../proto/flotilla/v1/units.js';
import { withClient, type ApiClient } from '../client.js';
import { CliError } from '../errors.js';
import {
  alignColumns,
  formatAge,
  addressesOf,
  formatTime,
  machineLegend,
  printJson,
  printJsonLine,
  shortHash,
  type MachineAddresses,
} from '../table.js';
import { describeUnit, unitNameOf, unitNamesOf } from '../unit-args.js';
import { failureText, waitingText } from '../unit-view.js';
import {
  EXIT_FAILURE,
  EXIT_OK,
  UsageError,
  type CliIo,
  type GlobalOptions,
  type Verb,
  parseVerbArgs,
} from '../verb.js';

/** `-n N` / `--lines N`: a whole number of lines. */
function parseLines(raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0)
    throw new UsageError(`--lines=${raw}: expected a whole number`);
  return n;
}

const STATUS_HELP = `Usage: flotctl status [-n N] UNIT...

Shows each unit's desired and current state, its machine, container, pid, how long it has been
in its state, restarts and last exit (of a Global unit: every machine's copy); its health and
last health checks when it has a HealthCmd=; its ports ([X-Service] Port=) and whether each
one's endpoint is registered (the instance takes traffic); why it waits
when it cannot be placed (one line, every reason counted over the machines); and its last log lines (read from its machine's agent, for a Global
unit the first machine's: journal --machine reads the others; when they cannot be read, one
line says why).

Options:
  -n, --lines N   how many log lines to show (default 10; 0 for none)

Exit status: 0 when every unit was found, 1 when any is not submitted, 2 for a usage error.
`;

export const statusVerb: Verb = {
  name: 'status',
  summary: "show units' state, placement, pending reasons and last log lines",
  help: STATUS_HELP,
  async run(args: readonly string[], io: CliIo, globals: GlobalOptions): Promise<number> {
    const { values, positionals } = parseVerbArgs(args, { lines: { type: 'string', short: 'n' } });
    if (positionals.length === 0) throw new UsageError('give at least one unit');
    const lines = parseLines(values.lines, 10);
    return withClient(globals, async (api) => {
      const json: unknown[] = [];
      let failed = false;
      for (const [i, name] of unitNamesOf(positionals).entries()) {
        // The log lines are asked for at once, beside the status: each call waits until the
        // replica's copy of the cluster is current, and during a large scale that wait is
        // the cost of a call.
        const lastLog: Promise<LastLines> =
          lines === 0 ? Promise.resolve({ lines: [] }) : lastLines(api, name, lines);
        let status: UnitStatus;
        try {
          status = await api.getUnit(name);
        } catch (err) {
          await lastLog;
          if (!(err instanceof CliError) || err.code !== 'refused') throw err;
          io.stderr(`${err.message}\n`);
          failed = true;
          continue;
        }
        const [logs, endpoints] = await Promise.all([lastLog, unitEndpoints(api, status)]);
        if (globals.output === 'json') {
          json.push({
            ...(UnitStatus.toJSON(status) as object),
            ...(endpoints === undefined
              ? {}
              : { endpoints: endpoints.map((e) => EndpointStatus.toJSON(e)) }),
            logs: logs.lines.map((l) => LogLine.toJSON(l)),
            ...(logs.error === undefined ? {} : { logsError: logs.error }),
          });
          continue;
        }
        if (i > 0) io.stdout('\n');
        io.stdout(statusText(status, addressesOf([status]), Date.now(), endpoints));
        if (logs.error !== undefined) io.stdout(`\nLogs: unavailable: ${logs.error}\n`);
        else if (lines > 0 && logs.lines.length === 0) io.stdout('\nLogs: no output yet\n');
        else if (lines > 0) {
          const n = logs.lines.length;
          io.stdout(`\nLast ${n} log line${n === 1 ? '' : 's'}:\n`);
          for (const l of logs.lines) io.stdout(`  ${logText(l)}\n`);
        }
      }
      if (globals.output === 'json') printJson(io, json);
      return failed ? EXIT_FAILURE : EXIT_OK;
    });
  },
};

/** A unit's last log lines, or why they cannot be read. */
interface LastLines {
  readonly lines: LogLine[];
  readonly error?: string;
}

/** The unit's last `n` log lines, or why they cannot be read. */
async function lastLines(api: ApiClient, unit: string, n: number): Promise<LastLines> {
  const lines: LogLine[] = [];
  try {
    const req = { unit, lines: n, follow: false, machine: '' };
    for await (const line of api.tail(req, { follow: false })) {
      lines.push(line);
    }
    return { lines };
  } catch (err) {
    return { lines, error: api.error(err).message };
  }
}

/**
 * The endpoints registered for a unit whose placement has ports ([X-Service] Port=), or
 * undefined for a unit without ports (no call is made) or when they cannot be read.
 */
async function unitEndpoints(
  api: ApiClient,
  status: UnitStatus,
): Promise<EndpointStatus[] | undefined> {
  const placements = [status.placement, ...status.instances.map((c) => c.placement)];
  if (!placements.some((p) => (p?.ports.length ?? 0) > 0)) return undefined;
  try {
    return (await api.listEndpoints({ unit: status.unit?.name ?? '' })).endpoints;
  } catch {
    return undefined; // status still shows the rest
  }
}

/**
 * One row per port of each placement: the port, and whether the agent registered its
 * endpoint (the instance serves it) or not yet (starting, failing its check, stopping).
 */
function endpointRows(
  s: UnitStatus,
  endpoints: readonly EndpointStatus[] | undefined,
): [string, string][] {
  const placed = [s.placement, ...s.instances.map((c) => c.placement)].flatMap((p) =>
    p === undefined ? [] : p.ports.map((port) => ({ machine: p.machine, port })),
  );
  if (placed.length === 0) return [];
  const rows: [string, string][] = [];
  for (const [i, { machine, port }] of placed.entries()) {
    const e = endpoints?.find(
      (x) => x.endpoint?.machine === machine && x.endpoint.portName === port.name,
    );
    rows.push([i === 0 ? 'Endpoints:' : '', endpointText(port, e, endpoints !== undefined)]);
  }
  return rows;
}

function endpointText(port: PortAssignment, e: EndpointStatus | undefined, known: boolean): string {
  const kind = port.static ? 'static' : 'dynamic';
  if (!known) return `${port.name} port ${port.number} (${kind}): registration unknown`;
  if (e?.endpoint === undefined) {
    return `${port.name} port ${port.number} (${kind}): not registered (not serving)`;
  }
  const ep = e.endpoint;
  const tags = ep.tags.length === 0 ? '' : `, tags ${ep.tags.join(',')}`;
  return `${port.name} ${ep.address}:${ep.port} (${kind}): registered in ${ep.service}, ${ep.health || 'none'}${tags}`;
}

/** systemctl-like status of one unit; a placed Global unit shows every machine's copy. */
export function statusText(
  s: UnitStatus,
  addresses: MachineAddresses,
  now: number,
  endpoints?: readonly EndpointStatus[],
): string {
  const unit = s.unit;
  const name = unit?.name ?? '?';
  const description = describeUnit(unit);
  const rows: [string, string][] = [
    ['Desired:', unit?.desiredState ?? '-'],
    ['Current:', s.currentState],
  ];
  if (s.image !== '') rows.push(['Image:', s.image]);
  if (s.instances.length > 0) rows.push(...copyRows(s.instances, addresses, now));
  else rows.push(...placementRows(s, addresses, now));
  rows.push(...endpointRows(s, endpoints));
  rows.push(['Hash:', shortHash(unit?.hash ?? '', true)]);
  const head = `● ${name}${description === '' ? '' : ` - ${description}`}\n`;
  return head + alignColumns(rows.map(([k, v]) => [k.padStart(12), v]));
}

/** Where a unit that is not Global (or not placed) is, why it waits, and its agent's state. */
function placementRows(
  s: UnitStatus,
  addresses: MachineAddresses,
  now: number,
): [string, string][] {
  const state = s.state;
  const placed = s.placement?.machine ?? '';
  const rows: [string, string][] = [
    ['Machine:', placed === '' ? '- (not placed)' : machineLegend(placed, addresses, true)],
  ];
  // The summary holds every reason, counted: said once.
  if (s.unscheduled !== undefined) {
    rows.push(['Pending:', s.unscheduled.summary]);
    const waiting = waitingText(s.unscheduled);
    if (waiting !== '') rows.push(['Waiting:', waiting]);
  }
  if (state !== undefined) {
    const reporter = state.machine === placed ? undefined : state.machine;
    rows.push(...stateRows(state, now, reporter, addresses));
  } else if (placed !== '') {
    rows.push(['Active:', '- (its agent has not reported yet)']);
  }
  return rows;
}

/** A Global unit's copies: how many run, then each machine with its own agent's state. */
function copyRows(
  copies: readonly GlobalInstance[],
  addresses: MachineAddresses,
  now: number,
): [string, string][] {
  const running = copies.filter((c) => c.currentState === 'launched').length;
  const n = copies.length;
  const rows: [string, string][] = [
    ['Global:', `placed on ${n} machine${n === 1 ? '' : 's'}, running on ${running}`],
  ];
  for (const copy of copies) {
    const machine = copy.placement?.machine ?? '';
    rows.push(['Machine:', `${machineLegend(machine, addresses, true)} (${copy.currentState})`]);
    if (copy.state === undefined) rows.push(['Active:', '- (its agent has not reported yet)']);
    else rows.push(...stateRows(copy.state, now, undefined, addresses));
  }
  return rows;
}

/** An agent's state: active since when, container, pid, restarts, last exit, why it failed. */
function stateRows(
  state: UnitState,
  now: number,
  reporter: string | undefined,
  addresses: MachineAddresses,
): [string, string][] {
  const since =
    state.since === 0n
      ? ''
      : ` since ${formatTime(state.since)}; ${formatAge(Number(state.since), now)} ago`;
  // A pull in progress says what it pulls and how far: activating (pulling web:1.4, 12/40 MB).
  const pulling = state.subState === 'pulling' && state.message !== '';
  const sub = state.subState === '' ? '' : ` (${pulling ? state.message : state.subState})`;
  const rows: [string, string][] = [['Active:', `${state.activeState || '-'}${sub}${since}`]];
  if (reporter !== undefined) rows.push(['Reported by:', machineLegend(reporter, addresses, true)]);
  rows.push(['Container:', state.containerId || '-']);
  rows.push(['PID:', state.pid > 0 ? String(state.pid) : '-']);
  const why = state.restartReason === '' ? '' : ` (last: ${state.restartReason})`;
  rows.push(['Restarts:', `${state.restarts}${why}`]);
  rows.push(['Last exit:', lastExit(state.exitStatus, state.exitSignal)]);
  if (state.image !== '') rows.push(['Running:', state.image]);
  if (state.activeState === 'failed' || (state.message !== '' && !pulling)) {
    rows.push(['Message:', failureText(state)]);
  }
  rows.push(...healthRows(state, now));
  return rows;
}

/** The health verdict and the last checks, newest first (nothing for a unit without one). */
function healthRows(state: UnitState, now: number): [string, string][] {
  if (state.health === '' && state.healthChecks.length === 0) return [];
  const failing = state.healthFailures > 0 ? `, ${state.healthFailures} failed in a row` : '';
  const rows: [string, string][] = [['Health:', `${state.health || '-'}${failing}`]];
  for (const c of [...state.healthChecks].reverse()) {
    const result = c.exitStatus === 0 ? 'ok' : c.exitStatus < 0 ? 'failed' : `exit ${c.exitStatus}`;
    const output = c.output === '' ? '' : `: ${c.output}`;
    const when = `${formatAge(Number(c.at), now)} ago`;
    rows.push(['', `${when}, ${result} in ${formatDuration(c.durationMs)}${output}`]);
  }
  return rows;
}

function lastExit(status: number, signal: string): string {
  if (signal !== '') return `killed by ${signal}`;
  if (status < 0) return '- (has not exited)';
  return `status ${status}`;
}

/** One log line as printed: the agent's own notes stand out with `-- `. */
function logText(line: LogLine): string {
  return line.stream === 'agent' ? `-- ${line.text}` : line.text;
}

const JOURNAL_HELP = `Usage: flotctl journal [-n N] [-f] [--machine ID] UNIT

Prints the unit's output (stdout and stderr), read from the agent of its machine. A Global
unit runs on several machines: --machine picks whose copy (default: the first by id).

Options:
  -n, --lines N    print the last N lines (default 10)
  -f, --follow     keep printing new lines until Ctrl-C
  --machine ID     a Global unit's copy on this machine (id or unique prefix)
  -o json          one JSON object per line: time (unix ms), stream, text
`;

export const journalVerb: Verb = {
  name: 'journal',
  summary: "print a unit's output, optionally following it",
  help: JOURNAL_HELP,
  async run(args: readonly string[], io: CliIo, globals: GlobalOptions): Promise<number> {
    const { values, positionals } = parseVerbArgs(args, {
      lines: { type: 'string', short: 'n' },
      follow: { type: 'boolean', short: 'f' },
      machine: { type: 'string' },
    });
    const [arg, ...extra] = positionals;
    if (arg === undefined || extra.length > 0) throw new UsageError('give exactly one unit');
    const lines = parseLines(values.lines, 10);
    const follow = values.follow === true;
    return withClient(globals, async (api) => {
      const req = { unit: unitNameOf(arg), lines, follow, machine: values.machine ?? '' };
      for await (const line of api.tail(req, { follow, signal: io.signal })) {
        if (globals.output === 'json') printJsonLine(io, LogLine.toJSON(line));
        else io.stdout(`${logText(line)}\n`);
      }
      return EXIT_OK;
    });
  },
};
