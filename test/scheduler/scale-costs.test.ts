/**
 * Costs that must not grow faster than the work: spread placement, parsing of instances, the
 * move rate. Bounds are generous (a slow machine passes); the old quadratic code did not.
 */
import test from 'ava';
import { plan } from '../../scheduler/planner/index.js';
import { autoRescheduleRate } from '../../scheduler/leader/reschedule.js';
import { DefinitionCache, isInvalidUnit } from '../../scheduler/view/snapshot.js';
import { makeUnit, unitText } from '../../testkit/index.js';
import { machine, snapshot, unit } from './planner-fixtures.js';

test('20,000 instances of one spread template place on 1,000 machines in seconds, evenly', (t) => {
  const zones = 10;
  const machines = Array.from({ length: 1_000 }, (_, i) =>
    machine(`m${String(i).padStart(4, '0')}`, { meta: { zone: `z${i % zones}` } }),
  );
  const units = Array.from({ length: 20_000 }, (_, i) =>
    unit(`web@${i + 1}.service`, { spreadBy: 'zone', maxPerMachine: 40, cpu: 100 }),
  ).sort((a, b) => (a.name < b.name ? -1 : 1));
  const started = performance.now();
  const p = plan(snapshot(machines, units));
  const ms = performance.now() - started;
  t.is(p.place.length, 20_000);
  t.true(ms < 20_000, `${Math.round(ms)} ms (quadratic spread took minutes here)`);
  const perZone = new Map<string, number>();
  for (const d of p.place) {
    const zone = `z${Number(d.machine.slice(1)) % zones}`;
    perZone.set(zone, (perZone.get(zone) ?? 0) + 1);
  }
  t.deepEqual(new Set(perZone.values()), new Set([2_000]), 'every zone holds the same count');
});

test('instances of a template without specifiers in [X-Fleet] share one parse', (t) => {
  const definitions = new DefinitionCache();
  const alike = unitText({ description: 'web %i', xfleet: { MaxPerMachine: '2' } });
  const wrong: string[] = [];
  for (let i = 1; i <= 1_000; i++) {
    const name = `web@${i}.service`;
    const def = definitions.get(makeUnit({ name, file: alike, hash: 'h1' }));
    if (isInvalidUnit(def) || def.name.name !== name || def.fleet.maxPerMachine !== 2) {
      wrong.push(name);
    }
  }
  t.deepEqual(wrong, [], "each instance gets its own name and the file's [X-Fleet]");
  t.is(definitions.size, 1);
  const specific = unitText({ xfleet: { Conflicts: 'db@%i.service' } });
  for (let i = 1; i <= 10; i++) {
    definitions.get(makeUnit({ name: `api@${i}.service`, file: specific, hash: 'h2' }));
  }
  t.is(definitions.size, 11, 'a specifier in [X-Fleet] is parsed per instance');
});

test('the automatic move rate is 2% of placed units per second, at least 20', (t) => {
  t.is(autoRescheduleRate(0), 20);
  t.is(autoRescheduleRate(500), 20);
  t.is(autoRescheduleRate(100_000), 2_000);
});
