/**
 * Table tests for each [X-Fleet] key and resource rule, fleet's corner cases included.
 */
import test from 'ava';
import { GIB, MIB, machine, machines, run, snapshot, unit } from './planner-fixtures.js';

test('MachineID: a full id places on that machine only', (t) => {
  const o = run(snapshot(machines(3), [unit('a.service', { machineId: 'm3' })]));
  t.is(o.where('a.service'), 'm3');
});

test('MachineID: a unique prefix places on the machine it names', (t) => {
  const ms = [machine('4f2a9c'), machine('8be001'), machine('8cd002')];
  t.is(run(snapshot(ms, [unit('a.service', { machineId: '4f' })])).where('a.service'), '4f2a9c');
  t.is(run(snapshot(ms, [unit('a.service', { machineId: '8b' })])).where('a.service'), '8be001');
});

test('MachineID: an ambiguous prefix places nowhere and says so', (t) => {
  const ms = [machine('8be001'), machine('8cd002'), machine('aaa')];
  const o = run(snapshot(ms, [unit('a.service', { machineId: '8' })]));
  t.is(o.where('a.service'), undefined);
  t.is(
    o.plan.unscheduled.get('a.service')?.summary,
    '0/3 machines: 2 match ambiguous MachineID=8, 1 does not match MachineID=8',
  );
});

test('MachineID: an exact id wins over longer ids it prefixes', (t) => {
  const ms = [machine('ab'), machine('abc')];
  t.is(run(snapshot(ms, [unit('a.service', { machineId: 'ab' })])).where('a.service'), 'ab');
});

test('MachineID: an unknown machine places nowhere', (t) => {
  const o = run(snapshot(machines(2), [unit('a.service', { machineId: 'zz' })]));
  t.is(o.where('a.service'), undefined);
  t.is(o.plan.unscheduled.get('a.service')?.summary, '0/2 machines: 2 do not match MachineID=zz');
});

const metaCluster = [
  machine('m1', { meta: { region: 'eu', disk: 'hdd' } }),
  machine('m2', { meta: { region: 'us', disk: 'ssd' } }),
  machine('m3', { meta: { region: 'ap', disk: 'ssd' } }),
  machine('m4', { meta: { region: 'eu', disk: 'ssd' } }),
];

const metadataCases: [string, Record<string, readonly string[]>, readonly string[]][] = [
  ['one key, one value', { region: ['us'] }, ['m2']],
  ['OR over the values of one key', { region: ['eu', 'us'] }, ['m1', 'm2', 'm4']],
  ['AND over keys', { region: ['eu'], disk: ['ssd'] }, ['m4']],
  ['AND over keys with OR inside', { disk: ['ssd'], region: ['eu', 'us'] }, ['m2', 'm4']],
  ['a missing key matches nothing', { rack: ['r1'] }, []],
];

for (const [title, metadata, allowed] of metadataCases) {
  test(`MachineMetadata: ${title}`, (t) => {
    const g = unit('g.service', { global: true, metadata });
    const o = run(snapshot(metaCluster, [g]));
    t.deepEqual(o.after.get('g.service') ?? [], allowed);
  });
}

test('MachineMetadata: reasons name the first failing key', (t) => {
  const u = unit('db.service', { metadata: { disk: ['ssd'], region: ['eu', 'us'] } });
  const o = run(snapshot(metaCluster, [u], { 'x.service': 'm4' }));
  t.is(o.where('db.service'), 'm2');
  const blocked = unit('db.service', { metadata: { disk: ['nvme'], region: ['eu'] } });
  t.is(
    run(snapshot(metaCluster, [blocked])).plan.unscheduled.get('db.service')?.summary,
    '0/4 machines: 4 lack disk=nvme',
  );
});

test('MachineOf: a follower goes where its peer is', (t) => {
  const o = run(
    snapshot(machines(4), [unit('b.service', { machineOf: ['a.service'] }), unit('a.service')], {
      'a.service': 'm3',
    }),
  );
  t.is(o.where('b.service'), 'm3');
});

test('MachineOf: a chain c -> b -> a is placed in one pass, whatever the names', (t) => {
  const units = [
    unit('a.service', { machineOf: ['b.service'] }),
    unit('b.service', { machineOf: ['c.service'] }),
    unit('c.service'),
    unit('filler.service', { machineId: 'm1' }),
  ];
  const o = run(snapshot(machines(3), units));
  const at = o.where('c.service');
  t.not(at, undefined);
  t.is(o.where('b.service'), at);
  t.is(o.where('a.service'), at);
});

