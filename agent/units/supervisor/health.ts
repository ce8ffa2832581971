/**
 * A unit's health check while its main process runs: `HealthCmd=` through `/bin/sh -c`
 * inside the unit's container (runc exec; for the process driver as the unit's user in its
 * directory) every `HealthInterval=`, killed at `HealthTimeout=`. The verdict follows podman:
 * `starting` until the first pass (failures inside `HealthStartPeriod=` do not count),
 * `healthy` after a pass, `unhealthy` after `HealthRetries=` failures in a row.
 *
 * `judgeCheck` is the pure half; `HealthMonitor` runs the checks and reports a change only
 * when the verdict or the failure count moves, so a healthy unit costs etcd nothing.
 */
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { HealthCheckResult } from '../../../proto/flotilla/v1/records.js';
import type { HealthCheck } from '../../../unit/model.js';
import type { CommandSpec, MainProcess, RuntimeDriver, UnitContext } from '../../runtime/driver.js';
import { describeError } from '../../runtime/errors.js';

/** The verdicts a state record carries; '' for a unit without a check. */
export type HealthVerdict = 'starting' | 'healthy' | 'unhealthy';

/** Checks kept in the state record. */
export const HEALTH_CHECKS_KEPT = 5;
/** Characters of output kept per check. */
export const HEALTH_OUTPUT_MAX = 256;
/** Bytes of a check's output read back (its tail): the rest is never looked at. */
const OUTPUT_READ_BYTES = 4096;

/** Where a check's verdict stands. */
export interface HealthStatus {
  readonly verdict: HealthVerdict;
  /** Failures in a row that counted. */
  readonly failures: number;
}

/**
 * The verdict after one check. `inStartPeriod`: the main process started less than
 * HealthStartPeriod= ago, so a failure does not count (a pass still ends the start period).
 */
export function judgeCheck(
  status: HealthStatus,
  passed: boolean,
  inStartPeriod: boolean,
  retries: number,
): HealthStatus {
  if (passed) return { verdict: 'healthy', failures: 0 };
  if (inStartPeriod && status.verdict === 'starting') return status;
  const failures = status.failures + 1;
  return { verdict: failures >= retries ? 'unhealthy' : status.verdict, failures };
}

/** The last non-empty line of `text`, cut to {@link HEALTH_OUTPUT_MAX} characters. */
export function lastLine(text: string): string {
  const lines = text.split('\n').map((l) => l.trim());
  const line = lines.filter((l) => l !== '').at(-1) ?? '';
  return line.length > HEALTH_OUTPUT_MAX ? `${line.slice(0, HEALTH_OUTPUT_MAX - 1)}…` : line;
}

/** What a monitor reports: the state record's health fields. */
export interface HealthReport {
  readonly health: HealthVerdict;
  readonly healthFailures: number;
  readonly healthChecks: HealthCheckResult[];
}

/** What a {@link HealthMonitor} needs. */
export interface HealthMonitorDeps {
  readonly check: HealthCheck;
  readonly driver: RuntimeDriver;
  readonly ctx: UnitContext;
  readonly main: MainProcess;
  /** The command to run, resolved like the unit's own (user, environment, directory). */
  readonly spec: CommandSpec;
  /** Unix ms when the main process started (the start period counts from it). */
  readonly startedAt: number;
  readonly now: () => number;
  readonly report: (r: HealthReport) => void;
  readonly note: (text: string) => void;
  /** Called once, when the unit first turns unhealthy. */
  readonly onUnhealthy: (why: string) => void;
}

/** Runs one unit's checks until {@link stop}. */
export class HealthMonitor {
  private readonly ctl = new AbortController();
  private status: HealthStatus = { verdict: 'starting', failures: 0 };
  private readonly checks: HealthCheckResult[] = [];
  private loop: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly deps: HealthMonitorDeps) {}

  start(previous?: readonly HealthCheckResult[]): void {
    if (previous !== undefined) this.checks.push(...previous.slice(-HEALTH_CHECKS_KEPT));
    this.deps.report(this.snapshot());
    this.loop = this.run().catch((err: unknown) => {
      this.deps.note(`health check loop failed: ${describeError(err)}`);
    });
  }

  /** Ends the checks (a running one is killed) and resolves when they have stopped. */
  async stop(): Promise<void> {
    this.ctl.abort();
    clearTimeout(this.timer);
    this.wake?.();
    await this.loop;
  }

  private snapshot(): HealthReport {
    return {
      health: this.status.verdict,
      healthFailures: this.status.failures,
      healthChecks: [...this.checks],
    };
  }

  private async run(): Promise<void> {
    const { check } = this.deps;
    // The first check comes one interval after the start, as podman's timer does.
    while (!this.ctl.signal.aborted) {
      await this.sleep(check.intervalMs);
      if (this.ctl.signal.aborted) return;
      const result = await this.once();
      if (this.ctl.signal.aborted) return;
      this.checks.push(result);
      if (this.checks.length > HEALTH_CHECKS_KEPT) this.checks.shift();
      const inStart = this.deps.now() - this.deps.startedAt < check.startPeriodMs;
      const before = this.status;
      this.status = judgeCheck(before, result.exitStatus === 0, inStart, check.retries);
      if (this.status.verdict !== before.verdict || this.status.failures !== before.failures) {
        this.deps.report(this.snapshot());
      }
      if (this.status.verdict !== before.verdict) {
        const detail = result.output !== '' ? `: ${result.output}` : '';
        this.deps.note(`health ${this.status.verdict}${detail}`);
        if (this.status.verdict === 'unhealthy') {
          const n = this.status.failures;
          const times = n === 1 ? 'once' : `${n} times in a row`;
          this.deps.onUnhealthy(
            `health check failed ${times} (last: exit ${result.exitStatus}${detail})`,
          );
        }
      }
    }
  }

  /** One check: its exit status, how long it took and its last line of output. */
  private async once(): Promise<HealthCheckResult> {
    const { driver, ctx, main, spec, check, now } = this.deps;
    const outPath = join(ctx.dir, 'health.out');
    const at = now();
    await rm(outPath, { force: true });
    let exitStatus = -1;
    let why = '';
    try {
      const exit = await driver.exec(ctx, spec, {
        timeoutMs: check.timeoutMs,
        main,
        signal: this.ctl.signal,
        output: { path: outPath, tag: '-health' },
      });
      const took = now() - at;
      if (took >= check.timeoutMs) why = `timed out after HealthTimeout=${check.timeoutMs} ms`;
      else exitStatus = exit.status;
    } catch (err) {
      why = describeError(err);
    }
    const output = why !== '' ? why : lastLine(await readTail(outPath));
    const durationMs = Math.min(now() - at, 2 ** 31 - 1);
    return { at: BigInt(at), exitStatus, output: lastLine(output), durationMs };
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.timer = setTimeout(resolve, ms);
    });
  }
}

/** The last {@link OUTPUT_READ_BYTES} of a file, '' when it is missing. */
async function readTail(path: string): Promise<string> {
  const file = await open(path, 'r').catch(() => undefined);
  if (file === undefined) return '';
  try {
    const { size } = await file.stat();
    const length = Math.min(size, OUTPUT_READ_BYTES);
    const buf = Buffer.alloc(length);
    const { bytesRead } = await file.read(buf, 0, length, size - length);
    return buf.subarray(0, bytesRead).toString('utf8');
  } finally {
    await file.close();
  }
}
