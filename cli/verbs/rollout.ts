/**
 * Rolling updates: `flotctl update FILE...` replaces templates' (or plain units') files and
 * rolls their instances, `flotctl rollback UNIT` returns to the file the last rollout
 * replaced, `flotctl rollout status UNIT` shows how far a rollout is. update and rollback
 * wait, printing progress, until the rollout completes, pauses or rolls back.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { RolloutStatus, type UnitFile } from '../../proto/flotilla/v1/units.js';
import { MAX_PROBLEMS, validateUnitFile } from '../../unit/index.js';
import { parseDurationMs } from '../../daemon/command-line.js';
import { formatDuration } from '../../lib/duration.js';
import { withClient, type ApiClient } from '../client.js';
import { CliError } from '../errors.js';
import { printJson, shortHash } from '../table.js';
import { readUnitFile, unitNameOf } from '../unit-args.js';
import { parseWaitOptions } from '../wait.js';
import {
  EXIT_FAILURE,
  EXIT_OK,
  UsageError,
  type CliIo,
  type GlobalOptions,
  type Verb,
  parseVerbArgs,
} from '../verb.js';

/** Default of update's and rollback's `--timeout`: rollouts of many instances take a while. */
const DEFAULT_ROLLOUT_WAIT_MS = 30 * 60_000;
/** The healthy deadline of a rollout record written before it had one (the leader's default). */
const RECORD_DEADLINE_MS = 300_000n;
/** Between two looks at a rollout's progress. */
const POLL_MS = 500;

const WAIT_FLAGS = {
  'no-block': { type: 'boolean' },
  timeout: { type: 'string' },
} as const;

const WAIT_HELP = `  --no-block          start it and return; follow with flotctl rollout status
  --timeout DUR       give up waiting after this long (default 30m); the rollout goes on
`;

const UPDATE_HELP = `Usage: flotctl update [--parallelism N] [--delay D] [--monitor D]
                      [--healthy-deadline D] [--failure-action pause|rollback]
                      [--order stop-first] [--force] [--no-block] [--timeout DUR] FILE...

Replaces the file of a submitted template (web@.service) or plain unit and rolls its running
instances onto it, N at a time: each is stopped, started on the new file, and counts as done
once it has been active and healthy (HealthCmd=) for --monitor. When one fails (exits,
turns unhealthy, cannot be placed, or is not up within --healthy-deadline) the rollout
pauses, or with --failure-action rollback returns every updated instance to the old file by
itself. Instances that are not started are rewritten at once; new instances get the new file.

Every file is checked first: when any is invalid nothing is written. An update of a unit that
is not submitted is refused, and so is one while another rollout of it is running or paused
(--force supersedes it). The rollout is a record in etcd driven by the leader scheduler: it
carries on through a leader failover, and waiting here can be given up at any time.

Options (defaults below, or the new file's [X-Fleet] UpdateParallelism=, UpdateDelaySec=,
UpdateMonitorSec=, UpdateHealthyDeadlineSec=, UpdateFailureAction=; a flag wins):
  --parallelism N     instances updated at a time (default 1, at most 100)
  --delay D           pause between batches (default 0s)
  --monitor D         how long an updated instance must stay active and healthy (default 5s)
  --healthy-deadline D  how long an updated instance has to become active and healthy,
                      before --monitor starts (default 5m, at most 1h)
  --failure-action A  pause (default) or rollback
  --order O           stop-first (the only order: instances are named units on their machines)
  --force             supersede a running or paused rollout of the same unit
${WAIT_HELP}
Exit status: 0 when every rollout completed, 1 when one paused, rolled back or the wait timed
out, 2 for a usage error.
`;

