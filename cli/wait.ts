/**
 * Waiting until the cluster reaches what a verb asked for (load, start, stop, unload, destroy,
 * scale). The units are read once (ListUnits, which says at which revision), then followed
 * on Events.Watch from that revision + 1, so no change between the read, the write and the
 * watch is missed. Waiting ends, each unit on its own:
 * - reached: `Unit web@1.service launched on 1a2b3c4d.../10.0.0.1` (launched: its agent
 *   reports it active, so a unit that fails at once is not reported launched);
 * - cannot be placed: the leader's summary (`0/3 machines: ...`), at once when the leader
 *   wrote it after our write, else after a short grace (the leader rewrites reasons only when
 *   they change, so an older record may still be the answer);
 * - failed on its machine (a state reported after our write, or before it when the write did
 *   not change the unit), with the agent's message;
 * - out of time: `--timeout` (default 60s) or fleetctl's `--block-attempts N` (N x 500 ms).
 * On a terminal a progress line shows what is still pending.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { ApiClient } from './client.js';
import { parseDurationMs } from '../daemon/command-line.js';
import { CliError, formatSeconds } from './errors.js';
import { machineLegend, type MachineAddresses } from './table.js';
import { failureText, UnitView, type Target } from './unit-view.js';
import { UsageError, type CliIo } from './verb.js';

/** The flags of every waiting verb, for parseArgs. */
export const WAIT_FLAGS = {
  'no-block': { type: 'boolean' },
  'block-attempts': { type: 'string' },
  timeout: { type: 'string' },
} as const;

/** Help lines for {@link WAIT_FLAGS}. */
export const WAIT_HELP = `  --no-block            do not wait for the cluster to get there
  --timeout DUR         give up waiting after this long (default 60s)
  --block-attempts N    fleetctl's limit: give up after N checks 500 ms apart
`;

/** Default of `--timeout`. */
export const DEFAULT_WAIT_MS = 60_000;
/** fleetctl's interval between two block attempts. */
const ATTEMPT_MS = 500;
/** How long a reason read before our write may stand before it counts as the answer. */
export const STALE_REASON_GRACE_MS = 2_000;

/** Whether and how long to wait. */
export interface WaitOptions {
  readonly block: boolean;
  readonly limitMs: number;
}

/**
 * Reads {@link WAIT_FLAGS} from parseArgs values (`--timeout` defaulting to `defaultMs`); bad
 * values are usage errors.
 */
export function parseWaitOptions(
  values: {
    'no-block'?: boolean | undefined;
    'block-attempts'?: string | undefined;
    timeout?: string | undefined;
  },
  defaultMs = DEFAULT_WAIT_MS,
): WaitOptions {
  let limitMs: number | undefined;
  if (values.timeout !== undefined) {
    const ms = parseDurationMs(values.timeout);
    if (ms === undefined || ms <= 0) {
      throw new UsageError(`--timeout=${values.timeout}: expected a positive duration such as 60s`);
    }
    limitMs = ms;
  }
  if (values['block-attempts'] !== undefined) {
    const n = Number(values['block-attempts']);
    if (!Number.isInteger(n) || n < 0) {
      throw new UsageError(`--block-attempts=${values['block-attempts']}: expected a whole number`);
    }
    if (n > 0) limitMs = Math.min(limitMs ?? Infinity, n * ATTEMPT_MS);
  }
  return { block: values['no-block'] !== true, limitMs: limitMs ?? defaultMs };
}

/** Views of `names` read from the API, each with the revision it was read at. */
export async function readViews(
  api: ApiClient,
  names: readonly string[],
): Promise<Map<string, UnitView>> {
  const views = new Map<string, UnitView>();
  for (const [name, { status, revision }] of await api.unitsNamed(names)) {
    views.set(name, UnitView.fromStatus(name, status, revision));
  }
  return views;
}

/** How one unit's wait ended. */
export interface WaitOutcome {
  readonly name: string;
  readonly target: Target;
  readonly reached: boolean;
  /** Why not, when not reached. */
  readonly problem?: string;
  readonly view: UnitView;
}

/** How a waited-on unit ended, for `-o json`. */
export function outcomeJson(o: WaitOutcome): Record<string, unknown> {
  return {
    name: o.name,
    target: o.target,
    reached: o.reached,
    currentState: o.view.unit === undefined ? 'destroyed' : o.view.currentState,
    machine: o.view.placement?.machine ?? '',
    ...(o.problem === undefined ? {} : { problem: o.problem }),
  };
}

