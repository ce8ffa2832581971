/**
 * From records to a snapshot, and from a plan to conditioned writes: pure, no etcd. The
 * integration tests check the same rules end to end; these pin down the edge cases.
 */
import test from 'ava';
import type { Placement, Unit, Unscheduled } from '../../proto/flotilla/v1/records.js';
import type { ClusterView } from '../../scheduler/view/cluster-cache.js';
import { decideWork } from '../../scheduler/leader/commit.js';
import { sameReasons } from '../../scheduler/leader/pending.js';
import { plan } from '../../scheduler/planner/index.js';
import { buildSnapshot, DefinitionCache } from '../../scheduler/view/snapshot.js';
import { codecs, Keys, type BatchOp, type CacheEntry } from '../../store/index.js';
import { parseUnit } from '../../unit/index.js';
import { makeMachine, unitText } from '../../testkit/index.js';

const keys = new Keys('/t/');
const EPOCH = 42n;

function unit(name: string, desiredState = 'launched', xfleet: Record<string, string> = {}): Unit {
  const file = unitText({ xfleet });
  return { name, file, hash: parseUnit(name, file).hash, desiredState };
}

function entry<T>(key: string, value: T, modRevision = 7n): CacheEntry<T> {
  return { key, value, createRevision: modRevision, modRevision, lease: 0n };
}

/** A view as the cluster cache would build it. `placed`: unit -> machine ids. */
function view(opts: {
  machines: string[];
  units: Unit[];
  placed?: Record<string, string[]>;
  placementValues?: Record<string, Partial<Placement>>;
  unscheduled?: Unscheduled[];
  drained?: string[];
}): ClusterView {
  const machines = new Map(opts.machines.map((id) => [id, makeMachine({ id })]));
  const configs = new Map(
    (opts.drained ?? []).map((id) => [id, { machine: id, metadata: {}, drained: true }]),
  );
  const units = new Map(opts.units.map((u) => [u.name, u]));
  const placements = new Map<string, Map<string, CacheEntry<Placement>>>();
  for (const [name, ids] of Object.entries(opts.placed ?? {})) {
    const u = units.get(name);
    const value: Placement = {
      unit: name,
      machine: '',
      hash: u?.hash ?? '',
      epoch: 1n,
      desiredState: u?.desiredState ?? 'launched',
      ports: [],
      ...(opts.placementValues?.[name] ?? {}),
    };
    placements.set(
      name,
      new Map(ids.map((id) => [id, entry(keys.placement(id, name), { ...value, machine: id })])),
    );
  }
  const plain = new Map(
    [...placements].map(([n, m]) => [n, new Map([...m].map(([id, e]) => [id, e.value]))]),
  );
  const built = buildSnapshot(
    { machines, configs, units, placements: plain },
    new DefinitionCache(),
  );
  const unscheduled = new Map(
    (opts.unscheduled ?? []).map((u) => [u.unit, entry(keys.unscheduled(u.unit), u, 9n)]),
  );
  return { ...built, placements, unscheduled, revision: 0n };
}

function decide(v: ClusterView) {
  return decideWork(keys, v, plan(v.snapshot), EPOCH);
}

function describe(ops: readonly BatchOp[]): string[] {
  return ops.map((op) => {
    const cond =
      op.condition === undefined
        ? ''
        : 'absent' in op.condition
          ? ' if absent'
          : ` if mod=${op.condition.modRevision}`;
    return `${op.type} ${op.key}${cond}`;
  });
}

test('a new placement is created only where none exists, with the epoch and desired state', (t) => {
  const work = decide(view({ machines: ['m1'], units: [unit('a.service', 'loaded')] }));
  t.deepEqual(work.first, []);
  t.deepEqual(describe(work.second), ['put /t/placements/m1/a.service if absent']);
  const op = work.second[0];
  const value = op?.type === 'put' ? codecs.placement.decode('k', op.value) : undefined;
  t.like(value, { unit: 'a.service', machine: 'm1', epoch: EPOCH, desiredState: 'loaded' });
  t.is(value?.hash, parseUnit('a.service', unitText()).hash);
});

