/**
 * The agent's pure reconciler: desired placements vs what runs -> tasks. Table tests for each
 * rule, and properties over random inputs for the safety rules (never stop what should run,
 * never start what is not placed here, one task per unit, same inputs same tasks).
 */
import test from 'ava';
import fc from 'fast-check';
import {
  computeTasks,
  type ActualUnit,
  type Connection,
  type DesiredUnit,
  type FileStatus,
  type ReconcileInput,
  type Task,
} from '../../agent/sync/reconcile-tasks.js';
import { parseUnit, type UnitDefinition } from '../../unit/index.js';
import { unitText } from '../../testkit/index.js';

const ONLINE: Connection = { disconnected: false, lastContactAt: 1_000, now: 1_500 };

function def(name: string, xfleet: Record<string, string> = {}): UnitDefinition {
  return parseUnit(name, unitText({ xfleet }));
}

function ok(name: string, xfleet: Record<string, string> = {}): FileStatus {
  return { kind: 'ok', def: def(name, xfleet) };
}

function placed(
  name: string,
  hash: string,
  file: FileStatus,
  state: 'loaded' | 'launched' = 'launched',
): DesiredUnit {
  return { name, hash, state, file };
}

function tasks(
  desired: DesiredUnit[],
  actual: ActualUnit[],
  extra: Partial<ReconcileInput> = {},
): Task[] {
  return computeTasks({ desired, actual, held: new Set(), connection: ONLINE, ...extra });
}

function kinds(list: Task[]): string[] {
  return list.map((t) =>
    t.type === 'stop' ? `stop:${t.name}:${t.reason}` : `${t.type}:${t.name}`,
  );
}

test('a new launched placement is started; a running one with its hash is left alone', (t) => {
  t.deepEqual(kinds(tasks([placed('a.service', 'h1', ok('a.service'))], [])), ['start:a.service']);
  t.deepEqual(
    tasks(
      [placed('a.service', 'h1', ok('a.service'))],
      [{ name: 'a.service', hash: 'h1', kind: 'running' }],
    ),
    [],
  );
});

test('a changed hash restarts the unit with the new definition', (t) => {
  const [task] = tasks(
    [placed('a.service', 'h2', ok('a.service'))],
    [{ name: 'a.service', hash: 'h1', kind: 'running' }],
  );
  t.like(task, { type: 'start', name: 'a.service', hash: 'h2', restart: true });
});

test('a unit no longer placed is stopped; a reported-only one is forgotten', (t) => {
  t.deepEqual(
    kinds(
      tasks(
        [],
        [
          { name: 'a.service', hash: 'h', kind: 'running' },
          { name: 'b.service', hash: 'h', kind: 'loaded' },
          { name: 'c.service', hash: 'h', kind: 'invalid' },
        ],
      ),
    ),
    ['stop:a.service:unplaced', 'forget:b.service', 'forget:c.service'],
  );
});

test('desired loaded: load once (stopping what runs), then nothing', (t) => {
  const d = [placed('a.service', 'h', ok('a.service'), 'loaded')];
  t.deepEqual(kinds(tasks(d, [{ name: 'a.service', hash: 'h', kind: 'running' }])), [
    'load:a.service',
  ]);
  t.deepEqual(kinds(tasks(d, [])), ['load:a.service']);
  t.deepEqual(tasks(d, [{ name: 'a.service', hash: 'h', kind: 'loaded' }]), []);
  // loaded -> launched starts it
  t.deepEqual(
    kinds(
      tasks(
        [placed('a.service', 'h', ok('a.service'))],
        [{ name: 'a.service', hash: 'h', kind: 'loaded' }],
      ),
    ),
    ['start:a.service'],
  );
});

test('an unparseable file fails the unit once, with the parser message', (t) => {
  const file: FileStatus = { kind: 'invalid', message: 'a.service:3: bad' };
  const [task] = tasks(
    [placed('a.service', 'h', file)],
    [{ name: 'a.service', hash: 'old', kind: 'running' }],
  );
  t.like(task, { type: 'fail', loadState: 'error', message: 'a.service:3: bad' });
  t.deepEqual(
    tasks([placed('a.service', 'h', file)], [{ name: 'a.service', hash: 'h', kind: 'invalid' }]),
    [],
  );
});

test('a missing file keeps what runs and reports not-found for what does not', (t) => {
  const missing: FileStatus = { kind: 'missing' };
  t.deepEqual(
    tasks([placed('a.service', 'h', missing)], [{ name: 'a.service', hash: 'h', kind: 'running' }]),
    [],
  );
  const [task] = tasks([placed('a.service', 'h', missing)], []);
  t.like(task, { type: 'fail', loadState: 'not-found' });
});

test('a file not fetched yet changes nothing', (t) => {
  const pending: FileStatus = { kind: 'pending' };
  t.deepEqual(
    tasks(
      [placed('a.service', 'h2', pending)],
      [{ name: 'a.service', hash: 'h1', kind: 'running' }],
    ),
    [],
  );
  t.deepEqual(tasks([placed('a.service', 'h2', pending)], []), []);
});

