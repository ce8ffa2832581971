/**
 * `flotctl watch`: the cluster's changes, live, one line each (time, revision, kind, name,
 * machine, what happened), from Events.Watch. The stream is resumable: every line carries its
 * etcd revision, and `--from-revision` starts from any revision still in etcd's history, so
 * `watch --from-revision <last seen + 1>` continues where an earlier watch stopped. When the
 * connection breaks, flotctl resumes by itself from the last revision seen + 1: at once on the
 * next replica when several are named (`--endpoint a,b`), else every 5s.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { formatDuration } from '../../lib/duration.js';
import { Event } from '../../proto/flotilla/v1/events.js';
import type { ApiClient } from '../client.js';
import { withClient } from '../client.js';
import { CliError } from '../errors.js';
import { formatClock, formatMetadata, machineId, printJsonLine } from '../table.js';
import { activeText, failureText, waitingText } from '../unit-view.js';
import {
  EXIT_OK,
  UsageError,
  type CliIo,
  type GlobalOptions,
  type Verb,
  parseVerbArgs,
} from '../verb.js';

const HELP = `Usage: flotctl watch [--from-revision N] [--unit GLOB] [--machine ID] [-l|--full]

Prints every change of the cluster as it happens, one line each:
  TIME  REVISION  KIND  NAME  MACHINE  WHAT
KIND is unit, placement, state, machine, machine-config, unscheduled, rollout, service or
endpoint. A state line shows the unit's health when it has a HealthCmd= (with the failing
check's output when unhealthy); a rollout line each step of a rolling update; an endpoint line
an instance's port joining or leaving its service (NAME is the unit). Runs until Ctrl-C.

Options:
  --from-revision N   start at etcd revision N (still in etcd's history) instead of now
  --unit GLOB         only changes of units whose name matches (shell syntax, e.g. 'web@*');
                      machine changes are still shown
  --machine ID        only changes on that machine (its id or a unique prefix)
  -l, --full          do not shorten machine ids
  -o json             one JSON event per line, with the time it was received
`;

export const watchVerb: Verb = {
  name: 'watch',
  summary: "print the cluster's changes live, one line each",
  help: HELP,
  async run(args: readonly string[], io: CliIo, globals: GlobalOptions): Promise<number> {
    const { values, positionals } = parseVerbArgs(args, {
      'from-revision': { type: 'string' },
      unit: { type: 'string' },
      machine: { type: 'string' },
      full: { type: 'boolean', short: 'l' },
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const rawFrom = values['from-revision'] ?? '0';
    if (!/^\d+$/.test(rawFrom))
      throw new UsageError(`--from-revision=${rawFrom}: expected a revision number`);
    // Files only for -o json, which prints whole records.
    const filter = {
      unitGlob: values.unit ?? '',
      machine: values.machine ?? '',
      withFiles: globals.output === 'json',
    };
    const full = values.full === true;
    return withClient(globals, async (api) => {
      if (filter.machine !== '') filter.machine = await resolveMachine(api, filter.machine);
      await follow(api, io, BigInt(rawFrom), filter, (ev) => {
        const now = Date.now();
        if (globals.output === 'json') {
          printJsonLine(io, { time: new Date(now).toISOString(), ...(Event.toJSON(ev) as object) });
        } else {
          io.stdout(`${eventLine(ev, now, full)}\n`);
        }
      });
      return EXIT_OK;
    });
  },
};

/**
 * A machine id from a unique prefix of a connected machine's id; anything else is kept as
 * given (a machine that is down has no record, and its events may still be wanted).
 */
async function resolveMachine(api: ApiClient, query: string): Promise<string> {
  const ids = (await api.listMachines()).machines.flatMap((m) => m.machine?.id ?? []);
  if (ids.includes(query)) return query;
  const matches = ids.filter((id) => id.startsWith(query));
  if (matches.length > 1) {
    throw new CliError('refused', `machine ${query} is ambiguous: it starts ${matches.join(', ')}`);
  }
  return matches[0] ?? query;
}

/** Between two attempts to resume a broken watch: one line on stderr each. */
export const WATCH_RETRY_MS = 5_000;

/**
 * Streams events until the user stops. A broken stream is resumed from the last revision seen
 * + 1 (a watch "from now" first reads the current revision, so there always is one): at once
 * on the next replica while some replica has not failed since the last event, then every
 * {@link WATCH_RETRY_MS}, saying so in one line per attempt and once more when it resumed.
 * Every replica serves the same events at the same revisions (etcd's), so nothing is lost or
 * repeated across the switch. Refusals (a compacted revision, a bad glob) and an API that was
 * never reached on any replica end the command.
 */
