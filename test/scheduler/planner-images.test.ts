/**
 * Image units (`[Container]`) go only to machines whose runtime driver runs images (runc):
 * the planner places them there, says why the others are ruled out, moves one that sits on a
 * machine that cannot run it, and leaves units without an image wherever they fit.
 */
import test from 'ava';
import { placeInOrder } from '../../scheduler/planner/index.js';
import { machine, machines, run, snapshot, unit } from './planner-fixtures.js';

/** m1..m5: m1 and m3 run images, the rest run plain processes. */
const mixed = machines(5, (i) => ({ images: i === 0 || i === 2 }));

test('an image unit is placed only on a machine that runs images', (t) => {
  const units = [1, 2, 3, 4].map((i) => unit(`app@${i}.service`, { image: true }));
  const o = run(snapshot(mixed, units));
  const used = new Set(units.map((u) => o.where(u.name)));
  t.deepEqual([...used].sort(), ['m1', 'm3']);
});

test('a unit without an image still goes to any machine, least loaded first', (t) => {
  const o = run(snapshot(mixed, [unit('a.service')]));
  t.is(o.where('a.service'), 'm1');
  const all = run(
    snapshot(
      mixed,
      [1, 2, 3, 4, 5].map((i) => unit(`w@${i}.service`)),
    ),
  );
  t.is(new Set([...all.after.values()].flat()).size, 5);
});

test('an image unit on a cluster of process machines is unscheduled with a counted reason', (t) => {
  const o = run(snapshot(machines(5), [unit('app.service', { image: true })]));
  t.is(o.where('app.service'), undefined);
  t.is(o.plan.unscheduled.get('app.service')?.summary, '0/5 machines: 5 run no images');
});

test('the reason counts the machines that run no images beside those other checkers rule out', (t) => {
  const ms = [
    machine('m1', { images: true, meta: { region: 'eu' } }),
    machine('m2', { images: false, meta: { region: 'us' } }),
    machine('m3', { images: false, meta: { region: 'us' } }),
    machine('m4', { images: true, drained: true }),
  ];
  const o = run(snapshot(ms, [unit('app.service', { image: true, metadata: { region: ['us'] } })]));
  t.is(o.where('app.service'), undefined);
  t.is(
    o.plan.unscheduled.get('app.service')?.summary,
    '0/4 machines: 2 run no images, 1 is drained, 1 lacks region=us',
  );
});

test('one machine that runs no images is worded for one', (t) => {
  const o = run(snapshot([machine('m1')], [unit('app.service', { image: true })]));
  t.is(o.plan.unscheduled.get('app.service')?.summary, '0/1 machines: 1 runs no images');
});

test('an image unit placed on a machine that runs no images moves to one that does', (t) => {
  const o = run(snapshot(mixed, [unit('app.service', { image: true })], { 'app.service': 'm2' }));
  t.is(o.where('app.service'), 'm1');
  const gone = o.plan.unplace.find((d) => d.unit === 'app.service');
  t.is(gone?.why, 'infeasible');
  t.is(gone?.detail, 'machine runs no images');
});

test('a Global image unit runs on every machine that runs images and on no other', (t) => {
  const o = run(snapshot(mixed, [unit('g.service', { image: true, global: true })]));
  t.deepEqual(o.after.get('g.service'), ['m1', 'm3']);
  t.is(o.plan.unscheduled.has('g.service'), false);
});

test('admission counts only the machines that run images', (t) => {
  const units = [1, 2, 3].map((i) =>
    unit(`app@${i}.service`, { image: true, conflicts: ['app@*.service'] }),
  );
  const c = placeInOrder(
    snapshot(mixed, units),
    units.map((u) => u.name),
  );
  t.is(c.placeable, 2);
  t.is(c.blocked?.unit, 'app@3.service');
  t.is(
    c.blocked?.summary,
    '0/5 machines: 3 run no images, 1 conflicts with app@1.service, 1 conflicts with app@2.service',
  );
});
