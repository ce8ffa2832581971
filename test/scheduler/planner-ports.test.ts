/**
 * Ports are placement resources ([X-Service] Port=): a static port is a conflict on its
 * machine, dynamic ones are picked from the machine's range when the unit is placed and kept
 * while it stays, and a machine that cannot give a unit its ports is ruled out with a reason.
 */
import test from 'ava';
import { plan, type Plan, type PlannedPort, type Snapshot } from '../../scheduler/planner/index.js';
import { machine, machines, run, snapshot, unit } from './planner-fixtures.js';

const http = [{ name: 'http', number: 0 }];
const static8080 = [{ name: 'http', number: 8080 }];

/** Ports every unit holds after `p` is applied to `snap` (unit -> machine -> ports). */
function portsAfter(snap: Snapshot, p: Plan): Map<string, Map<string, readonly PlannedPort[]>> {
  const out = new Map<string, Map<string, readonly PlannedPort[]>>();
  for (const [u, byMachine] of snap.ports ?? []) out.set(u, new Map(byMachine));
  for (const d of p.unplace) out.get(d.unit)?.delete(d.machine);
  for (const d of [...p.place, ...p.portChanges]) {
    let m = out.get(d.unit);
    if (m === undefined) out.set(d.unit, (m = new Map()));
    m.set(d.machine, d.ports ?? []);
  }
  return out;
}

/** The snapshot after `p`, ports included. */
function after(snap: Snapshot, p: Plan): Snapshot {
  const o = run(snap);
  return { ...o.next(), ports: portsAfter(snap, p) };
}

test('units that need one static port are placed on different machines, and one too many waits with the reason', (t) => {
  const units = [1, 2, 3, 4].map((i) => unit(`web@${i}.service`, { ports: static8080 }));
  const o = run(snapshot(machines(3), units));
  const used = units.map((u) => o.where(u.name)).filter((m) => m !== undefined);
  t.is(new Set(used).size, 3, 'three machines, one instance each');
  t.is(o.plan.unscheduled.get('web@4.service')?.summary, '0/3 machines: 3 have port 8080 taken');
  const placed = o.plan.place.find((d) => d.unit === 'web@1.service');
  t.deepEqual(placed?.ports, [{ name: 'http', number: 8080, static: true }]);
});

test('two instances with dynamic ports share a machine, each with its own port from the range', (t) => {
  const units = [1, 2, 3, 4, 5, 6].map((i) => unit(`api@${i}.service`, { ports: http }));
  const p = plan(snapshot(machines(3), units));
  t.is(p.place.length, 6);
  const byMachine = new Map<string, number[]>();
  for (const d of p.place) {
    const [port] = d.ports ?? [];
    t.true(port !== undefined && port.number >= 20000 && port.number <= 32767 && !port.static);
    byMachine.set(d.machine, [...(byMachine.get(d.machine) ?? []), port?.number ?? 0]);
  }
  t.is(byMachine.size, 3);
  for (const ports of byMachine.values()) {
    t.is(ports.length, 2);
    t.is(new Set(ports).size, 2, 'distinct on one machine');
  }
});

test('a machine whose range is used up rules the unit out, and the unit waits with the range in the reason', (t) => {
  const ms = machines(2, () => ({ portRange: { first: 20000, last: 20001 } }));
  const units = [1, 2, 3, 4, 5].map((i) => unit(`api@${i}.service`, { ports: http }));
  const p = plan(snapshot(ms, units));
  t.is(p.place.length, 4);
  const ports = p.place.map((d) => `${d.machine}:${d.ports?.[0]?.number}`).sort();
  t.deepEqual(ports, ['m1:20000', 'm1:20001', 'm2:20000', 'm2:20001']);
  t.is(
    p.unscheduled.get('api@5.service')?.summary,
    '0/2 machines: 2 have no free port in 20000-20001',
  );
});

