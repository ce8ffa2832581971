/**
 * Property tests over random clusters, units and existing placements. The placement set a
 * plan leads to is checked by an independent, naive checker (planner-arbitraries.ts) written
 * rules, not by the planner's own checkers.
 */
import assert from 'node:assert/strict';
import test from 'ava';
import fc from 'fast-check';
import { applyPlan, plan, type Plan, type Snapshot } from '../../scheduler/planner/index.js';
import { snapshotArb, violations } from './planner-arbitraries.js';
import { run } from './planner-fixtures.js';

const isWork = (p: Plan): boolean => p.place.length > 0 || p.unplace.length > 0;

test('no decision violates a hard constraint or a capacity', (t) => {
  fc.assert(
    fc.property(snapshotArb, (snap) => {
      const o = run(snap);
      assert.deepEqual(violations(snap, o.after), [], JSON.stringify(o.plan));
    }),
    { numRuns: 400 },
  );
  t.pass();
});

test('with a move budget: moves stay within it and nothing is stopped twice', (t) => {
  fc.assert(
    fc.property(snapshotArb, fc.integer({ min: 0, max: 3 }), (snap, maxMoves) => {
      const o = run(snap, { maxMoves });
      const p = o.plan;
      assert.ok(p.moves <= maxMoves);
      const keys = p.unplace.map((d) => `${d.unit}@${d.machine}`);
      assert.equal(new Set(keys).size, keys.length);
      for (const d of p.unplace) {
        assert.ok(snap.placements.get(d.unit)?.includes(d.machine) ?? false);
      }
      const charged = p.unplace.filter((d) =>
        ['machine-lost', 'infeasible', 'replaced'].includes(d.why),
      );
      assert.ok(charged.length <= p.moves);
      for (const u of snap.units) {
        if (!u.fleet.global) assert.ok((o.after.get(u.name)?.length ?? 0) <= 1, u.name);
      }
      // Only placements the budget kept waiting may break a rule: whatever is broken after
      // the plan was already broken by the placements it kept, before anything was added.
      const kept = applyPlan(snap.placements, { ...p, place: [] });
      const before = new Set(violations(snap, kept).map((v) => `${v.machine}|${v.text}`));
      const added = violations(snap, o.after).filter((v) => !before.has(`${v.machine}|${v.text}`));
      assert.deepEqual(added, [], JSON.stringify(p));
    }),
    { numRuns: 300 },
  );
  t.pass();
});

test('the same snapshot and seed give identical plans, whatever the input order', (t) => {
  fc.assert(
    fc.property(snapshotArb, fc.integer(), (snap, seed) => {
      const shuffled: Snapshot = {
        machines: [...snap.machines].reverse(),
        units: [...snap.units].reverse(),
        placements: new Map([...snap.placements].reverse()),
      };
      assert.deepEqual(plan(snap, { seed }), plan(snap, { seed }));
      assert.deepEqual(plan(shuffled, { seed }), plan(snap, { seed }));
    }),
    { numRuns: 200 },
  );
  t.pass();
});

test('reconciling an already-reconciled snapshot yields no work', (t) => {
  fc.assert(
    fc.property(snapshotArb, (snap) => {
      const first = run(snap);
      const second = plan(first.next());
      assert.ok(!isWork(second), JSON.stringify({ first: first.plan, second }));
    }),
    { numRuns: 400 },
  );
  t.pass();
});

test('every unscheduled unit accounts for every machine exactly once', (t) => {
  fc.assert(
    fc.property(snapshotArb, (snap) => {
      const p = plan(snap);
      for (const [name, u] of p.unscheduled) {
        const counted = u.reasons.reduce((n, r) => n + r.machines, 0);
        assert.equal(counted, snap.machines.length, name);
        assert.equal(u.machines, snap.machines.length);
        assert.ok(u.summary.startsWith(`0/${snap.machines.length} machines`));
      }
      const names = new Set(snap.units.map((u) => u.name));
      for (const name of p.unscheduled.keys()) assert.ok(names.has(name));
    }),
    { numRuns: 200 },
  );
  t.pass();
});
