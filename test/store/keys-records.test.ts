import test from 'ava';
import { GRPCDeadlineExceededError, GRPCUnavailableError, EtcdError } from 'etcd3';
import {
  Batch,
  chunkOps,
  codecs,
  isRetryable,
  Keys,
  MAX_TXN_OPS,
  StoreError,
  toStoreError,
} from '../../store/index.js';
import { makeMachine } from '../../testkit/index.js';

test('keys live under the normalised prefix and parse back to their kind', (t) => {
  const keys = new Keys('/c1');
  t.is(keys.prefix, '/c1/');
  t.is(new Keys().prefix, '/flotilla/');
  t.is(keys.placement('m1', 'web@1.service'), '/c1/placements/m1/web@1.service');
  t.deepEqual(keys.parse(keys.placement('m1', 'web@1.service')), {
    kind: 'placement',
    machine: 'm1',
    name: 'web@1.service',
  });
  t.deepEqual(keys.parse(keys.unit('a.service')), { kind: 'unit', name: 'a.service' });
  t.deepEqual(keys.parse(keys.machine('m1')), { kind: 'machine', name: 'm1' });
  t.deepEqual(keys.parse(keys.machineMetadata('m1')), { kind: 'machine-metadata', name: 'm1' });
  t.deepEqual(keys.parse(keys.state('m1', 'a.service')), {
    kind: 'state',
    machine: 'm1',
    name: 'a.service',
  });
  t.deepEqual(keys.parse(keys.unscheduled('a.service')), {
    kind: 'unscheduled',
    name: 'a.service',
  });
  t.deepEqual(keys.parse(`${keys.election()}694d7`), { kind: 'election', name: '694d7' });
  t.is(keys.parse('/other/units/a.service'), undefined);
  t.is(keys.parse('/c1/placements/m1'), undefined);
  t.is(keys.parse('/c1/units/a/b'), undefined);
  // Malformed: a directory alone, an empty or extra segment, a trailing slash.
  for (const bad of [
    '/c1/units/',
    '/c1/election/',
    '/c1/placements/m1/',
    '/c1/placements//web@1.service',
    '/c1/placements/m1/web@1.service/',
    '/c1/placements/m1/web@1.service/x',
    '/c1/unit-states/m1/a.service/',
    '/c1/unit-endpoints/m1/api/web.service',
    '/c1/unit-endpoints/m1/api//http',
    '/c1/unit-endpoints/m1/api/web.service/http/',
  ])
    t.is(keys.parse(bad), undefined, bad);
});

test("a Global unit's copy has its own state key per machine, parsed back with the machine", (t) => {
  const keys = new Keys('/c1');
  t.is(keys.globalState('mon.service', 'm1'), '/c1/unit-states/m1/mon.service/global');
  t.deepEqual(keys.parse(keys.globalState('mon.service', 'm1')), {
    kind: 'state',
    name: 'mon.service',
    machine: 'm1',
    global: true,
  });
  t.not(keys.globalState('mon.service', 'm1'), keys.globalState('mon.service', 'm2'));
  t.is(keys.parse('/c1/unit-states/m1/mon.service/x'), undefined);
  t.is(keys.parse('/c1/unit-states/m1/mon.service/global/x'), undefined);
  t.is(keys.parse('/c1/unit-states/m1'), undefined);
  t.is(keys.parse('/c1/unit-states//mon.service'), undefined);
  t.throws(() => keys.globalState('mon.service', 'a/b'), { instanceOf: StoreError });
});

test("states and endpoints are keyed by machine first, so one prefix holds all of a machine's", (t) => {
  const keys = new Keys('/c1');
  t.is(keys.state('m1', 'web.service'), '/c1/unit-states/m1/web.service');
  t.is(
    keys.endpoint('api', 'm1', 'web.service', 'http'),
    '/c1/unit-endpoints/m1/api/web.service/http',
  );
  t.deepEqual(keys.parse(keys.endpoint('api', 'm1', 'web.service', 'http')), {
    kind: 'endpoint',
    machine: 'm1',
    service: 'api',
    name: 'web.service',
    port: 'http',
  });
  for (const key of [keys.state('m1', 'web.service'), keys.globalState('mon.service', 'm1')])
    t.true(key.startsWith(keys.statesOn('m1')), key);
  t.true(keys.endpoint('api', 'm1', 'web.service', 'http').startsWith(keys.endpointsOn('m1')));
  // A machine whose id extends another's is not under the other's prefix.
  t.false(keys.state('m10', 'web.service').startsWith(keys.statesOn('m1')));
  t.false(keys.endpoint('api', 'm10', 'w.service', 'http').startsWith(keys.endpointsOn('m1')));
});

test('keys of the earlier layout still parse, marked legacy, with what they name', (t) => {
  const keys = new Keys('/c1');
  t.is(keys.legacyState('web.service'), '/c1/states/web.service');
  t.deepEqual(keys.parse('/c1/states/web.service'), {
    kind: 'state',
    name: 'web.service',
    legacy: true,
  });
  t.deepEqual(keys.parse(keys.legacyGlobalState('mon.service', 'm1')), {
    kind: 'state',
    name: 'mon.service',
    machine: 'm1',
    global: true,
    legacy: true,
  });
  t.deepEqual(keys.parse('/c1/endpoints/api/m1/web.service/http'), {
    kind: 'endpoint',
    service: 'api',
    machine: 'm1',
    name: 'web.service',
    port: 'http',
    legacy: true,
  });
  t.is(
    keys.legacyEndpoint('api', 'm1', 'web.service', 'http'),
    '/c1/endpoints/api/m1/web.service/http',
  );
  t.is(keys.parse('/c1/states/mon.service/m1/x'), undefined);
  t.is(keys.parse('/c1/states/mon.service/'), undefined);
  t.is(keys.parse('/c1/states//m1'), undefined);
  t.is(keys.parse('/c1/endpoints/api/m1/web.service'), undefined);
});