test('a move deletes first, and creates only in the second phase', (t) => {
  const v = view({
    machines: ['m1', 'm2'],
    units: [unit('a.service')],
    placed: { 'a.service': ['m1'] },
    drained: ['m1'],
  });
  const work = decide(v);
  t.deepEqual(describe(work.first), ['delete /t/placements/m1/a.service if mod=7']);
  t.deepEqual(describe(work.second), ['put /t/placements/m2/a.service if absent']);
  t.is(work.counts.removed, 1);
});

test('a changed desired state or hash updates the placement in place, guarded by its mod revision', (t) => {
  const v = view({
    machines: ['m1'],
    units: [unit('a.service', 'loaded'), unit('b.service')],
    placed: { 'a.service': ['m1'], 'b.service': ['m1'] },
    placementValues: { 'a.service': { desiredState: 'launched' }, 'b.service': { hash: 'old' } },
  });
  const work = decide(v);
  t.deepEqual(describe(work.first), [
    'put /t/placements/m1/a.service if mod=7',
    'put /t/placements/m1/b.service if mod=7',
  ]);
  t.deepEqual(work.second, []);
  const values = work.first.map((op) =>
    op.type === 'put' ? codecs.placement.decode('k', op.value) : undefined,
  );
  t.like(values[0], { desiredState: 'loaded', machine: 'm1', epoch: EPOCH });
  t.like(values[1], { hash: unit('b.service').hash, epoch: EPOCH });
});

test('an inactive or destroyed unit loses its placement', (t) => {
  const v = view({
    machines: ['m1'],
    units: [unit('a.service', 'inactive')],
    placed: { 'a.service': ['m1'], 'gone.service': ['m1'] },
  });
  t.deepEqual(describe(decide(v).first).sort(), [
    'delete /t/placements/m1/a.service if mod=7',
    'delete /t/placements/m1/gone.service if mod=7',
  ]);
});

test('unscheduled records are written when the reasons change and cleared when not wanted', (t) => {
  const mars = unit('mars.service', 'launched', { MachineMetadata: 'region=mars' });
  const first = decide(view({ machines: ['m1'], units: [mars] }));
  t.deepEqual(describe(first.second), ['put /t/unscheduled/mars.service if absent']);
  const op = first.second[0];
  const record = op?.type === 'put' ? codecs.unscheduled.decode('k', op.value) : undefined;
  if (record === undefined) throw new Error('no record');
  t.like(record, { unit: 'mars.service', machines: 1, epoch: EPOCH });

  const same = decide(view({ machines: ['m1'], units: [mars], unscheduled: [record] }));
  t.deepEqual(same.second, [], 'same reasons: nothing written');
  const more = decide(view({ machines: ['m1', 'm2'], units: [mars], unscheduled: [record] }));
  t.deepEqual(describe(more.second), ['put /t/unscheduled/mars.service if mod=9']);
  const unwanted = decide(view({ machines: ['m1'], units: [], unscheduled: [record] }));
  t.deepEqual(describe(unwanted.second), ['delete /t/unscheduled/mars.service if mod=9']);
  t.false(sameReasons(record, { ...record, summary: 'other' }));
});

test('a unit whose file does not parse is neither placed nor stopped, and is reported', (t) => {
  const broken: Unit = {
    name: 'b.service',
    file: '[X-Fleet]\nBogus=1\n',
    hash: 'h',
    desiredState: 'launched',
  };
  const placed = view({ machines: ['m1'], units: [broken], placed: { 'b.service': ['m1'] } });
  t.deepEqual(
    placed.invalid.map((u) => u.name),
    ['b.service'],
  );
  t.false(placed.snapshot.placements.has('b.service'), 'its placement is hidden from the planner');
  const work = decide(placed);
  t.deepEqual([...work.first, ...work.second], [], 'running where it is: left alone, not reported');

  const unplaced = decide(view({ machines: ['m1'], units: [broken] }));
  t.deepEqual(describe(unplaced.second), ['put /t/unscheduled/b.service if absent']);
  const op = unplaced.second[0];
  const record = op?.type === 'put' ? codecs.unscheduled.decode('k', op.value) : undefined;
  t.regex(record?.summary ?? '', /does not parse: b\.service:2: /);
});

test('templates are never placed; their instances are', (t) => {
  const template = unit('web@.service');
  const instance: Unit = { ...template, name: 'web@1.service' };
  const work = decide(view({ machines: ['m1'], units: [template, instance] }));
  t.deepEqual(describe(work.second), ['put /t/placements/m1/web@1.service if absent']);
});

