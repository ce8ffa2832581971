/**
 * The console's page model, map layout and search, run in Node (they are DOM-free): what the
 * map and the units table show after listings and events, and that finding the tile under the
 * pointer agrees with where tiles are drawn.
 */
import test from 'ava';
import { globMatcher } from '../../console/src/glob.js';
import { hitTest, layoutMap, tileOrigin, visibleTiles } from '../../console/src/map/layout.js';
import {
  cellState,
  ClusterModel,
  isTemplateName,
  templateOf,
  unitSummary,
} from '../../console/src/model.js';
import type { EventJson } from '../../console/src/types.js';

function cluster(): ClusterModel {
  const m = new ClusterModel();
  m.addMachines([
    {
      machine: {
        id: 'm1',
        metadata: { zone: 'a' },
        capacity: { cpuMillicores: '4000', memoryBytes: '8' },
      },
      reserved: { cpuMillicores: '1000' },
    },
    { machine: { id: 'm2', metadata: { zone: 'b' } } },
  ]);
  m.addUnits([
    {
      unit: { name: 'web@1.service', desiredState: 'launched' },
      placement: { machine: 'm1' },
      state: { machine: 'm1', activeState: 'active', subState: 'running' },
    },
    {
      unit: { name: 'web@2.service', desiredState: 'launched' },
      unscheduled: { summary: '0/2 machines: 2 lack 1 CPU free' },
    },
  ]);
  return m;
}

test('a listed running unit is a running cell on its machine; a waiting one is pending with its reason', (t) => {
  const m = cluster();
  const web1 = m.units.get('web@1.service');
  t.truthy(web1);
  t.is(cellState(web1!, 'm1'), 'running');
  t.true(m.machines.get('m1')!.units.has('web@1.service'));
  t.is(m.machines.get('m1')!.reservedCpu, 1000);
  t.is(unitSummary(m.units.get('web@2.service')!), 'pending');
  t.is(m.pending.get('web@2.service')?.summary, '0/2 machines: 2 lack 1 CPU free');
});

test('a stop changes the cell at once (changing), then to stopped when the agent reports it', (t) => {
  const m = cluster();
  m.takeDirty();
  const stop: EventJson[] = [
    {
      revision: '10',
      kind: 'unit',
      type: 'put',
      name: 'web@1.service',
      unit: { desiredState: 'loaded' },
    },
  ];
  m.apply(stop);
  const u = m.units.get('web@1.service')!;
  t.is(cellState(u, 'm1'), 'changing');
  t.deepEqual([...m.takeDirty()], ['m1']);
  m.apply([
    {
      revision: '11',
      kind: 'state',
      type: 'put',
      name: 'web@1.service',
      machine: 'm1',
      state: { machine: 'm1', activeState: 'inactive', subState: 'dead' },
    },
  ]);
  t.is(cellState(u, 'm1'), 'stopped');
  t.is(m.revision, 11);
});

test('failed beats everything and unhealthy shows on a running unit', (t) => {
  const m = cluster();
  const base = { revision: '12', kind: 'state', type: 'put', name: 'web@1.service', machine: 'm1' };
  m.apply([{ ...base, state: { machine: 'm1', activeState: 'active', health: 'unhealthy' } }]);
  t.is(cellState(m.units.get('web@1.service')!, 'm1'), 'unhealthy');
  m.apply([{ ...base, state: { machine: 'm1', activeState: 'failed' } }]);
  t.is(cellState(m.units.get('web@1.service')!, 'm1'), 'failed');
});

test('a move takes the unit off its old machine; a destroy takes it off the map', (t) => {
  const m = cluster();
  m.apply([
    { revision: '20', kind: 'placement', type: 'delete', name: 'web@1.service', machine: 'm1' },
    {
      revision: '21',
      kind: 'placement',
      type: 'put',
      name: 'web@1.service',
      machine: 'm2',
      placement: { machine: 'm2' },
    },
  ]);
  t.false(m.machines.get('m1')!.units.has('web@1.service'));
  t.true(m.machines.get('m2')!.units.has('web@1.service'));
  m.apply([{ revision: '22', kind: 'unit', type: 'delete', name: 'web@1.service' }]);
  t.false(m.units.has('web@1.service'));
  t.is(m.machines.get('m2')!.units.size, 0);
});

