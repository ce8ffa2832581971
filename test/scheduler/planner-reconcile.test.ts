/**
 * Reconciliation: desired vs current -> place / unplace / move, rate limited by maxMoves,
 * stable (feasible placements stay), level-triggered (a second pass has nothing to do).
 */
import test from 'ava';
import { converge, machine, machines, run, snapshot, unit } from './planner-fixtures.js';

test('a placement whose unit is inactive or destroyed is unplaced', (t) => {
  const o = run(
    snapshot(machines(2), [unit('a.service')], { 'a.service': 'm1', 'gone.service': 'm2' }),
  );
  t.deepEqual(o.plan.unplace, [
    {
      unit: 'gone.service',
      machine: 'm2',
      why: 'inactive',
      detail: 'the unit is inactive or destroyed',
    },
  ]);
  t.deepEqual(o.plan.place, []);
  t.is(o.plan.moves, 0);
});

test('a lost machine: its units move, and nothing else does', (t) => {
  const units = ['a', 'b', 'c', 'd', 'e', 'f'].map((n) => unit(`${n}.service`));
  const placements = {
    'a.service': 'm1',
    'b.service': 'm2',
    'c.service': 'm3',
    'd.service': 'gone',
    'e.service': 'gone',
    'f.service': 'm1',
  };
  const o = run(snapshot(machines(3), units, placements));
  t.deepEqual(
    o.plan.unplace.map((d) => [d.unit, d.machine, d.why]),
    [
      ['d.service', 'gone', 'machine-lost'],
      ['e.service', 'gone', 'machine-lost'],
    ],
  );
  t.deepEqual(
    o.plan.place.map((p) => p.unit),
    ['d.service', 'e.service'],
  );
  t.is(o.where('d.service'), 'm2');
  t.is(o.where('e.service'), 'm3');
  for (const n of ['a', 'b', 'c', 'f']) {
    t.is(o.where(`${n}.service`), placements[`${n}.service` as keyof typeof placements]);
  }
  t.is(o.plan.moves, 2);
});

test('a drained machine is emptied at most maxMoves units per pass', (t) => {
  const units = Array.from({ length: 7 }, (_, i) => unit(`u${i}.service`));
  const placements = Object.fromEntries(units.map((u) => [u.name, 'm1']));
  const ms = [machine('m1', { drained: true }), machine('m2'), machine('m3')];
  const passes = converge(snapshot(ms, units, placements), { maxMoves: 3 });
  const moved = passes.map((p) => p.plan.unplace.length);
  t.deepEqual(moved, [3, 3, 1, 0]);
  for (const p of passes) t.true(p.plan.moves <= 3);
  t.is(passes[0]?.plan.deferred.length, 4);
  t.is(passes[0]?.plan.deferred[0]?.detail, 'machine is drained');
  const last = passes.at(-1);
  for (const u of units) t.not(last?.where(u.name), 'm1');
});

test('lost placements beyond maxMoves wait, with their followers, for a later pass', (t) => {
  const units = [
    unit('a.service'),
    unit('a-side.service', { machineOf: ['a.service'] }),
    unit('b.service'),
  ];
  const placements = { 'a.service': 'gone', 'a-side.service': 'gone', 'b.service': 'gone' };
  const first = run(snapshot(machines(2), units, placements), { maxMoves: 1 });
  // a moves (its follower with it, free), b waits.
  t.is(first.plan.moves, 1);
  t.is(first.where('a.service'), first.where('a-side.service'));
  t.not(first.where('a.service'), 'gone');
  t.is(first.where('b.service'), 'gone');
  t.deepEqual(
    first.plan.deferred.map((d) => d.unit),
    ['b.service'],
  );
  t.false(first.plan.unscheduled.has('b.service'));
  const second = run(first.next(), { maxMoves: 1 });
  t.not(second.where('b.service'), 'gone');
});

test('metadata that stops matching moves the unit', (t) => {
  const ms = [machine('m1', { meta: { disk: 'hdd' } }), machine('m2', { meta: { disk: 'ssd' } })];
  const o = run(
    snapshot(ms, [unit('db.service', { metadata: { disk: ['ssd'] } })], { 'db.service': 'm1' }),
  );
  t.is(o.where('db.service'), 'm2');
  t.deepEqual(o.plan.unplace[0], {
    unit: 'db.service',
    machine: 'm1',
    why: 'infeasible',
    detail: 'machine lacks disk=ssd',
  });
});

