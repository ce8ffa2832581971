/**
 * Planner benchmark: seeded synthetic clusters of 100, 1,000 and 5,000 machines with 20 units
 * per machine, placed from scratch in one pass on one core. Also times the steady-state pass
 * (everything placed, nothing to do) and a pass after 1% of the machines are lost. Ends with
 * one JSON line for the 5,000-machine run:
 * `{"machines":5000,"units":100000,"placementsPerSec":N}`.
 *
 * Run with `npm run bench:planner` (build, then `node dist/bench/planner.js`).
 */
import { performance } from 'node:perf_hooks';
import { applyPlan, plan, type Plan, type Snapshot } from '../scheduler/planner/index.js';
import { makeWorkload } from './workload.js';

const SIZES = [100, 1000, 5000];
const SEED = 42;

interface Timed {
  readonly plan: Plan;
  readonly ms: number;
}

function timed(snapshot: Snapshot, maxMoves?: number): Timed {
  const start = performance.now();
  const p = plan(snapshot, maxMoves === undefined ? {} : { maxMoves });
  return { plan: p, ms: performance.now() - start };
}

/** The best of `runs` passes: the least disturbed by other work on a shared machine. */
function best(snapshot: Snapshot, runs: number, maxMoves?: number): Timed {
  let winner: Timed | undefined;
  for (let i = 0; i < runs; i++) {
    const t = timed(snapshot, maxMoves);
    if (winner === undefined || t.ms < winner.ms) winner = t;
  }
  return winner as Timed;
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

function main(): void {
  // Warm the JIT on a small cluster so the first size is not charged for compilation.
  plan(makeWorkload({ machines: 200, seed: SEED + 1 }).snapshot);
  let last = { machines: 0, units: 0, placementsPerSec: 0 };
  for (const size of SIZES) {
    const { snapshot, shape } = makeWorkload({ machines: size, seed: SEED });
    const cold = best(snapshot, size >= 5000 ? 3 : 5);
    const placed = cold.plan.place.length;
    const perSec = placed / (cold.ms / 1000);
    console.log(
      `${fmt(size)} machines, ${fmt(shape.units)} units + ${shape.globals} global: ` +
        `${fmt(placed)} placements in ${cold.ms.toFixed(0)} ms = ${fmt(perSec)} placements/s ` +
        `(${fmt(cold.plan.unscheduled.size)} unscheduled)`,
    );

    const placedSnap: Snapshot = { ...snapshot, placements: applyPlan(new Map(), cold.plan) };
    const steady = best(placedSnap, 3);
    console.log(
      `  steady state (recheck every placement, nothing to do): ${steady.ms.toFixed(0)} ms, ` +
        `${steady.plan.place.length + steady.plan.unplace.length} changes`,
    );

    const lostCount = Math.max(1, Math.floor(size / 100));
    const survivors = snapshot.machines.filter((_, i) => i % 100 !== 7 || i / 100 >= lostCount);
    const lostSnap: Snapshot = { ...placedSnap, machines: survivors };
    const lost = best(lostSnap, 3, 1_000_000);
    console.log(
      `  ${snapshot.machines.length - survivors.length} machines lost: ` +
        `${lost.plan.moves} moves in ${lost.ms.toFixed(0)} ms`,
    );
    last = { machines: size, units: shape.units, placementsPerSec: Math.round(perSec) };
  }
  console.log(JSON.stringify(last));
}

main();
