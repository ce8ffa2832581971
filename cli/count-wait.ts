/**
 * Waiting on a large scale by counts (more than twenty instances, as Swarm stops drawing a
 * line per task): every half second (every second past 10,000 instances), each scaled template's instances are counted by the
 * API (Units.SummarizeInstances) and one progress line shows them, instead of following
 * every instance's events. The cost is one small call per template and second, whatever the
 * count, where following 100,000 instances meant 300,000 events through the replica and a
 * view of each in flotctl.
 *
 * A template's wait ends:
 * - reached: every instance launched (its agent reports it active on its machine, on the
 *   current file) and every instance scaled away stopped;
 * - failed: an instance failed on its machine (reported after the scale, or one the scale did
 *   not start), with the first agents' messages;
 * - cannot be placed: reasons written after the scale (or held by instances the scale did not
 *   start), else standing reasons once a short grace has passed, as for one unit;
 * - instances destroyed meanwhile, or out of time (`--timeout`).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { status } from '@grpc/grpc-js';
import type {
  InstanceSummary,
  ScaleResponse,
  SummarizeInstancesRequest,
} from '../proto/flotilla/v1/units.js';
import { spanCount } from '../lib/number-ranges.js';
import type { ApiClient } from './client.js';
import { CliError, formatSeconds } from './errors.js';
import { failureText } from './unit-view.js';
import type { CliIo } from './verb.js';
import { Progress, STALE_REASON_GRACE_MS } from './wait.js';

/** A wait on more instances than this counts them. */
export const COUNT_WAIT_OVER = 20;
/** Between two counts, ms (fleetctl's interval between block attempts)... */
const POLL_MS = 500;
/** ...and past this many instances, twice that: each count visits every instance. */
const SLOWER_OVER = 10_000;
/** Failures a problem line names. */
const SHOWN_FAILURES = 3;

/** How one template's wait ended. */
export interface CountOutcome {
  readonly template: string;
  readonly reached: boolean;
  /** Why not, when not reached. */
  readonly problem?: string;
  /** The last count seen (undefined when none came). */
  readonly summary: InstanceSummary | undefined;
}

/** What to wait for: the scales' answers, each naming its instances as ranges. */
export interface CountWaitSpec {
  readonly scales: readonly ScaleResponse[];
  readonly limitMs: number;
  /** No lines and no progress (`-o json` prints its own document). */
  readonly quiet: boolean;
}

/** A template's wait while it is open. */
interface Open {
  readonly req: SummarizeInstancesRequest;
  /** Instances scaled away, for the line that says they stopped. */
  readonly destroyed: number;
  last: InstanceSummary | undefined;
}

/**
 * Counts each scaled template until its instances run and the ones scaled away stopped, or
 * a problem or the time limit ends its wait; prints one line per template as it ends
 * (stdout when reached, stderr when not).
 */