test('instances of a template that wait alike share one record under the template, numbers as ranges', (t) => {
  const template = unit('api@.service', 'inactive', { MaxPerMachine: '2' });
  const instances = Array.from({ length: 1_000 }, (_, i) => ({
    ...template,
    name: `api@${i + 1}.service`,
    desiredState: 'launched',
  }));
  const canary = { ...template, name: 'api@canary.service', desiredState: 'launched' };
  const work = decide(view({ machines: ['m1'], units: [template, ...instances, canary] }));
  const unscheduledOps = work.second.filter((op) => op.key.startsWith('/t/unscheduled/'));
  t.deepEqual(describe(unscheduledOps).sort(), [
    'put /t/unscheduled/api@.service if absent',
    'put /t/unscheduled/api@canary.service if absent',
  ]);
  const op = unscheduledOps.find((o) => o.key.endsWith('api@.service'));
  const shared = op?.type === 'put' ? codecs.unscheduled.decode('k', op.value) : undefined;
  // m1 takes two (MaxPerMachine=2): api@1 and api@10 in name order, so 998 wait.
  t.like(shared, { unit: 'api@.service', waiting: 998, machines: 1 });
  t.deepEqual(shared?.waitingRanges, [
    { first: 2, last: 9 },
    { first: 11, last: 1_000 },
  ]);
  t.regex(shared?.summary ?? '', /^0\/1 machines: 1 .*MaxPerMachine=2/);
});

test('per-instance pending records of the old layout are deleted once the template record covers them', (t) => {
  const template = unit('api@.service', 'inactive', { MachineMetadata: 'region=mars' });
  const instances = [1, 2, 3].map((i) => ({
    ...template,
    name: `api@${i}.service`,
    desiredState: 'launched',
  }));
  const old = instances.map((u): Unscheduled => ({
    unit: u.name,
    machines: 1,
    reasons: [{ reason: 'lack region=mars', machines: 1 }],
    summary: '0/1 machines: 1 lack region=mars',
    epoch: 1n,
    waiting: 0,
    waitingRanges: [],
  }));
  const work = decide(
    view({ machines: ['m1'], units: [template, ...instances], unscheduled: old }),
  );
  t.deepEqual(describe(work.second).sort(), [
    'delete /t/unscheduled/api@1.service if mod=9',
    'delete /t/unscheduled/api@2.service if mod=9',
    'delete /t/unscheduled/api@3.service if mod=9',
    'put /t/unscheduled/api@.service if absent',
  ]);
});

test('a unit with Port= is placed with its ports, and a placement missing them is rewritten in place with them', (t) => {
  const file = `${unitText()}\n[X-Service]\nPort=http\nPort=admin=9090\n`;
  const svc = (name: string): Unit => ({
    name,
    file,
    hash: parseUnit(name, file).hash,
    desiredState: 'launched',
  });
  const fresh = decide(view({ machines: ['m1'], units: [svc('a.service')] }));
  const put = fresh.second[0];
  const placed = put?.type === 'put' ? codecs.placement.decode('k', put.value) : undefined;
  const [http, admin] = placed?.ports ?? [];
  t.true(http !== undefined && http.number >= 20000 && http.number <= 32767 && !http.static);
  t.deepEqual(admin, { name: 'admin', number: 9090, static: true });

  const old = decide(
    view({ machines: ['m1'], units: [svc('b.service')], placed: { 'b.service': ['m1'] } }),
  );
  t.deepEqual(describe(old.first), ['put /t/placements/m1/b.service if mod=7']);
  t.deepEqual(old.second, []);
  const op = old.first[0];
  const value = op?.type === 'put' ? codecs.placement.decode('k', op.value) : undefined;
  t.is(value?.ports.length, 2);
  t.is(value?.hash, svc('b.service').hash);

  // A new file (a rolling update) keeps the ports the placement holds.
  const ports = value?.ports ?? [];
  const updated = decide(
    view({
      machines: ['m1'],
      units: [svc('b.service')],
      placed: { 'b.service': ['m1'] },
      placementValues: { 'b.service': { hash: 'old', ports } },
    }),
  );
  const next = updated.first[0];
  const kept = next?.type === 'put' ? codecs.placement.decode('k', next.value) : undefined;
  t.deepEqual(kept?.ports, ports);
  t.is(kept?.hash, svc('b.service').hash);
});