const ROLLBACK_HELP = `Usage: flotctl rollback [--force] [--no-block] [--timeout DUR] UNIT

Rolls a template (or plain unit) back to the file its last rollout replaced: a running or
paused rollout turns around, a finished one is undone, with the same parallelism, delay and
monitor. A rollback that fails pauses. When the last rollout was itself a rollback, rolling
back again would return to the file that was rolled back (usually one that failed): that is
refused unless --force.

Options:
  --force             roll back a rollback, returning to the file it left
${WAIT_HELP}
Exit status: 0 when the rollback completed, 1 when it paused or the wait timed out.
`;

const ROLLOUT_HELP = `Usage: flotctl rollout status UNIT

Shows the latest rollout of a template (or plain unit): its phase (running, paused, completed,
rolled-back), how many instances are updated, in progress, pending and failed, the hashes it
rolls from and to, and its last message.

Exit status: 0 when shown, 1 when the unit has had no rollout.
`;

function duration(flag: string, raw: string | undefined): bigint {
  if (raw === undefined) return -1n;
  const ms = parseDurationMs(raw);
  if (ms === undefined) throw new UsageError(`--${flag}=${raw}: expected a duration such as 5s`);
  return BigInt(ms);
}

/** `--healthy-deadline`: 0n when not given (the file's or the default applies). */
function healthyDeadline(raw: string | undefined): bigint {
  if (raw === undefined) return 0n;
  const ms = parseDurationMs(raw);
  if (ms === undefined || ms <= 0 || ms > 3_600_000) {
    throw new UsageError(
      `--healthy-deadline=${raw}: expected a duration of more than 0 and at most 1h, such as 10m`,
    );
  }
  return BigInt(ms);
}

/** How long update and rollback wait: undefined with `--no-block`. */
function waitLimit(values: { 'no-block'?: boolean; timeout?: string }): number | undefined {
  const wait = parseWaitOptions(values, DEFAULT_ROLLOUT_WAIT_MS);
  return wait.block ? wait.limitMs : undefined;
}

export const updateVerb: Verb = {
  name: 'update',
  summary: "replace a template's file and roll its instances, N at a time",
  help: UPDATE_HELP,
  async run(args: readonly string[], io: CliIo, globals: GlobalOptions): Promise<number> {
    const { values, positionals } = parseVerbArgs(args, {
      parallelism: { type: 'string' },
      delay: { type: 'string' },
      monitor: { type: 'string' },
      'healthy-deadline': { type: 'string' },
      'failure-action': { type: 'string' },
      order: { type: 'string' },
      force: { type: 'boolean' },
      ...WAIT_FLAGS,
    });
    if (positionals.length === 0) throw new UsageError('give at least one unit file');
    let parallelism = 0;
    if (values.parallelism !== undefined) {
      parallelism = Number(values.parallelism);
      if (!Number.isInteger(parallelism) || parallelism < 1 || parallelism > 100) {
        throw new UsageError(`--parallelism=${values.parallelism}: expected 1 to 100`);
      }
    }
    const action = values['failure-action'] ?? '';
    if (action !== '' && action !== 'pause' && action !== 'rollback') {
      throw new UsageError(`--failure-action=${action}: expected pause or rollback`);
    }
    const order = values.order ?? '';
    if (order !== '' && order !== 'stop-first' && order !== 'start-first') {
      throw new UsageError(`--order=${order}: expected stop-first`);
    }
    const delayMs = duration('delay', values.delay);
    const monitorMs = duration('monitor', values.monitor);
    const healthyDeadlineMs = healthyDeadline(values['healthy-deadline']);
    const limit = waitLimit(values);
    const files: UnitFile[] = [];
    for (const path of positionals) files.push(await readUnitFile(path));
    // All files first, so a bad one among several writes nothing.
    const problems = files.flatMap((f) =>
      validateUnitFile(f.name, f.contents).map((e) =>
        e.line > 0 ? `${f.name}:${e.line}: ${e.message}` : `${f.name}: ${e.message}`,
      ),
    );
    if (problems.length > 0)
      throw new CliError('refused', problems.slice(0, MAX_PROBLEMS).join('\n'));
    return withClient(globals, async (api) => {
      const started: RolloutStatus[] = [];
      for (const file of files) {
        const s = await api.updateUnit({
          file,
          parallelism,
          delayMs,
          monitorMs,
          healthyDeadlineMs,
          failureAction: action,
          order,
          force: values.force === true,
        });
        started.push(s);
        if (globals.output !== 'json') {
          const r = s.rollout;
          io.stdout(
            `Rolling ${file.name} from ${shortHash(r?.fromHash ?? '', false)} to ${shortHash(r?.toHash ?? '', false)}: ${s.total} instance${s.total === 1 ? '' : 's'}\n`,
          );
        }
      }
      return follow(api, io, globals, started, limit, false);
    });
  },
};