/** What to wait for. */
export interface WaitSpec {
  /** The units, read at or before the write (see {@link readViews}). */
  readonly views: ReadonlyMap<string, UnitView>;
  readonly targets: ReadonlyMap<string, Target>;
  /** Revision of the write waited on: reasons and states newer than it are fresh. */
  readonly writeRevision: bigint;
  /**
   * Units the write did not change: nothing new is coming for them, so a failure or pending
   * reason they show already is the answer.
   */
  readonly unchanged?: ReadonlySet<string>;
  readonly limitMs: number;
  /** No lines and no progress (`-o json` prints its own document). */
  readonly quiet: boolean;
}

/**
 * Follows the units until each reached its target, failed, or time ran out; prints one line
 * per unit as it settles (stdout when reached, stderr when not).
 */
export async function waitForTargets(
  api: ApiClient,
  io: CliIo,
  spec: WaitSpec,
): Promise<WaitOutcome[]> {
  const { views, targets, writeRevision } = spec;
  const unchanged = spec.unchanged ?? new Set<string>();
  const started = Date.now();
  const outcomes = new Map<string, WaitOutcome>();
  const pending = new Set(targets.keys());
  const addresses = await api.addresses();
  const progress = new Progress(io, spec.quiet);
  const settle = (name: string, outcome: Omit<WaitOutcome, 'name' | 'target' | 'view'>): void => {
    const view = views.get(name);
    const target = targets.get(name);
    if (view === undefined || target === undefined || !pending.has(name)) return;
    pending.delete(name);
    outcomes.set(name, { name, target, view, ...outcome });
    if (spec.quiet) return;
    if (outcome.reached) progress.line(reachedLine(view, target, addresses));
    else progress.error(outcome.problem ?? `${name} did not get ${target}`);
  };
  const check = (name: string): void => {
    const view = views.get(name);
    const target = targets.get(name);
    if (view === undefined || target === undefined) return;
    const known = unchanged.has(name);
    const verdict = judge(view, target, { writeRevision, known, elapsedMs: Date.now() - started });
    if (verdict !== undefined) settle(name, verdict);
  };
  for (const name of targets.keys()) check(name);

  const stop = new AbortController();
  const onUserAbort = (): void => stop.abort();
  io.signal?.addEventListener('abort', onUserAbort, { once: true });
  let timedOut = false;
  // Verdicts change with events, and with time only once: a pending reason older than the
  // write counts after STALE_REASON_GRACE_MS. So the clock re-judges every unit once, when
  // that grace ends, not on every tick (100,000 judgements four times a second).
  let graceOver = false;
  const ticker = setInterval(() => {
    if (!graceOver && Date.now() - started >= STALE_REASON_GRACE_MS) {
      graceOver = true;
      for (const name of [...pending]) check(name);
    }
    if (Date.now() - started >= spec.limitMs) {
      timedOut = true;
      stop.abort();
    }
    if (pending.size === 0) stop.abort();
    progress.draw(pendingText(pending, views, addresses, Date.now() - started));
  }, 250);
  try {
    let from = minRevision(views) + 1n;
    // A template's shared pending record speaks for its numbered instances: its events go
    // to every view it may list.
    const byTemplate = new Map<string, UnitView[]>();
    for (const name of targets.keys()) {
      const view = views.get(name);
      if (view?.template === undefined) continue;
      const list = byTemplate.get(view.template);
      if (list === undefined) byTemplate.set(view.template, [view]);
      else list.push(view);
    }
    const names = [...targets.keys(), ...byTemplate.keys()];
    while (pending.size > 0 && !stop.signal.aborted) {
      try {
        const req = {
          fromRevision: from,
          unitGlob: watchGlob(names),
          machine: '',
          withFiles: false,
        };
        for await (const ev of api.watch(req, { follow: true, signal: stop.signal })) {
          from = ev.revision + 1n;
          if (views.get(ev.name)?.apply(ev) === true) check(ev.name);
          if (ev.kind === 'unscheduled') {
            for (const view of byTemplate.get(ev.name) ?? []) if (view.apply(ev)) check(view.name);
          }
          if (pending.size === 0) break;
        }
      } catch (err) {
        if (!(err instanceof CliError) || Date.now() - started >= spec.limitMs) throw err;
        if (err.code === 'refused') throw err;
        // The stream broke: resume from the last revision seen, after a pause that ends early
        // (rejecting with an AbortError, which ends the loop) when the wait is over.
        await sleep(500, undefined, { signal: stop.signal }).catch(() => undefined);
      }
    }
  } finally {
    clearInterval(ticker);
    io.signal?.removeEventListener('abort', onUserAbort);
    progress.clear();
  }
  for (const name of [...pending]) {
    const view = views.get(name);
    const target = targets.get(name) ?? 'launched';
    const now = view?.describe(addresses) ?? 'unknown';
    const why = timedOut
      ? `timed out after ${formatSeconds(spec.limitMs)} waiting for ${name} to be ${targetWord(target)} (it is ${now})`
      : `stopped waiting for ${name} to be ${targetWord(target)} (it is ${now})`;
    settle(name, { reached: false, problem: why });
  }
  return [...targets.keys()].flatMap((n) => outcomes.get(n) ?? []);
}

