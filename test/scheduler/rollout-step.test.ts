/**
 * The pure rollout step, run against a simulated cluster: instances restart when their record
 * changes and come up (or not) a few ticks later. Safety properties: a batch never holds more
 * than `parallelism` launched instances, never more than that are off their old version at
 * once, and a rollout ends with every instance on the target (or, rolled back, the source).
 */
import test from 'ava';
import fc from 'fast-check';
import type { Rollout } from '../../proto/flotilla/v1/records.js';
import {
  judgeStep,
  stepRollout,
  type InstanceLook,
  type PendingScan,
} from '../../scheduler/rollouts/step.js';

interface SimInstance {
  hash: string;
  launched: boolean;
  /** The hash it runs, and since which tick. */
  running: string;
  upAt: number;
}

function rollout(over: Partial<Rollout> = {}): Rollout {
  return {
    unit: 'web@.service',
    fromHash: 'old',
    fromFile: 'old file',
    toHash: 'new',
    toFile: 'new file',
    parallelism: 1,
    delayMs: 0n,
    monitorMs: 1_000n,
    failureAction: 'pause',
    order: 'stop-first',
    phase: 'running',
    rollback: false,
    batch: [],
    failed: [],
    message: '',
    startedAt: 0n,
    updatedAt: 0n,
    nextBatchAt: 0n,
    total: 0,
    cursor: '',
    healthyDeadlineMs: 0n,
    ...over,
  };
}

/** Runs a rollout to its end; `bad` hashes never come up healthy. */
function simulate(
  count: number,
  start: Rollout,
  opts: { bootTicks: number; bad?: string; idle?: number },
) {
  const names = Array.from(
    { length: count },
    (_, i) => `web@${String(i).padStart(3, '0')}.service`,
  );
  const sim = new Map<string, SimInstance>(
    names.map((n, i) => [
      n,
      { hash: 'old', launched: i >= (opts.idle ?? 0), running: 'old', upAt: -1_000 },
    ]),
  );
  let r = start;
  let mostOff = 0;
  let mostBatch = 0;
  const tickMs = 500;
  for (let tick = 0; tick < 2_000 && r.phase === 'running'; tick++) {
    const now = tick * tickMs;
    // Agents: a changed record restarts the instance, up bootTicks later.
    for (const s of sim.values()) {
      if (s.running !== s.hash) {
        s.running = s.hash;
        s.upAt = tick + opts.bootTicks;
      }
    }
    const look = (name: string): InstanceLook | undefined => {
      const s = sim.get(name);
      if (s === undefined) return undefined;
      const up = tick >= s.upAt;
      const healthy = s.running !== opts.bad;
      return {
        hash: s.hash,
        launched: s.launched,
        state: {
          hash: s.running,
          activeState: up ? 'active' : 'activating',
          subState: up ? 'running' : 'start',
          health: !up ? 'starting' : healthy ? 'healthy' : 'unhealthy',
          message: '',
        },
      };
    };
    const pending = (hash: string, cursor: string, limit: number): PendingScan => {
      const after = names.filter((n) => n > cursor && sim.get(n)?.hash !== hash);
      const before = names.filter((n) => n <= cursor && sim.get(n)?.hash !== hash);
      const all = [...after, ...before];
      return { names: all.slice(0, limit), cursor, exhausted: all.length === 0 };
    };
    const res = stepRollout({ rollout: r, now, look, pending });
    if (res.next !== undefined) {
      for (const n of res.rewrite) {
        const s = sim.get(n);
        if (s !== undefined) s.hash = res.next.toHash;
      }
      r = res.next;
    }
    const off = [...sim.values()].filter(
      (s) => s.launched && (tick < s.upAt || s.running === opts.bad),
    ).length;
    mostOff = Math.max(mostOff, off);
    mostBatch = Math.max(mostBatch, r.batch.length);
  }
  return { r, sim, mostOff, mostBatch };
}

test('a rollout updates every instance, never more than parallelism at once', (t) => {
  t.notThrows(() =>
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 30 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 0, max: 4 }),
        fc.integer({ min: 0, max: 5 }),
        (count, parallelism, bootTicks, idle) => {
          const { r, sim, mostOff, mostBatch } = simulate(count, rollout({ parallelism }), {
            bootTicks,
            idle,
          });
          return (
            r.phase === 'completed' &&
            [...sim.values()].every((s) => s.hash === 'new') &&
            mostBatch <= parallelism &&
            mostOff <= parallelism
          );
        },
      ),
    ),
  );
});