test('StopOnDisconnect: stopped once cut off that long, not before, and not restarted while held', (t) => {
  const d = [placed('a.service', 'h', ok('a.service', { StopOnDisconnect: '5s' }))];
  const running: ActualUnit[] = [{ name: 'a.service', hash: 'h', kind: 'running' }];
  const cut = (now: number): Connection => ({ disconnected: true, lastContactAt: 10_000, now });
  t.deepEqual(tasks(d, running, { connection: cut(14_999) }), []);
  t.deepEqual(kinds(tasks(d, running, { connection: cut(15_000) })), [
    'stop:a.service:disconnected',
  ]);
  t.deepEqual(tasks(d, [], { connection: cut(15_000) }), [], 'not started while cut off');
  t.deepEqual(tasks(d, [], { held: new Set(['a.service']) }), [], 'held until etcd is re-read');
  t.deepEqual(kinds(tasks(d, [])), ['start:a.service'], 'started again once released');
  // A unit without StopOnDisconnect keeps running however long the cut lasts.
  const plain = [placed('b.service', 'h', ok('b.service'))];
  const b: ActualUnit[] = [{ name: 'b.service', hash: 'h', kind: 'running' }];
  t.deepEqual(tasks(plain, b, { connection: cut(10_000_000) }), []);
});

// ---- properties ----

const NAMES = ['a.service', 'b.service', 'c.service', 'd.service', 'e.service'];
const HASHES = ['h1', 'h2'];
const DEFS = new Map(NAMES.map((n) => [n, def(n)]));

const fileArb: fc.Arbitrary<(name: string) => FileStatus> = fc.constantFrom(
  (name: string): FileStatus => ({ kind: 'ok', def: DEFS.get(name) ?? def(name) }),
  (): FileStatus => ({ kind: 'invalid', message: 'bad' }),
  (): FileStatus => ({ kind: 'missing' }),
  (): FileStatus => ({ kind: 'pending' }),
);

const inputArb: fc.Arbitrary<ReconcileInput> = fc
  .record({
    desired: fc.uniqueArray(
      fc.record({
        name: fc.constantFrom(...NAMES),
        hash: fc.constantFrom(...HASHES),
        state: fc.constantFrom<'loaded' | 'launched'>('loaded', 'launched'),
        file: fileArb,
      }),
      { selector: (d) => d.name, maxLength: NAMES.length },
    ),
    actual: fc.uniqueArray(
      fc.record({
        name: fc.constantFrom(...NAMES),
        hash: fc.constantFrom(...HASHES),
        kind: fc.constantFrom<ActualUnit['kind']>('running', 'loaded', 'invalid', 'not-found'),
      }),
      { selector: (a) => a.name, maxLength: NAMES.length },
    ),
  })
  .map(({ desired, actual }) => ({
    desired: desired.map((d) => ({ ...d, file: d.file(d.name) })),
    actual,
    held: new Set<string>(),
    connection: ONLINE,
  }));

test('property: at most one task per unit, and the same inputs give the same tasks', (t) => {
  fc.assert(
    fc.property(inputArb, (input) => {
      const first = computeTasks(input);
      const names = first.map((x) => x.name);
      return (
        new Set(names).size === names.length &&
        kinds(computeTasks(input)).join() === kinds(first).join()
      );
    }),
  );
  t.pass();
});

test('property: never starts a unit that is not placed here, never stops one that should run', (t) => {
  fc.assert(
    fc.property(inputArb, (input) => {
      const desired = new Map(input.desired.map((d) => [d.name, d]));
      const actual = new Map(input.actual.map((a) => [a.name, a]));
      for (const task of computeTasks(input)) {
        const d = desired.get(task.name);
        if (task.type === 'start' && (d === undefined || d.state !== 'launched')) return false;
        if (task.type === 'start' && d?.file.kind !== 'ok') return false;
        if (task.type === 'stop' && d !== undefined) return false; // connected: only unplaced
        const a = actual.get(task.name);
        const settled =
          d?.state === 'launched' &&
          d.file.kind === 'ok' &&
          a?.kind === 'running' &&
          a.hash === d.hash;
        if (settled) return false; // a unit that runs as placed gets no task at all
      }
      return true;
    }),
  );
  t.pass();
});

test('property: every unit the agent has that is not placed gets a stop or forget', (t) => {
  fc.assert(
    fc.property(inputArb, (input) => {
      const placedNames = new Set(input.desired.map((d) => d.name));
      const out = new Map(computeTasks(input).map((x) => [x.name, x.type]));
      return input.actual
        .filter((a) => !placedNames.has(a.name))
        .every((a) => out.get(a.name) === (a.kind === 'running' ? 'stop' : 'forget'));
    }),
  );
  t.pass();
});