test('a feasible placement is never moved to rebalance', (t) => {
  const units = Array.from({ length: 6 }, (_, i) => unit(`u${i}.service`));
  const placements = Object.fromEntries(units.map((u) => [u.name, 'm1']));
  const o = run(snapshot(machines(4), units, placements));
  t.deepEqual(o.plan.place, []);
  t.deepEqual(o.plan.unplace, []);
});

test('a non-global unit placed twice keeps one placement', (t) => {
  const o = run(snapshot(machines(3), [unit('a.service')], { 'a.service': ['m3', 'm1', 'gone'] }));
  t.deepEqual(o.after.get('a.service'), ['m1']);
  t.deepEqual(
    o.plan.unplace.map((d) => [d.machine, d.why]),
    [
      ['gone', 'duplicate'],
      ['m3', 'duplicate'],
    ],
  );
});

test('Global: machines that join get one, machines that stop matching lose theirs', (t) => {
  const g = unit('mon.service', { global: true, metadata: { role: ['worker'] } });
  const ms = [
    machine('m1', { meta: { role: 'worker' } }),
    machine('m2', { meta: { role: 'db' } }),
    machine('m3', { meta: { role: 'worker' } }),
    machine('m4', { meta: { role: 'worker' } }),
  ];
  // m2 stopped being a worker, m4 joined, m5 was lost.
  const o = run(snapshot(ms, [g], { 'mon.service': ['m1', 'm2', 'm3', 'm5'] }));
  t.deepEqual(o.after.get('mon.service'), ['m1', 'm3', 'm4']);
  t.deepEqual(
    o.plan.unplace.map((d) => [d.machine, d.why]),
    [
      ['m5', 'machine-lost'],
      ['m2', 'infeasible'],
    ],
  );
  t.deepEqual(o.plan.place, [{ unit: 'mon.service', machine: 'm4', displaces: [] }]);
});

test('MachineOf: a follower moves with its peer when the peer must move', (t) => {
  const ms = [machine('m1', { meta: { disk: 'hdd' } }), machine('m2', { meta: { disk: 'ssd' } })];
  const units = [
    unit('web@1.service', { metadata: { disk: ['ssd'] } }),
    unit('web-presence@1.service', { machineOf: ['web@1.service'] }),
  ];
  const o = run(snapshot(ms, units, { 'web@1.service': 'm1', 'web-presence@1.service': 'm1' }), {
    maxMoves: 1,
  });
  t.is(o.where('web@1.service'), 'm2');
  t.is(o.where('web-presence@1.service'), 'm2');
  t.is(o.plan.moves, 1);
  t.deepEqual(
    o.plan.unplace.map((d) => [d.unit, d.why]),
    [
      ['web@1.service', 'infeasible'],
      ['web-presence@1.service', 'peer-moved'],
    ],
  );
});

test('a new conflict moves the unit that no longer fits', (t) => {
  // Capacity shrank on m1: one of the two reservations must go, the other stays.
  const ms = [machine('m1', { memory: 1000 }), machine('m2', { memory: 1000 })];
  const units = [unit('a.service', { memory: 600 }), unit('b.service', { memory: 600 })];
  const o = run(snapshot(ms, units, { 'a.service': 'm1', 'b.service': 'm1' }));
  t.is(o.plan.unplace.length, 1);
  t.not(o.where('a.service'), o.where('b.service'));
});

test('reconciling an already reconciled snapshot yields no work', (t) => {
  const ms = machines(5, (i) => ({ meta: { zone: `z${i % 2}` }, memory: 4000 }));
  const units = [
    ...Array.from({ length: 8 }, (_, i) =>
      unit(`web@${i}.service`, { memory: 500, spreadBy: 'zone' }),
    ),
    unit('mon.service', { global: true }),
    unit('side.service', { machineOf: ['web@1.service'] }),
    unit('new.service', { replaces: ['web@2.service'], machineId: 'm3' }),
  ];
  const passes = converge(snapshot(ms, units));
  t.true(passes.length <= 2);
  const last = passes.at(-1);
  t.deepEqual(last?.plan.place, []);
  t.deepEqual(last?.plan.unplace, []);
});

test('Global: an instance waiting on a lost machine does not stop the others', (t) => {
  const g = unit('mon.service', { global: true });
  const o = run(snapshot(machines(2), [g], { 'mon.service': ['gone', 'm1'] }), { maxMoves: 0 });
  t.deepEqual(o.after.get('mon.service'), ['gone', 'm1', 'm2']);
  t.deepEqual(
    o.plan.deferred.map((d) => [d.machine, d.why]),
    [['gone', 'machine-lost']],
  );
});