test('MachineOf: two units MachineOf each other are never placed', (t) => {
  const units = [
    unit('a.service', { machineOf: ['b.service'] }),
    unit('b.service', { machineOf: ['a.service'] }),
  ];
  const o = run(snapshot(machines(2), units));
  t.is(o.where('a.service'), undefined);
  t.is(o.where('b.service'), undefined);
  t.is(
    o.plan.unscheduled.get('a.service')?.summary,
    '0/2 machines: 2 lack peer b.service (MachineOf cycle)',
  );
  // Even when something placed them together before, they do not stay.
  const again = run(snapshot(machines(2), units, { 'a.service': 'm1', 'b.service': 'm1' }));
  t.deepEqual([...again.after.keys()], []);
});

test('MachineOf: the follower is unplaced while any peer is', (t) => {
  const units = [
    unit('a.service'),
    unit('f.service', { machineOf: ['a.service', 'missing.service'] }),
  ];
  const o = run(snapshot(machines(2), units));
  t.is(o.where('f.service'), undefined);
  t.regex(o.plan.unscheduled.get('f.service')?.summary ?? '', /1 lacks peer missing\.service/);
});

test('MachineOf: a follower leaves when its peer is stopped, at no move cost', (t) => {
  const units = [unit('f.service', { machineOf: ['a.service'] })];
  const o = run(snapshot(machines(2), units, { 'a.service': 'm1', 'f.service': 'm1' }), {
    maxMoves: 0,
  });
  t.is(o.where('f.service'), undefined);
  t.deepEqual(
    o.plan.unplace.map((d) => [d.unit, d.why]),
    [
      ['a.service', 'inactive'],
      ['f.service', 'peer-moved'],
    ],
  );
});

test('Conflicts: one-way declaration still keeps both apart', (t) => {
  // a conflicts with b; b says nothing. Whichever is placed first, they never share.
  for (const placed of ['a.service', 'b.service']) {
    const other = placed === 'a.service' ? 'b.service' : 'a.service';
    const units = [unit('a.service', { conflicts: ['b.service'] }), unit('b.service')];
    const o = run(snapshot([machine('m1')], units, { [placed]: 'm1' }));
    t.is(o.where(other), undefined, `${other} after ${placed}`);
    t.is(o.plan.unscheduled.get(other)?.summary, `0/1 machines: 1 conflicts with ${placed}`);
  }
});

test('Conflicts: a template glob spreads its instances one per machine', (t) => {
  const units = [1, 2, 3, 4].map((i) => unit(`web@${i}.service`, { conflicts: ['web@*.service'] }));
  const o = run(snapshot(machines(3), units));
  const used = units.map((u) => o.where(u.name)).filter((m) => m !== undefined);
  t.is(used.length, 3);
  t.is(new Set(used).size, 3);
  t.is(o.plan.unscheduled.get('web@4.service')?.reasons.length, 3);
});

test('Global with Conflicts: one per machine except where a conflict runs', (t) => {
  const units = [unit('mon.service', { global: true, conflicts: ['legacy.service'] })];
  const o = run(snapshot(machines(4), units, { 'legacy.service': 'm2' }));
  // legacy.service is inactive (not given), so its placement goes and mon runs everywhere.
  t.deepEqual(o.after.get('mon.service'), ['m1', 'm2', 'm3', 'm4']);
  const withLegacy = [...units, unit('legacy.service', { machineId: 'm2' })];
  const o2 = run(snapshot(machines(4), withLegacy, { 'legacy.service': 'm2' }));
  t.deepEqual(o2.after.get('mon.service'), ['m1', 'm3', 'm4']);
  t.deepEqual(o2.after.get('legacy.service'), ['m2']);
});

test('Replaces: the replacer displaces the replaced unit, which moves elsewhere', (t) => {
  const units = [
    unit('old.service'),
    unit('new.service', { machineId: 'm1', replaces: ['old.service'] }),
  ];
  const o = run(snapshot(machines(2), units, { 'old.service': 'm1' }));
  t.is(o.where('new.service'), 'm1');
  t.is(o.where('old.service'), 'm2');
  t.deepEqual(o.plan.displaced, [{ unit: 'old.service', machine: 'm1', by: 'new.service' }]);
  t.deepEqual(o.plan.place.find((p) => p.unit === 'new.service')?.displaces, ['old.service']);
  t.is(o.plan.moves, 1);
});