export const rollbackVerb: Verb = {
  name: 'rollback',
  summary: 'return a template (or unit) to the file its last rollout replaced',
  help: ROLLBACK_HELP,
  async run(args: readonly string[], io: CliIo, globals: GlobalOptions): Promise<number> {
    const { values, positionals } = parseVerbArgs(args, {
      ...WAIT_FLAGS,
      force: { type: 'boolean' },
    });
    const [arg, ...extra] = positionals;
    if (arg === undefined || extra.length > 0) throw new UsageError('give exactly one unit');
    const limit = waitLimit(values);
    return withClient(globals, async (api) => {
      if (values.force !== true) await refuseRollbackOfRollback(api, unitNameOf(arg));
      const s = await api.rollback(unitNameOf(arg));
      if (globals.output !== 'json') {
        io.stdout(
          `Rolling ${s.rollout?.unit ?? arg} back to ${shortHash(s.rollout?.toHash ?? '', false)}\n`,
        );
      }
      return follow(api, io, globals, [s], limit, true);
    });
  },
};

export const rolloutVerb: Verb = {
  name: 'rollout',
  summary: "show a template's rollout: flotctl rollout status UNIT",
  help: ROLLOUT_HELP,
  async run(args: readonly string[], io: CliIo, globals: GlobalOptions): Promise<number> {
    const { positionals } = parseVerbArgs(args, {});
    const [sub, arg, ...extra] = positionals;
    if (sub !== 'status') throw new UsageError('the only rollout command is: rollout status UNIT');
    if (arg === undefined || extra.length > 0) throw new UsageError('give exactly one unit');
    return withClient(globals, async (api) => {
      const s = await api.getRollout(unitNameOf(arg));
      if (globals.output === 'json') printJson(io, RolloutStatus.toJSON(s));
      else io.stdout(statusText(s));
      return EXIT_OK;
    });
  },
};

/**
 * A second `rollback` would undo the first: the template goes back to the file that was
 * rolled back, most often because it failed. Refused (exit 1, nothing written) so that it
 * happens only on purpose, with --force. A unit without a rollout is left to the API to say.
 */
async function refuseRollbackOfRollback(api: ApiClient, name: string): Promise<void> {
  let r: RolloutStatus['rollout'];
  try {
    r = (await api.getRollout(name)).rollout;
  } catch {
    return;
  }
  if (r?.rollback !== true) return;
  const from = shortHash(r.fromHash, false);
  const to = shortHash(r.toHash, false);
  const when = r.phase === 'rolled-back' ? 'was rolled back' : `is being rolled back (${r.phase})`;
  throw new CliError(
    'refused',
    `${r.unit} ${when} from ${from} to ${to}; rolling back again would return it to ${from}, the file that was rolled back: pass --force to do that, or flotctl update ${r.unit} with a fixed file`,
  );
}

/** A rollout's message without its phase word in front (`paused: x` when the phase says it). */
function messageOf(r: { phase: string; message: string } | undefined): string {
  const message = r?.message ?? '';
  const phase = r?.phase ?? '';
  return phase !== '' && message.startsWith(`${phase}: `)
    ? message.slice(phase.length + 2)
    : message;
}