test('a static port inside the range is never picked for a dynamic one', (t) => {
  const ms = [machine('m1', { portRange: { first: 20000, last: 20001 } })];
  const p = plan(
    snapshot(ms, [
      unit('a.service', { ports: [{ name: 'x', number: 20001 }] }),
      unit('b.service', { ports: http }),
      unit('c.service', { ports: http }),
    ]),
  );
  const got = new Map(p.place.map((d) => [d.unit, d.ports?.[0]?.number]));
  t.is(got.get('a.service'), 20001);
  t.is(got.get('b.service'), 20000);
  t.false(got.has('c.service'));
  t.is(p.unscheduled.get('c.service')?.summary, '0/1 machines: 1 has no free port in 20000-20001');
});

test('ports are kept: planning again from the placements and their ports does no work', (t) => {
  const units = [1, 2, 3, 4].map((i) =>
    unit(`api@${i}.service`, { ports: [...http, { name: 'admin', number: 0 }] }),
  );
  const first = snapshot(machines(2), units);
  const p1 = plan(first);
  const again = plan(after(first, p1));
  t.deepEqual([again.place, again.unplace, again.portChanges], [[], [], []]);
  // The same inputs give the same ports.
  t.deepEqual(plan(first).place, p1.place);
});

test('a placement moved off a lost machine gets a port on its new machine; the others keep theirs', (t) => {
  const units = [1, 2, 3].map((i) => unit(`api@${i}.service`, { ports: http }));
  const first = snapshot(machines(3), units);
  const before = after(first, plan(first));
  const lostOn = before.placements.get('api@1.service')?.[0];
  const p2 = plan({ ...before, machines: before.machines.filter((m) => m.id !== lostOn) });
  const moved = p2.place.find((d) => d.unit === 'api@1.service');
  t.not(moved?.machine, undefined);
  t.not(moved?.machine, lostOn);
  const number = moved?.ports?.[0]?.number ?? 0;
  t.true(number >= 20000 && number <= 32767);
  t.deepEqual(p2.portChanges, [], 'the units that stay keep their ports');
});

test("a machine's new range re-picks the ports outside it, in place", (t) => {
  const first = snapshot([machine('m1')], [unit('a.service', { ports: http })]);
  const before = after(first, plan(first));
  const narrowed = [machine('m1', { portRange: { first: 30000, last: 30010 } })];
  const p = plan({ ...before, machines: narrowed });
  t.deepEqual([p.place, p.unplace], [[], []]);
  const number = p.portChanges[0]?.ports[0]?.number ?? 0;
  t.true(number >= 30000 && number <= 30010);
});

test('a placement recorded without its ports, or with a static port the file no longer asks, gets them rewritten in place', (t) => {
  const snap: Snapshot = {
    ...snapshot(
      [machine('m1')],
      [unit('a.service', { ports: http }), unit('b.service', { ports: static8080 })],
      { 'a.service': 'm1', 'b.service': 'm1' },
    ),
    ports: new Map([
      ['b.service', new Map([['m1', [{ name: 'http', number: 9090, static: true }]]])],
    ]),
  };
  const p = plan(snap);
  t.deepEqual([p.place, p.unplace], [[], []]);
  const changes = new Map(p.portChanges.map((c) => [c.unit, c.ports]));
  t.is(changes.get('a.service')?.length, 1);
  t.false(changes.get('a.service')?.[0]?.static ?? true);
  t.deepEqual(changes.get('b.service'), [{ name: 'http', number: 8080, static: true }]);
});

test('two placements holding one static port on one machine: one of them moves', (t) => {
  const snap = snapshot(
    machines(2),
    [unit('a.service', { ports: static8080 }), unit('b.service', { ports: static8080 })],
    { 'a.service': 'm1', 'b.service': 'm1' },
  );
  const o = run(snap);
  t.not(o.where('a.service'), o.where('b.service'));
  t.is(o.plan.unplace.length, 1);
  t.regex(o.plan.unplace[0]?.detail ?? '', /machine has port 8080 taken/);
});