test('Replaces: a unit may not go where a unit that replaces it runs', (t) => {
  const units = [
    unit('new.service', { replaces: ['old.service'] }),
    unit('old.service', { machineId: 'm1' }),
  ];
  const o = run(snapshot(machines(2), units, { 'new.service': 'm1' }));
  t.is(o.where('old.service'), undefined);
  t.is(
    o.plan.unscheduled.get('old.service')?.summary,
    '0/2 machines: 1 does not match MachineID=m1, 1 runs new.service, which replaces this unit',
  );
});

test('Replaces: circular replaces are ignored, both may share a machine', (t) => {
  const units = [
    unit('a.service', { replaces: ['b.service'] }),
    unit('b.service', { replaces: ['a.service'], machineId: 'm1' }),
  ];
  const o = run(snapshot([machine('m1')], units, { 'a.service': 'm1' }));
  t.is(o.where('a.service'), 'm1');
  t.is(o.where('b.service'), 'm1');
  t.deepEqual(o.plan.displaced, []);
});

test('Replaces: displacing counts against maxMoves', (t) => {
  const units = [
    unit('old.service'),
    unit('new.service', { machineId: 'm1', replaces: ['old.service'] }),
  ];
  const o = run(snapshot(machines(2), units, { 'old.service': 'm1' }), { maxMoves: 0 });
  t.is(o.where('old.service'), 'm1');
  t.is(o.where('new.service'), undefined);
  t.regex(o.plan.unscheduled.get('new.service')?.summary ?? '', /may not move/);
});

test('Resources: reservations never exceed capacity, and 0 reserves nothing', (t) => {
  const ms = [machine('m1', { cpu: 1000, memory: 512 * MIB })];
  const units = [
    unit('a.service', { cpu: 600, memory: 256 * MIB }),
    unit('b.service', { cpu: 600 }),
    unit('c.service', { memory: 512 * MIB }),
    unit('d.service', { cpu: 400, memory: 256 * MIB }),
    unit('e.service'),
  ];
  const o = run(snapshot(ms, units));
  t.deepEqual([...o.after.keys()].sort(), ['a.service', 'd.service', 'e.service']);
  t.is(o.plan.unscheduled.get('b.service')?.summary, '0/1 machines: 1 lacks 0.6 CPU free');
  t.is(o.plan.unscheduled.get('c.service')?.summary, '0/1 machines: 1 lacks 512 MiB memory free');
});

test('Resources: the reason names every resource, and "too small" (capacity) apart from "lack ... free"', (t) => {
  const small = (id: string) => machine(id, { cpu: 4000, memory: 8 * GIB });
  const huge = unit('huge.service', { cpu: 8000, memory: 100 * GIB });
  const tooBig = run(snapshot([small('m1'), small('m2'), small('m3')], [huge]));
  t.is(
    tooBig.plan.unscheduled.get('huge.service')?.summary,
    '0/3 machines: 3 are too small for 8 CPUs and 100 GiB memory',
  );
  // The same machines, full of others' reservations: waiting for them may help.
  const busy = [unit('hog.service', { cpu: 3500, memory: 7 * GIB, machineId: 'm1' })];
  const want = unit('w.service', { cpu: 1000, memory: 2 * GIB });
  const full = run(snapshot([small('m1')], [...busy, want], { 'hog.service': 'm1' }));
  t.is(
    full.plan.unscheduled.get('w.service')?.summary,
    '0/1 machines: 1 lacks 1 CPU and 2 GiB memory free',
  );
  // Both at once, on one machine and on two.
  const mixed = unit('x.service', { cpu: 8000, memory: 2 * GIB });
  const one = run(snapshot([small('m1')], [...busy, mixed], { 'hog.service': 'm1' }));
  t.is(
    one.plan.unscheduled.get('x.service')?.summary,
    '0/1 machines: 1 is too small for 8 CPUs and lacks 2 GiB memory free',
  );
  const two = run(
    snapshot(
      [small('m1'), small('m2')],
      [...busy, unit('hog2.service', { cpu: 500, memory: 7 * GIB, machineId: 'm2' }), mixed],
      { 'hog.service': 'm1', 'hog2.service': 'm2' },
    ),
  );
  t.deepEqual(two.plan.unscheduled.get('x.service')?.reasons, [
    { reason: 'are too small for 8 CPUs and lack 2 GiB memory free', machines: 2 },
  ]);
  t.is(
    two.plan.unscheduled.get('x.service')?.summary,
    '0/2 machines: 2 are too small for 8 CPUs and lack 2 GiB memory free',
  );
});