async function follow(
  api: ApiClient,
  io: CliIo,
  from: bigint,
  filter: { unitGlob: string; machine: string; withFiles: boolean },
  print: (ev: Event) => void,
): Promise<void> {
  let next = from;
  if (next === 0n) next = (await api.listUnitsPage({ pageSize: 1, brief: true })).revision + 1n;
  let failures = 0;
  const stopped = (): boolean => io.signal?.aborted === true;
  for (;;) {
    const endpoint = api.endpoint;
    try {
      const stream = api.watch(
        { fromRevision: next, ...filter },
        { follow: true, signal: io.signal },
      );
      for await (const ev of stream) {
        if (failures > 0) io.stderr(`watch: resumed from revision ${next}\n`);
        failures = 0;
        next = ev.revision + 1n;
        print(ev);
      }
      if (stopped()) return; // ended by the user
      // A scheduler that shuts down ends its streams cleanly: resumed like a break.
      throw new CliError('unavailable', 'the scheduler closed the stream');
    } catch (err) {
      const fatal = ['refused', 'tls'];
      if (!(err instanceof CliError) || fatal.includes(err.code)) throw err;
      if (stopped()) return;
      failures += 1;
      const roundOver = failures >= api.replicaCount;
      if (err.code === 'unreachable' && roundOver && failures === api.replicaCount && next === from)
        throw err;
      if (!roundOver) {
        io.stderr(
          `watch: lost the Flotilla API at ${endpoint} (${causeOf(err)}); resuming from revision ${next} at ${api.endpoint}\n`,
        );
        continue;
      }
      const every = `retrying every ${formatDuration(WATCH_RETRY_MS)}`;
      io.stderr(
        failures === 1
          ? `watch: lost the Flotilla API at ${endpoint} (${causeOf(err)}); ${every}, then resuming from revision ${next}\n`
          : `watch: the Flotilla API at ${endpoint} is still unavailable (${causeOf(err)}); ${every}, then resuming from revision ${next}\n`,
      );
      await sleep(WATCH_RETRY_MS, undefined, { signal: io.signal }).catch(() => undefined);
      if (stopped()) return;
    }
  }
}

/** A broken stream's cause in a few words, not gRPC's text. */
function causeOf(err: CliError): string {
  const text = err.message;
  if (/ECONNREFUSED|refused/i.test(text)) return 'connection refused';
  if (/closed the stream/.test(text)) return 'it closed the stream';
  if (/ECONNRESET|dropped|lost the connection|closed|ended/i.test(text)) return 'connection lost';
  if (/ETIMEDOUT|deadline|did not answer/i.test(text)) return 'no answer';
  if (/etcd/i.test(text)) return 'its etcd is unavailable';
  return err.code === 'unreachable' ? 'not reachable' : 'unavailable';
}

/** One event as a line: `12:00:01.123  42  placement  web@1.service  1a2b3c4d...  placed (launched)`. */
export function eventLine(ev: Event, nowMs: number, full: boolean): string {
  const aboutMachine = ev.kind === 'machine' || ev.kind === 'machine-config';
  const name = aboutMachine ? machineId(ev.name, full) : ev.name;
  const machine = aboutMachine || ev.machine === '' ? '-' : machineId(ev.machine, full);
  return [
    formatClock(nowMs),
    String(ev.revision).padStart(6),
    ev.kind.padEnd(14),
    name.padEnd(full ? 32 : 24),
    machine.padEnd(full ? 32 : 11),
    what(ev),
  ].join('  ');
}

/** What happened, in a few words. */
function what(ev: Event): string {
  const put = ev.type === 'put';
  switch (ev.kind) {
    case 'unit':
      return put ? `desired ${ev.unit?.desiredState ?? '?'}` : 'destroyed';
    case 'placement':
      return put ? `placed (${ev.placement?.desiredState || 'launched'})` : 'unplaced';
    case 'state': {
      if (!put) return 'no longer reported';
      const s = ev.state;
      const failed = s?.activeState === 'failed' ? `: ${failureText(s)}` : '';
      const check = s?.healthChecks.at(-1);
      const health =
        s === undefined || s.health === ''
          ? ''
          : `, ${s.health}${s.health === 'unhealthy' && check?.output ? ` (${check.output})` : ''}`;
      return `${activeText(s)}${health}${failed}`;
    }
    case 'rollout': {
      if (!put) return 'rollout removed';
      const r = ev.rollout;
      const to = (r?.toHash ?? '').slice(0, 12);
      const step = r?.batch.length ? `, updating ${r.batch.map((b) => b.unit).join(' ')}` : '';
      return `${r?.rollback === true ? 'rollback' : 'rollout'} to ${to} ${r?.phase ?? '?'}${step}: ${r?.message ?? ''}`;
    }
    case 'machine':
      return put
        ? `up (${ev.machineRecord?.driver ?? '?'}, ${ev.machineRecord?.addresses[0] ?? '-'})`
        : 'down';
    case 'machine-config': {
      if (!put) return 'settings removed';
      const c = ev.machineConfig;
      return `${c?.drained === true ? 'drained' : 'not drained'}, metadata ${formatMetadata(c?.metadata ?? {})}`;
    }
    case 'unscheduled': {
      if (!put) return 'no longer pending';
      const waiting = ev.unscheduled === undefined ? '' : waitingText(ev.unscheduled);
      return `pending: ${ev.unscheduled?.summary ?? '?'}${waiting === '' ? '' : ` (${waiting})`}`;
    }
    case 'service': {
      if (!put) return 'removed';
      const publish = ev.service?.publish ? `, published on ${ev.service.publish}` : '';
      return `declared by ${(ev.service?.units ?? []).join(' ') || '-'}${publish}`;
    }
    case 'endpoint': {
      const e = ev.endpoint;
      const at = e === undefined ? '' : ` ${e.address}:${e.port}`;
      if (!put) return `${ev.serviceName}/${ev.portName}${at} removed`;
      const tags = e?.tags.length ? ` [${e.tags.join(',')}]` : '';
      return `${ev.serviceName}/${ev.portName}${at} added (${e?.health || 'none'})${tags}`;
    }
    default:
      return ev.type;
  }
}
