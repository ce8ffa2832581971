/**
 * Ranking: least-loaded first, ties by machine id; SpreadBy evenness before load; decisions
 * in one pass see each other; the reasons and summary users read.
 */
import test from 'ava';
import { machine, machines, run, snapshot, unit } from './planner-fixtures.js';

test('least-loaded: a unit goes to the machine with the fewest units', (t) => {
  const o = run(
    snapshot(
      machines(3),
      ['a', 'b', 'c', 'new'].map((n) => unit(`${n}.service`)),
      {
        'a.service': 'm1',
        'b.service': 'm2',
        'c.service': 'm1',
      },
    ),
  );
  t.is(o.where('new.service'), 'm3');
});

test('least-loaded: ties go to the lowest machine id', (t) => {
  const ms = [machine('zeta'), machine('alpha'), machine('mid')];
  t.is(run(snapshot(ms, [unit('a.service')])).where('a.service'), 'alpha');
});

test('decisions in one pass see each other: units fill machines evenly', (t) => {
  const units = Array.from({ length: 9 }, (_, i) => unit(`u${i}.service`));
  const o = run(snapshot(machines(3), units));
  const counts = new Map<string, number>();
  for (const u of units) {
    const m = o.where(u.name) ?? '';
    counts.set(m, (counts.get(m) ?? 0) + 1);
  }
  t.deepEqual([...counts.values()], [3, 3, 3]);
  // Ordered by name, machine by machine: u0 m1, u1 m2, u2 m3, u3 m1...
  t.is(o.where('u0.service'), 'm1');
  t.is(o.where('u1.service'), 'm2');
  t.is(o.where('u3.service'), 'm1');
});

test('decisions in one pass see each other: conflicts and reservations', (t) => {
  const units = [
    unit('a.service', { memory: 3000 }),
    unit('b.service', { memory: 3000, conflicts: ['c.service'] }),
    unit('c.service'),
  ];
  const ms = [machine('m1', { memory: 5000 }), machine('m2', { memory: 5000 })];
  const o = run(snapshot(ms, units));
  t.is(o.where('a.service'), 'm1');
  t.is(o.where('b.service'), 'm2');
  t.is(o.where('c.service'), 'm1');
});

test('SpreadBy: 6 instances over 3 zones land 2 per zone', (t) => {
  // Zone a has more machines and they are the lowest ids: least-loaded alone would
  // pile instances there. Spread ranks first.
  const ms = [
    machine('m1', { meta: { zone: 'a' } }),
    machine('m2', { meta: { zone: 'a' } }),
    machine('m3', { meta: { zone: 'a' } }),
    machine('m4', { meta: { zone: 'a' } }),
    machine('m5', { meta: { zone: 'b' } }),
    machine('m6', { meta: { zone: 'b' } }),
    machine('m7', { meta: { zone: 'c' } }),
  ];
  const units = [1, 2, 3, 4, 5, 6].map((i) => unit(`api@${i}.service`, { spreadBy: 'zone' }));
  const o = run(snapshot(ms, units, { 'busy.service': 'm7', 'busy2.service': 'm7' }));
  const zoneOf = new Map(ms.map((m) => [m.id, m.metadata.get('zone') ?? '']));
  const perZone = new Map<string, number>();
  for (const u of units) {
    const z = zoneOf.get(o.where(u.name) ?? '') ?? '?';
    perZone.set(z, (perZone.get(z) ?? 0) + 1);
  }
  t.deepEqual([...perZone.entries()].sort(), [
    ['a', 2],
    ['b', 2],
    ['c', 2],
  ]);
});

test('SpreadBy: counts instances already placed, and machines without the key come last', (t) => {
  const ms = [
    machine('m1', { meta: { zone: 'a' } }),
    machine('m2', { meta: { zone: 'b' } }),
    machine('m3'),
  ];
  const units = [1, 2, 3].map((i) => unit(`api@${i}.service`, { spreadBy: 'zone' }));
  const o = run(snapshot(ms, units, { 'api@1.service': 'm1' }));
  t.is(o.where('api@1.service'), 'm1');
  t.is(o.where('api@2.service'), 'm2');
  // Zones a and b hold one each; m3 has no zone, so it ranks last despite being empty.
  t.not(o.where('api@3.service'), 'm3');
});

