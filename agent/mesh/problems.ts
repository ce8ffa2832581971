/**
 * The published ports a data plane cannot serve, kept per route and reported when the set
 * changes: the same bookkeeping for every data plane, so `flotctl list-machines` reads alike
 * whichever one runs. A new problem is logged once (not at every retry).
 */
import type { Logger } from 'pino';
import type { MeshProblem } from './data-plane.js';

/** What a data plane's route holds of its problem. */
export interface ProblemRoute {
  readonly service: string;
  readonly port: number;
  problem: MeshProblem | undefined;
}

export class MeshProblems {
  private last: string;

  /**
   * @param routes the data plane's routes, read at each report
   * @param initial what counts as already reported: `'[]'` when an empty list must not be
   *   sent first (the record starts without problems), `''` to send the first list whatever it is
   */
  constructor(
    private readonly routes: () => Iterable<ProblemRoute>,
    private readonly log: Logger,
    private readonly retryMs: number,
    private readonly onProblems: ((problems: readonly MeshProblem[]) => void) | undefined,
    initial: '' | '[]',
  ) {
    this.last = initial;
  }

  /** Published ports this machine could not listen on, by port. */
  list(): MeshProblem[] {
    const out: MeshProblem[] = [];
    for (const route of this.routes()) if (route.problem) out.push(route.problem);
    return out.sort((a, b) => a.port - b.port);
  }

  /** Sets (or clears, with `undefined`) a route's problem and reports the set if it changed. */
  set(route: ProblemRoute, error: string | undefined): void {
    const before = route.problem?.error;
    route.problem =
      error === undefined ? undefined : { service: route.service, port: route.port, error };
    if (error !== undefined && error !== before) {
      this.log.warn(
        { service: route.service, port: route.port, error },
        `mesh: cannot listen on published port ${route.port}; trying again every ${this.retryMs / 1000}s`,
      );
    }
    this.publish();
  }

  /** Reports the problems if they changed since the last report. */
  publish(): void {
    const problems = this.list();
    const text = JSON.stringify(problems);
    if (text === this.last) return;
    this.last = text;
    this.log.debug({ problems }, 'mesh: problems');
    this.onProblems?.(problems);
  }
}