test('a lost machine is marked, a drained one too, and both change the layout', (t) => {
  const m = cluster();
  m.layoutDirty = false;
  m.apply([
    { revision: '30', kind: 'machine', type: 'delete', name: 'm2', machine: 'm2' },
    {
      revision: '31',
      kind: 'machine-config',
      type: 'put',
      name: 'm1',
      machine: 'm1',
      machineConfig: { machine: 'm1', drained: true, metadata: { zone: 'c' } },
    },
  ]);
  t.true(m.machines.get('m2')!.lost);
  t.true(m.machines.get('m1')!.drained);
  t.is(m.machines.get('m1')!.metadata.zone, 'c');
  t.true(m.layoutDirty);
});

test('a Global unit has one cell per machine, each with its own state', (t) => {
  const m = new ClusterModel();
  m.apply([
    {
      revision: '1',
      kind: 'unit',
      type: 'put',
      name: 'log.service',
      global: true,
      unit: { desiredState: 'launched' },
    },
    { revision: '2', kind: 'placement', type: 'put', name: 'log.service', machine: 'm1' },
    { revision: '3', kind: 'placement', type: 'put', name: 'log.service', machine: 'm2' },
    {
      revision: '4',
      kind: 'state',
      type: 'put',
      name: 'log.service',
      machine: 'm1',
      state: { activeState: 'active' },
    },
  ]);
  const u = m.units.get('log.service')!;
  t.is(cellState(u, 'm1'), 'running');
  t.is(cellState(u, 'm2'), 'changing');
});

test('the feed keeps the newest thousand events', (t) => {
  const m = new ClusterModel();
  for (let i = 1; i <= 1500; i += 1) {
    m.apply([
      {
        revision: String(i),
        kind: 'unit',
        type: 'put',
        name: `u${i}.service`,
        unit: { desiredState: 'loaded' },
      },
    ]);
  }
  t.is(m.recent.length, 1000);
  t.is(m.recent[0]?.revision, '501');
});

test('templates of instances; globs as flotctl takes them, and plain text as a substring', (t) => {
  t.is(templateOf('web@12.service'), 'web@.service');
  t.is(templateOf('db.service'), '');
  t.true(isTemplateName('web@.service'));
  t.false(isTemplateName('web@1.service'));
  const m = new ClusterModel();
  m.addUnits([{ unit: { name: 'web@.service' } }, { unit: { name: 'web@1.service' } }]);
  t.is(m.units.size - m.templates, 1, 'a template is no unit on the map');
  t.true(globMatcher('web@*')('web@3.service'));
  t.false(globMatcher('web@*')('api@3.service'));
  t.true(globMatcher('web@[12].service')('web@2.service'));
  t.false(globMatcher('web@[!12].service')('web@2.service'));
  t.true(globMatcher('WEB')('web@3.service'));
  t.true(globMatcher('a.b')('a.b'));
  t.false(globMatcher('a.b*')('axb'));
});

test('the map groups machines by the chosen key, and the tile under a point is the one drawn there', (t) => {
  const m = new ClusterModel();
  m.addMachines(
    Array.from({ length: 5000 }, (_, i) => ({
      machine: {
        id: `m${String(i).padStart(4, '0')}`,
        metadata: { zone: `z${i % 7}`, rack: `r${i % 50}` },
      },
    })),
  );
  const layout = layoutMap(m.machines.values(), 'zone', 1200);
  t.is(layout.groups.length, 7);
  t.is(
    layout.groups.reduce((n, g) => n + g.machines.length, 0),
    5000,
  );
  for (const g of layout.groups) {
    for (const i of [0, g.perRow - 1, g.machines.length - 1]) {
      const [x, y] = tileOrigin(layout, g, i);
      t.is(hitTest(layout, x + 2, y + 2)?.machine.id, g.machines[i]?.id);
    }
  }
  const inView = visibleTiles(layout, 0, 800).reduce((n, v) => n + v.last - v.first + 1, 0);
  t.true(inView > 0 && inView < 400, `${inView} tiles in an 800 px window`);
  t.is(layoutMap(m.machines.values(), 'rack', 1200).groups.length, 50);
});