/**
 * Reached, failed, or still open (undefined). `known`: the write did not change the unit, so
 * what it shows is final; else only reasons and states written after the write count at once.
 */
function judge(
  view: UnitView,
  target: Target,
  at: { writeRevision: bigint; known: boolean; elapsedMs: number },
): Omit<WaitOutcome, 'name' | 'target' | 'view'> | undefined {
  if (view.reached(target)) return { reached: true };
  if (target === 'gone') return undefined;
  if (view.destroyed) {
    return { reached: false, problem: `${view.name} was destroyed while flotctl waited for it` };
  }
  if (view.unit === undefined) return undefined; // created by the write, not seen yet
  const wantsPlacement = target === 'launched' || target === 'loaded';
  if (wantsPlacement && view.placements.size === 0 && view.unscheduled !== undefined) {
    const fresh = view.unscheduledRevision > at.writeRevision;
    if (fresh || at.known || at.elapsedMs >= STALE_REASON_GRACE_MS) {
      return {
        reached: false,
        problem: `${view.name} cannot be placed: ${view.unscheduled.summary}`,
      };
    }
  }
  const freshState = view.stateRevision > at.writeRevision;
  if (target === 'launched' && view.failedOnPlacement && (freshState || at.known)) {
    const where = view.placement?.machine ?? '';
    const again = at.known ? ` (flotctl stop ${view.name}, then start it, runs it again)` : '';
    return {
      reached: false,
      problem: `${view.name} failed on machine ${where}: ${failureText(view.state)}${again}`,
    };
  }
  return undefined;
}

function reachedLine(view: UnitView, target: Target, addresses: MachineAddresses): string {
  if (target === 'gone') return `Unit ${view.name} destroyed`;
  const machine = view.placement?.machine ?? '';
  const where = machine === '' ? '' : ` on ${machineLegend(machine, addresses, false)}`;
  return `Unit ${view.name} ${view.currentState}${where}`;
}

function targetWord(target: Target): string {
  return target === 'gone' ? 'destroyed' : target;
}

function pendingText(
  names: ReadonlySet<string>,
  views: ReadonlyMap<string, UnitView>,
  addresses: MachineAddresses,
  elapsedMs: number,
): string {
  const first = names.values().next().value;
  if (first === undefined) return '';
  const about = views.get(first)?.describe(addresses) ?? '';
  const more = names.size > 1 ? ` (+${names.size - 1} more)` : '';
  return `waiting ${Math.floor(elapsedMs / 1000)}s: ${first} ${about}${more}`;
}

function minRevision(views: ReadonlyMap<string, UnitView>): bigint {
  let min: bigint | undefined;
  for (const v of views.values()) if (min === undefined || v.since < min) min = v.since;
  return min ?? 0n;
}

/** The one progress line on a terminal; lines printed through it clear it first. */
export class Progress {
  private shown = false;
  private readonly enabled: boolean;

  constructor(
    private readonly io: CliIo,
    quiet: boolean,
  ) {
    this.enabled = io.isTty === true && !quiet;
  }

  draw(text: string): void {
    if (!this.enabled) return;
    this.io.stdout(`\r\x1b[2K${text.slice(0, 120)}`);
    this.shown = text !== '';
  }

  line(text: string): void {
    this.clear();
    this.io.stdout(`${text}\n`);
  }

  error(text: string): void {
    this.clear();
    this.io.stderr(`${text}\n`);
  }

  clear(): void {
    if (!this.shown) return;
    this.io.stdout('\r\x1b[2K');
    this.shown = false;
  }
}

/**
 * The narrowest glob the wait can watch with: the one name, or the names' common prefix and
 * `*` (`team-a-web@1.service team-a-web@2.service` -> `team-a-web@*`), so the stream carries
 * only what may matter; '' (every unit) when the names share no prefix. Unit names hold no
 * glob characters.
 */
export function watchGlob(names: readonly string[]): string {
  const [first, ...others] = names;
  if (first === undefined) return '';
  if (others.length === 0) return first;
  let n = first.length;
  for (const name of others) {
    let i = 0;
    while (i < n && i < name.length && name[i] === first[i]) i++;
    n = i;
  }
  return n === 0 ? '' : `${first.slice(0, n)}*`;
}
