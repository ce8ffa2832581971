/**
 * placeInOrder (scheduler/planner/capacity.ts), what admission asks: how many of some units
 * fit on the cluster as it is, placed one after the other, before the first that fits
 * nowhere, and the planner's reasons for that one.
 */
import test from 'ava';
import { placeInOrder } from '../../scheduler/planner/index.js';
import { GIB, machines, snapshot, unit } from './planner-fixtures.js';

const api = (n: number) => unit(`api@${n}.service`, { maxPerMachine: 2, cpu: 500 });
const names = (n: number): string[] => Array.from({ length: n }, (_, i) => `api@${i + 1}.service`);

test('it stops at the first unit that fits nowhere and says why, as the planner words it', (t) => {
  const units = names(10).map((_, i) => api(i + 1));
  const fit = placeInOrder(snapshot(machines(3), units), names(10));
  t.is(fit.placeable, 6);
  t.deepEqual(fit.placed, names(6));
  t.is(
    fit.blocked?.summary,
    '0/3 machines: 3 already run 2 instances of api@.service (MaxPerMachine=2)',
  );
  t.is(fit.blocked?.unit, 'api@7.service');
});

test('placed units keep their room and count as placeable; what is not active frees its room', (t) => {
  const units = [api(1), api(2), api(3)];
  // api@1 and api@2 on m1; old@1 (no longer active) on m2 takes nothing.
  const snap = snapshot(
    machines(2, () => ({ cpu: 1000, memory: GIB })),
    units,
    {
      'api@1.service': 'm1',
      'api@2.service': 'm1',
      'old@1.service': 'm2',
    },
  );
  const fit = placeInOrder(snap, names(3));
  t.is(fit.placeable, 3);
  const full = placeInOrder(snapshot(machines(1), units, { 'api@1.service': 'm1' }), names(3));
  t.is(full.placeable, 2, 'api@1 is placed; api@2 fits beside it; api@3 does not');
});

test('peers are placed before their followers, whatever the order asked', (t) => {
  const units = [
    unit('side@1.service', { machineOf: ['db@1.service'] }),
    unit('db@1.service', { conflicts: ['db@*.service'] }),
    unit('db@2.service', { conflicts: ['db@*.service'] }),
  ];
  const order = ['side@1.service', 'db@1.service', 'db@2.service'];
  const fit = placeInOrder(snapshot(machines(2), units), order);
  t.deepEqual(fit.placed, ['db@1.service', 'db@2.service', 'side@1.service']);
  t.is(fit.blocked, undefined, 'side@1 asked first would have found no peer');
});

test('optional units are placed when they fit and skipped when not, without counting', (t) => {
  const units = [unit('mars.service', { metadata: { region: ['mars'] } }), api(1)];
  const fit = placeInOrder(
    snapshot(machines(2), units),
    ['mars.service', 'api@1.service'],
    new Set(['mars.service']),
  );
  t.deepEqual([fit.placeable, fit.blocked], [1, undefined]);
});

test('with no machines nothing fits, and says so', (t) => {
  const fit = placeInOrder(snapshot([], [api(1)]), ['api@1.service']);
  t.is(fit.placeable, 0);
  t.is(fit.blocked?.summary, '0/0 machines: there are no machines');
});