test('reasons: each machine is counted once, under the first checker that rejects it', (t) => {
  const ms = [
    machine('m1', { meta: { region: 'us' }, drained: true }),
    machine('m2', { meta: { region: 'us' } }),
    machine('m3', { meta: { region: 'us' } }),
    machine('m4', { meta: { region: 'us' } }),
    machine('m5', { meta: { region: 'eu' } }),
  ];
  const units = [
    unit('web@1.service', { machineId: 'm2' }),
    unit('web@2.service', { machineId: 'm3' }),
    unit('web@3.service', { machineId: 'm4', conflicts: ['web@*.service'] }),
    unit('web@9.service', { conflicts: ['web@*.service'], metadata: { region: ['us'] } }),
  ];
  const o = run(snapshot(ms, units));
  const u = o.plan.unscheduled.get('web@9.service');
  t.is(u?.machines, 5);
  t.deepEqual(u?.reasons, [
    { reason: 'are drained', machines: 1 },
    { reason: 'lack region=us', machines: 1 },
    { reason: 'conflict with web@1.service', machines: 1 },
    { reason: 'conflict with web@2.service', machines: 1 },
    { reason: 'conflict with web@3.service', machines: 1 },
  ]);
  t.is(
    u?.summary,
    '0/5 machines: 1 is drained, 1 lacks region=us, 1 conflicts with web@1.service, ' +
      '1 conflicts with web@2.service, 1 conflicts with web@3.service',
  );
});

test('reasons: the summary orders reasons by machine count', (t) => {
  const ms = [
    machine('m1', { meta: { region: 'eu' } }),
    machine('m2', { meta: { region: 'eu' } }),
    machine('m3', { meta: { region: 'us' } }),
    machine('m4', { meta: { region: 'us' } }),
    machine('m5', { meta: { region: 'us' } }),
  ];
  const units = [
    unit('web@1.service', { global: true, metadata: { region: ['us'] } }),
    unit('web@2.service', { conflicts: ['web@*.service'], metadata: { region: ['us'] } }),
  ];
  const o = run(snapshot(ms, units));
  t.is(
    o.plan.unscheduled.get('web@2.service')?.summary,
    '0/5 machines: 3 conflict with web@1.service, 2 lack region=us',
  );
});

test('reasons: no machines at all', (t) => {
  const o = run(snapshot([], [unit('a.service')]));
  t.is(o.plan.unscheduled.get('a.service')?.summary, '0/0 machines: there are no machines');
});

test('the same snapshot and seed give the same plan', (t) => {
  const ms = machines(20, (i) => ({ meta: { zone: `z${i % 3}` }, memory: 1000 + (i % 4) * 500 }));
  const units = Array.from({ length: 60 }, (_, i) =>
    unit(`w@${i}.service`, {
      memory: 100 + (i % 7) * 50,
      spreadBy: 'zone',
      conflicts: i % 5 === 0 ? ['w@1*.service'] : [],
    }),
  );
  const a = run(snapshot(ms, units), { seed: 7 });
  const b = run(snapshot([...ms].reverse(), [...units].reverse()), { seed: 7 });
  t.deepEqual(a.plan.place, b.plan.place);
  t.deepEqual([...a.plan.unscheduled], [...b.plan.unscheduled]);
});

test('a full cluster: look-alike units all fail with the same reasons', (t) => {
  const units = Array.from({ length: 10 }, (_, i) => unit(`job${i}.service`, { cpu: 500 }));
  const o = run(
    snapshot(
      machines(3, () => ({ cpu: 1000 })),
      units,
    ),
  );
  t.is(o.plan.place.length, 6);
  t.is(o.plan.unscheduled.size, 4);
  for (const [name, u] of o.plan.unscheduled) {
    t.is(u.unit, name);
    t.is(u.summary, '0/3 machines: 3 lack 0.5 CPU free');
  }
});

test('a failed look-alike does not doom a unit whose name makes the difference', (t) => {
  // web@1 conflicts with guard.service (declared by guard); web@2, identical otherwise, fits.
  const units = [
    unit('guard.service', { conflicts: ['web@1.service'] }),
    unit('web@1.service'),
    unit('web@2.service'),
  ];
  const o = run(snapshot([machine('m1')], units, { 'guard.service': 'm1' }));
  t.is(o.where('web@1.service'), undefined);
  t.is(o.where('web@2.service'), 'm1');
  t.is(
    o.plan.unscheduled.get('web@1.service')?.summary,
    '0/1 machines: 1 conflicts with guard.service',
  );
});