test('a failing new version pauses after the first batch', (t) => {
  const { r, sim } = simulate(6, rollout({ parallelism: 2 }), { bootTicks: 1, bad: 'new' });
  t.is(r.phase, 'paused');
  t.deepEqual(r.failed, ['web@000.service', 'web@001.service']);
  t.is([...sim.values()].filter((s) => s.hash === 'new').length, 2, 'only the first batch');
  t.regex(r.message, /web@000\.service failed: unhealthy/);
});

test('with failure action rollback every instance returns to the old version', (t) => {
  const { r, sim } = simulate(6, rollout({ parallelism: 2, failureAction: 'rollback' }), {
    bootTicks: 1,
    bad: 'new',
  });
  t.is(r.phase, 'rolled-back');
  t.true(r.rollback);
  t.is(r.toHash, 'old');
  t.true([...sim.values()].every((s) => s.hash === 'old' && s.running === 'old'));
});

test('an instance counts as done only after monitor of continuous health', (t) => {
  const r = rollout({ monitorMs: 10_000n });
  const step = { unit: 'web@1.service', startedAt: 0n, healthySince: 0n };
  const up: InstanceLook = {
    hash: 'new',
    launched: true,
    state: {
      hash: 'new',
      activeState: 'active',
      subState: 'running',
      health: 'healthy',
      message: '',
    },
  };
  t.deepEqual(judgeStep(step, up, r, 5_000), { kind: 'waiting', healthySince: 5_000n });
  t.deepEqual(judgeStep({ ...step, healthySince: 5_000n }, up, r, 14_999), {
    kind: 'waiting',
    healthySince: 5_000n,
  });
  t.deepEqual(judgeStep({ ...step, healthySince: 5_000n }, up, r, 15_000), { kind: 'done' });
  const old = { ...up, state: { ...up.state!, hash: 'old' } };
  t.deepEqual(judgeStep({ ...step, healthySince: 5_000n }, old, r, 15_000), {
    kind: 'waiting',
    healthySince: 0n,
  });
  const crashed = {
    ...up,
    state: {
      ...up.state!,
      activeState: 'activating',
      subState: 'auto-restart',
      message: 'exited with status 2',
    },
  };
  t.like(judgeStep(step, crashed, r, 1_000), { kind: 'failed', why: 'exited with status 2' });
  t.like(judgeStep(step, { hash: 'new', launched: true }, r, 400_000), { kind: 'failed' });
  t.like(judgeStep(step, { ...up, unscheduled: '0/3 machines: 3 lack memory' }, r, 1_000), {
    kind: 'failed',
  });
});

test("an instance not up within the rollout's healthy deadline (plus monitor) fails, saying how long it had", (t) => {
  const step = { unit: 'web@1.service', startedAt: 0n, healthySince: 0n };
  const starting: InstanceLook = {
    hash: 'new',
    launched: true,
    state: { hash: 'new', activeState: 'activating', subState: 'start', health: '', message: '' },
  };
  const short = rollout({ healthyDeadlineMs: 30_000n, monitorMs: 1_000n });
  t.deepEqual(judgeStep(step, starting, short, 31_000), { kind: 'waiting', healthySince: 0n });
  const late = judgeStep(step, starting, short, 31_001);
  t.is(late.kind, 'failed');
  t.regex(
    late.kind === 'failed' ? late.why : '',
    /^not active and healthy within 30s \(activating\/start\); .*--healthy-deadline/,
  );
  const long = rollout({ healthyDeadlineMs: 600_000n, monitorMs: 1_000n });
  t.deepEqual(judgeStep(step, starting, long, 400_000), { kind: 'waiting', healthySince: 0n });
  t.is(judgeStep(step, starting, long, 601_001).kind, 'failed');
  const older = rollout({ healthyDeadlineMs: 0n, monitorMs: 1_000n });
  t.deepEqual(judgeStep(step, starting, older, 301_000), { kind: 'waiting', healthySince: 0n });
  t.is(judgeStep(step, starting, older, 301_001).kind, 'failed', 'a record without one: 5m');
});