test('a key segment with a slash is rejected instead of escaping its directory', (t) => {
  const keys = new Keys();
  const err = t.throws(() => keys.unit('../machines/x'), { instanceOf: StoreError });
  t.is(err?.code, 'invalid');
  t.throws(() => keys.placement('', 'a.service'), { instanceOf: StoreError });
});

test('records round-trip through their JSON form, 64-bit fields as strings', (t) => {
  const machine = makeMachine({ id: 'm1', startedAt: 2n ** 62n, metadata: { region: 'eu' } });
  const text = codecs.machine.encode(machine);
  t.regex(text, /"startedAt":"4611686018427387904"/);
  t.deepEqual(codecs.machine.decode('/k', text), machine);
  const placement = {
    unit: 'a.service',
    machine: 'm1',
    hash: 'h',
    epoch: 42n,
    desiredState: 'launched',
    ports: [{ name: 'http', number: 20001, static: false }],
  };
  t.deepEqual(
    codecs.placement.decode('/k', Buffer.from(codecs.placement.encode(placement))),
    placement,
  );
});

test('a value that is not the record its key implies is a corrupt StoreError naming the key', (t) => {
  for (const bad of ['not json', '[1]', '"s"', '{"epoch":"x1"}']) {
    const err = t.throws(() => codecs.placement.decode('/f/placements/m/a.service', bad), {
      instanceOf: StoreError,
    });
    t.is(err?.code, 'corrupt');
    t.is(err?.key, '/f/placements/m/a.service');
  }
});

test('a record whose fields have the wrong JSON types is corrupt; unknown fields are ignored', (t) => {
  for (const bad of ['{"name":5,"fileText":[]}', '{"file":["a"]}', '{"desired_state":true}']) {
    const err = t.throws(() => codecs.unit.decode('/f/units/a.service', bad), {
      instanceOf: StoreError,
    });
    t.is(err?.code, 'corrupt', bad);
    t.regex(err?.message ?? '', /is not a Unit: field \w+ is/);
  }
  const newer = codecs.unit.decode('/f/units/a.service', '{"name":"a.service","fromLater":[1]}');
  t.is(newer.name, 'a.service', 'a field this version does not know is skipped, not fatal');
  const machine = codecs.machine.decode('/f/machines/m', '{"id":"m","capacity":{"tasks":7}}');
  t.is(machine.capacity?.tasks, 7n, 'int64 fields may be JSON numbers as well as strings');
});

test('etcd3 and gRPC errors translate to stable codes, and only transient ones are retryable', (t) => {
  const unavailable = toStoreError(new GRPCUnavailableError('14 UNAVAILABLE: no connection'), '/k');
  t.is(unavailable.code, 'unavailable');
  t.is(unavailable.key, '/k');
  t.true(isRetryable(unavailable));
  t.is(toStoreError(new GRPCDeadlineExceededError('4 DEADLINE_EXCEEDED')).code, 'deadline');
  const compacted = toStoreError(
    new EtcdError('etcdserver: mvcc: required revision has been compacted'),
  );
  t.is(compacted.code, 'compacted');
  t.false(isRetryable(compacted));
  t.is(toStoreError(new EtcdError('etcdserver: requested lease not found')).code, 'lease-lost');
  t.is(toStoreError(new Error('boom')).code, 'internal');
  t.is(toStoreError(unavailable), unavailable);
  // A stream reset by an etcd going down is the connection going away, not a bug.
  const reset = new Error(
    '13 INTERNAL: Received RST_STREAM with code 2 triggered by internal client error',
  );
  t.is(toStoreError(reset).code, 'unavailable');
});

test('etcd refusing a request as too large is too-large, saying what to do; a large answer is too-large in its own words', (t) => {
  for (const raw of [
    new EtcdError('3 INVALID_ARGUMENT: etcdserver: request is too large'),
    new Error('8 RESOURCE_EXHAUSTED: grpc: received message larger than max (5242880 vs. 2097152)'),
  ]) {
    const err = toStoreError(raw, '/f/units/big.service');
    t.is(err.code, 'too-large');
    t.regex(err.message, /too large \(key \/f\/units\/big\.service\)/);
    t.regex(
      err.message,
      /--max-request-bytes \(1\.5 MiB by default\); change fewer or smaller units/,
    );
  }
  // grpc-js's own words: this client refusing an answer, not etcd refusing a write.
  const answer = Object.assign(
    new Error('8 RESOURCE_EXHAUSTED: Received message larger than max (5 vs 4)'),
    { code: 8 },
  );
  const read = toStoreError(answer);
  t.is(read.code, 'too-large', 'a listing halves its page on this');
  t.notRegex(read.message, /max-request-bytes/);
});

test('batches split into transactions etcd accepts, one fewer op when nested conditions count', (t) => {
  const plain = new Batch();
  const guarded = new Batch();
  for (let i = 0; i < 300; i++) {
    plain.put(`/k/${i}`, 'v');
    guarded.putIfAbsent(`/k/${i}`, 'v');
  }
  t.deepEqual(
    chunkOps(plain.ops).map((c) => c.length),
    [MAX_TXN_OPS, MAX_TXN_OPS, 300 - 2 * MAX_TXN_OPS],
  );
  t.deepEqual(
    chunkOps(guarded.ops).map((c) => c.length),
    [127, 127, 46],
  );
  const err = t.throws(() => plain.delete('/k/1'), { instanceOf: StoreError });
  t.is(err?.code, 'invalid');
});