test('Resources: a unit goes to the machine that still has room', (t) => {
  const ms = [machine('m1', { memory: 1 * GIB }), machine('m2', { memory: 4 * GIB })];
  const units = [unit('big.service', { memory: 2 * GIB }), unit('x.service')];
  const o = run(snapshot(ms, units, { 'x.service': 'm2' }));
  t.is(o.where('big.service'), 'm2');
});

test('MaxPerMachine: caps instances of a template per machine', (t) => {
  const units = [1, 2, 3, 4, 5].map((i) => unit(`api@${i}.service`, { maxPerMachine: 2 }));
  const ms = [machine('m1'), machine('m2')];
  const o = run(snapshot(ms, units, { 'other@1.service': 'm2' }));
  const perMachine = new Map<string, number>();
  for (const u of units) {
    const m = o.where(u.name);
    if (m !== undefined) perMachine.set(m, (perMachine.get(m) ?? 0) + 1);
  }
  t.deepEqual([...perMachine.entries()].sort(), [
    ['m1', 2],
    ['m2', 2],
  ]);
  t.is(
    o.plan.unscheduled.get('api@5.service')?.summary,
    '0/2 machines: 2 already run 2 instances of api@.service (MaxPerMachine=2)',
  );
});

test('Drained: a drained machine takes nothing new', (t) => {
  const ms = [machine('m1', { drained: true }), machine('m2', { drained: true })];
  const o = run(snapshot(ms, [unit('a.service'), unit('g.service', { global: true })]));
  t.is(o.plan.place.length, 0);
  t.is(o.plan.unscheduled.get('a.service')?.summary, '0/2 machines: 2 are drained');
  t.is(o.plan.unscheduled.get('g.service')?.summary, '0/2 machines: 2 are drained');
});

test('Replaces: a chain a -> b -> c -> a cannot chase units around the cluster', (t) => {
  const units = [
    unit('a.service', { replaces: ['b.service'] }),
    unit('b.service', { replaces: ['c.service'] }),
    unit('c.service', { replaces: ['a.service'] }),
  ];
  const o = run(snapshot([machine('m1')], units, { 'c.service': 'm1' }));
  // Each unit is displaced at most once per pass, so the pass ends; one unit holds m1 and
  // the others report the unit that replaces them.
  t.is(o.after.size, 1);
  t.is(o.plan.unscheduled.size, 2);
  for (const u of o.plan.unscheduled.values()) {
    t.regex(u.summary, /which replaces this unit|may not move/);
  }
  const again = run(o.next());
  t.deepEqual([again.plan.place, again.plan.unplace], [[], []]);
});

test('Replaces: a Global unit is displaced machine by machine', (t) => {
  const units = [
    unit('agent.service', { global: true }),
    unit('new-a.service', { machineId: 'm1', replaces: ['agent.service'] }),
    unit('new-b.service', { machineId: 'm2', replaces: ['agent.service'] }),
  ];
  const o = run(snapshot(machines(3), units, { 'agent.service': ['m1', 'm2', 'm3'] }));
  t.deepEqual(o.after.get('agent.service'), ['m3']);
  t.is(o.where('new-a.service'), 'm1');
  t.is(o.where('new-b.service'), 'm2');
  t.deepEqual(
    o.plan.displaced.map((d) => [d.unit, d.machine]),
    [
      ['agent.service', 'm1'],
      ['agent.service', 'm2'],
    ],
  );
});

test('Replaces: a Global kept off a machine by the displaced unit takes its place', (t) => {
  const units = [
    unit('mon.service', { global: true, conflicts: ['old.service'], metadata: { role: ['w'] } }),
    unit('old.service'),
    unit('new.service', { machineId: 'm1', replaces: ['old.service'] }),
  ];
  const ms = [
    machine('m1', { meta: { role: 'w' } }),
    machine('m2', { meta: { role: 'w' } }),
    machine('m3'),
  ];
  const o = run(snapshot(ms, units, { 'old.service': 'm1', 'mon.service': 'm2' }));
  t.is(o.where('new.service'), 'm1');
  t.is(o.where('old.service'), 'm3');
  t.deepEqual(o.after.get('mon.service'), ['m1', 'm2']);
  const again = run(o.next());
  t.deepEqual([again.plan.place, again.plan.unplace], [[], []]);
});