export async function waitForCounts(
  api: ApiClient,
  io: CliIo,
  spec: CountWaitSpec,
): Promise<CountOutcome[]> {
  const started = Date.now();
  const open = new Map<string, Open>();
  for (const res of spec.scales) {
    open.set(res.template, {
      req: {
        template: res.template,
        sinceRevision: res.revision,
        instances: res.instances,
        started: res.started,
        destroyed: res.destroyed,
      },
      destroyed: spanCount(res.destroyed),
      last: undefined,
    });
  }
  let asked = 0;
  for (const o of open.values()) asked += spanCount(o.req.instances) + o.destroyed;
  const pollMs = asked > SLOWER_OVER ? 2 * POLL_MS : POLL_MS;
  const outcomes = new Map<string, CountOutcome>();
  const progress = new Progress(io, spec.quiet);
  const settle = (template: string, outcome: Omit<CountOutcome, 'template' | 'summary'>): void => {
    const o = open.get(template);
    if (o === undefined) return;
    open.delete(template);
    outcomes.set(template, { template, summary: o.last, ...outcome });
    if (spec.quiet) return;
    if (outcome.reached) progress.line(reachedLine(template, o));
    else progress.error(outcome.problem ?? `${template} did not get there`);
  };
  try {
    while (open.size > 0 && io.signal?.aborted !== true) {
      const elapsedMs = Date.now() - started;
      for (const [template, o] of open) {
        try {
          o.last = await api.summarizeInstances(o.req);
        } catch (err) {
          // A replica that failed over or lags answers next time; a refusal will not change.
          if (err instanceof CliError && err.grpcCode === status.UNIMPLEMENTED) {
            throw new CliError(
              'refused',
              `${err.message} (it cannot count ${template}'s instances; the scale itself was written: follow it with flotctl list-units, or scale with --no-block)`,
              err.grpcCode,
            );
          }
          if (!(err instanceof CliError) || err.code === 'refused') throw err;
          if (Date.now() - started >= spec.limitMs) throw err;
          continue;
        }
        // Only the instances still scaled away but running need asking about again.
        o.req.destroyed = o.last.stoppingRanges;
        const verdict = judgeCounts(template, o.last, elapsedMs);
        if (verdict !== undefined) settle(template, verdict);
      }
      if (open.size === 0) break;
      if (Date.now() - started >= spec.limitMs) {
        for (const [template, o] of open) {
          const why = `timed out after ${formatSeconds(spec.limitMs)} waiting for ${template}: ${countsText(o)}`;
          settle(template, { reached: false, problem: why });
        }
        break;
      }
      progress.draw(
        `waiting ${Math.floor((Date.now() - started) / 1000)}s: ${[...open]
          .map(([template, o]) => `${template} ${countsText(o)}`)
          .join('; ')}`,
      );
      await sleep(pollMs, undefined, io.signal === undefined ? {} : { signal: io.signal }).catch(
        () => undefined,
      );
    }
  } finally {
    progress.clear();
  }
  for (const [template, o] of open) {
    settle(template, {
      reached: false,
      problem: `stopped waiting for ${template}: ${countsText(o)}`,
    });
  }
  return spec.scales.flatMap((r) => outcomes.get(r.template) ?? []);
}

/** Reached, failed, or still open (undefined), as {@link waitForCounts} describes. */
export function judgeCounts(
  template: string,
  s: InstanceSummary,
  elapsedMs: number,
): Omit<CountOutcome, 'template' | 'summary'> | undefined {
  const of = `${s.wanted === 1 ? '' : ' of'} ${s.wanted} instance${s.wanted === 1 ? '' : 's'} of ${template}`;
  if (s.failed > 0) {
    const named = s.failures
      .slice(0, SHOWN_FAILURES)
      .map((f) => `${f.name} on machine ${f.machine}: ${failureText(f)}`);
    const more = s.failed - named.length;
    const rest =
      more > 0 ? `; and ${more} more (flotctl list-units --fields unit,state,reason)` : '';
    return { reached: false, problem: `${s.failed}${of} failed: ${named.join('; ')}${rest}` };
  }
  if (s.pendingFinal > 0 || (s.pending > 0 && elapsedMs >= STALE_REASON_GRACE_MS)) {
    return { reached: false, problem: `${s.pending}${of} cannot be placed: ${s.pendingSummary}` };
  }
  if (s.missing > 0) {
    return { reached: false, problem: `${s.missing}${of} were destroyed while flotctl waited` };
  }
  if (s.launched === s.wanted && s.stopping === 0) return { reached: true };
  return undefined;
}

/** How a template's wait ended, for `-o json`. */
export function countOutcomeJson(o: CountOutcome): Record<string, unknown> {
  const s = o.summary;
  return {
    template: o.template,
    reached: o.reached,
    wanted: s?.wanted ?? 0,
    launched: s?.launched ?? 0,
    placed: s?.placed ?? 0,
    pending: s?.pending ?? 0,
    failed: s?.failed ?? 0,
    stopping: s?.stopping ?? 0,
    ...(o.problem === undefined ? {} : { problem: o.problem }),
  };
}

function reachedLine(template: string, o: Open): string {
  const n = o.last?.wanted ?? 0;
  const d = o.destroyed;
  if (n === 0) return `${template}: all ${d} instance${d === 1 ? '' : 's'} scaled away stopped`;
  const away = d === 0 ? '' : `; ${d} scaled away stopped`;
  return `${template}: ${n === 1 ? 'its 1 instance' : `all ${n} instances`} launched${away}`;
}

/** `48210 of 100000 launched, 51790 placed, 0 pending, 900 scaled away still running`. */
function countsText(o: Open): string {
  const s = o.last;
  if (s === undefined) return 'not counted yet';
  const parts = [`${s.launched} of ${s.wanted} launched`, `${s.placed} placed`];
  if (s.pending > 0) parts.push(`${s.pending} pending`);
  if (s.stopping > 0) parts.push(`${s.stopping} scaled away still running`);
  return parts.join(', ');
}