/** `rollout status`'s text. */
export function statusText(s: RolloutStatus): string {
  const r = s.rollout;
  if (r === undefined) return 'no rollout\n';
  const lines = [
    `Rollout of ${r.unit}${r.rollback ? ' (rollback)' : ''}: ${r.phase}`,
    `  From:        ${r.fromHash}`,
    `  To:          ${r.toHash}`,
    `  Progress:    ${progressText(s)}`,
    `  Options:     parallelism ${r.parallelism}, delay ${formatDuration(Number(r.delayMs))}, healthy within ${formatDuration(Number(r.healthyDeadlineMs > 0n ? r.healthyDeadlineMs : RECORD_DEADLINE_MS))}, monitor ${formatDuration(Number(r.monitorMs))}, on failure ${r.failureAction}`,
  ];
  if (r.batch.length > 0) lines.push(`  In progress: ${r.batch.map((b) => b.unit).join(', ')}`);
  if (r.failed.length > 0) lines.push(`  Failed:      ${r.failed.join(', ')}`);
  if (r.message !== '') lines.push(`  Message:     ${messageOf(r)}`);
  return `${lines.join('\n')}\n`;
}

function progressText(s: RolloutStatus): string {
  return `${s.updated}/${s.total} updated, ${s.inProgress} in progress, ${s.pending} pending, ${s.failed} failed`;
}

/** A rollout that will not move without an operator, or is done. */
function isSettled(s: RolloutStatus): boolean {
  const phase = s.rollout?.phase ?? '';
  return phase === 'completed' || phase === 'rolled-back' || phase === 'paused';
}

/**
 * Waits for every rollout to settle, printing a progress line whenever one moves. Exit 0
 * when each ended as asked (completed; rolled-back for a rollback), 1 otherwise.
 */
async function follow(
  api: ApiClient,
  io: CliIo,
  globals: GlobalOptions,
  started: readonly RolloutStatus[],
  limitMs: number | undefined,
  rollingBack: boolean,
): Promise<number> {
  const json = globals.output === 'json';
  const latest = [...started];
  const deadline = limitMs === undefined ? 0 : Date.now() + limitMs;
  const shown = new Map<string, string>();
  while (limitMs !== undefined && !latest.every(isSettled)) {
    if (io.signal?.aborted === true || Date.now() >= deadline) break;
    await sleep(POLL_MS);
    for (const [i, s] of latest.entries()) {
      const name = s.rollout?.unit ?? '';
      if (isSettled(s) || name === '') continue;
      const now = await api.getRollout(name);
      latest[i] = now;
      const message = messageOf(now.rollout);
      const line = `${name}: ${now.rollout?.phase ?? '?'}, ${progressText(now)}${message ? ` (${message})` : ''}`;
      if (!json && shown.get(name) !== line) io.stdout(`${line}\n`);
      shown.set(name, line);
    }
  }
  if (json)
    printJson(
      io,
      latest.map((s) => RolloutStatus.toJSON(s)),
    );
  if (limitMs === undefined) return EXIT_OK;
  let ok = true;
  for (const s of latest) {
    const r = s.rollout;
    const want = rollingBack ? 'rolled-back' : 'completed';
    // A rollback of a rollback ends "completed": it went back to the newer file.
    const done = r?.phase === want || (rollingBack && r?.phase === 'completed' && !r.rollback);
    if (done) continue;
    ok = false;
    const why = !isSettled(s)
      ? `still ${r?.phase ?? 'running'} when the wait ended; follow it with flotctl rollout status ${r?.unit ?? ''}`
      : r?.phase === 'rolled-back'
        ? `failed and was rolled back: ${messageOf(r)}`
        : `${r?.phase ?? '?'}: ${messageOf(r)}`;
    io.stderr(`${r?.unit ?? '?'}: rollout ${why}\n`);
  }
  return ok ? EXIT_OK : EXIT_FAILURE;
}
