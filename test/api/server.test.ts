import {
  credentials,
  Server,
  ServerCredentials,
  status,
  type ClientReadableStream,
  type ServerWritableStream,
  type ServiceError,
} from '@grpc/grpc-js';
import test, { type ExecutionContext } from 'ava';
import {
  LogsClient,
  LogsService,
  type LogLine,
  type TailRequest,
} from '../../proto/flotilla/v1/logs.js';
import { Placement } from '../../proto/flotilla/v1/records.js';
import { API_SERVICES } from '../../scheduler/api/index.js';
import { codecs, openStore, type Store } from '../../store/index.js';
import {
  assertEventually,
  etcdForFile,
  freePort,
  makeMachine,
  makeUnit,
  reflectedServices,
  unitText,
} from '../../testkit/index.js';
import { failure, isServiceError, startApi } from './api-kit.js';

const server = etcdForFile(test);

test('server reflection lists the Flotilla services', async (t) => {
  const api = await startApi(t, server());
  const names = await reflectedServices(api.server.address, credentials.createInsecure());
  for (const name of API_SERVICES) t.true(names.includes(name), `${name} in ${names.join(',')}`);
  t.true(names.includes('flotilla.v1.Units'));
});

test('every call is UNAVAILABLE, naming etcd, when etcd cannot be reached', async (t) => {
  const port = await freePort(); // nothing listens here
  const store = openStore({ endpoints: `http://127.0.0.1:${port}`, callTimeoutMs: 1_000 });
  const api = await startApi(t, server(), { store });
  const calls: Promise<unknown>[] = [
    api.list({}),
    api.get('a.service'),
    api.submit({ files: [{ name: 'a.service', contents: unitText() }] }),
    api.setDesired(['a.service'], 'launched'),
    api.scale('web', 2),
    api.listMachines(),
    api.drain('m1', true),
    api.plan({ names: ['a.service'] }),
  ];
  for (const call of calls) {
    const err = await failure(call);
    t.is(err.code, status.UNAVAILABLE, err.details);
    t.true(err.details.includes(`etcd at http://127.0.0.1:${port} is unreachable`), err.details);
  }
  const watchErr = await new Promise<ServiceError>((resolve, reject) => {
    const s = api.watch({});
    s.once('error', (err) => (isServiceError(err) ? resolve(err) : reject(err)));
  });
  t.is(watchErr.code, status.UNAVAILABLE);
});

/** A stand-in agent serving Logs.Tail: `lines` lines, then more every 50 ms when following. */
async function startAgent(t: ExecutionContext) {
  const requests: TailRequest[] = [];
  let cancelled = 0;
  const agent = new Server();
  agent.addService(LogsService, {
    tail: (call: ServerWritableStream<TailRequest, LogLine>) => {
      requests.push(call.request);
      const n = call.request.lines ?? 10;
      for (let i = 0; i < n; i++) {
        call.write({ time: BigInt(i), stream: 'stdout', text: `${call.request.unit} line ${i}` });
      }
      if (!call.request.follow) return void call.end();
      const timer = setInterval(() => call.write({ time: 0n, stream: 'stdout', text: 'more' }), 50);
      call.on('cancelled', () => {
        cancelled += 1;
        clearInterval(timer);
      });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    agent.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) =>
      err === null ? resolve(p) : reject(err),
    ),
  );
  t.teardown(() => agent.forceShutdown());
  return { endpoint: `127.0.0.1:${port}`, requests, cancelledCount: () => cancelled };
}

async function placeOnMachine(store: Store, unit: string, machine: string, endpoint?: string) {
  await store.putRecord(codecs.unit, store.keys.unit(unit), makeUnit({ name: unit }));
  if (endpoint !== undefined) {
    const m = makeMachine({ id: machine, agentEndpoint: endpoint });
    await store.putRecord(codecs.machine, store.keys.machine(machine), m);
  }
  await store.putRecord(
    codecs.placement,
    store.keys.placement(machine, unit),
    Placement.fromPartial({ unit, machine }),
  );
}

function readAll(stream: ClientReadableStream<LogLine>): Promise<LogLine[]> {
  return new Promise((resolve, reject) => {
    const lines: LogLine[] = [];
    stream.on('data', (l: LogLine) => lines.push(l));
    stream.once('end', () => resolve(lines));
    stream.once('error', reject);
  });
}

test('Logs.Tail is relayed to the agent of the unit machine', async (t) => {
  const api = await startApi(t, server());
  const agent = await startAgent(t);
  await placeOnMachine(api.store, 'web.service', 'm1', agent.endpoint);
  const logs = new LogsClient(api.server.address, credentials.createInsecure());
  t.teardown(() => logs.close());
  const lines = await readAll(
    logs.tail({ unit: 'web.service', lines: 3, follow: false, machine: '' }),
  );
  t.deepEqual(
    lines.map((l) => l.text),
    ['web.service line 0', 'web.service line 1', 'web.service line 2'],
  );
  t.deepEqual(agent.requests, [{ unit: 'web.service', lines: 3, follow: false, machine: 'm1' }]);

  // Following: cancelling at the API cancels the agent's stream too.
  const follow = logs.tail({ unit: 'web.service', lines: 0, follow: true, machine: '' });
  follow.on('error', () => undefined);
  await new Promise<void>((resolve) => follow.once('data', () => resolve()));
  follow.cancel();
  await assertEventually(() => agent.cancelledCount() === 1, { message: 'agent stream cancelled' });
  t.pass();
});

test('Logs.Tail: NOT_FOUND for unplaced units, UNAVAILABLE for unreachable agents', async (t) => {
  const api = await startApi(t, server());
  const logs = new LogsClient(api.server.address, credentials.createInsecure());
  t.teardown(() => logs.close());
  const tail = (unit: string) => readAll(logs.tail({ unit, follow: false, machine: '' }));
  await api.submit({ files: [{ name: 'idle.service', contents: unitText() }] });
  t.is((await failure(tail('ghost.service'))).code, status.NOT_FOUND);
  const idle = await failure(tail('idle.service'));
  t.is(idle.code, status.NOT_FOUND);
  t.regex(idle.details, /not placed/);

  const deadPort = await freePort();
  await placeOnMachine(api.store, 'dead.service', 'm-dead', `127.0.0.1:${deadPort}`);
  const dead = await failure(tail('dead.service'));
  t.is(dead.code, status.UNAVAILABLE);
  t.regex(dead.details, /agent of machine m-dead .* cannot be reached/);

  // Placed on a machine whose agent is gone (no machine record): the placement is still found.
  await placeOnMachine(api.store, 'lost.service', 'm-lost');
  const lost = await assertEventually(async () => {
    const err = await failure(tail('lost.service'));
    if (err.code !== status.UNAVAILABLE) throw new Error(`${err.code} ${err.details}`);
    return err;
  });
  t.regex(lost.details, /machine m-lost .* not connected/);
});

test('close() ends open watch streams and stops listening', async (t) => {
  const api = await startApi(t, server());
  const stream = api.watch({});
  await new Promise<void>((resolve) => stream.once('metadata', () => resolve()));
  const ended = new Promise<void>((resolve) => stream.once('status', () => resolve()));
  const started = Date.now();
  await api.server.close();
  await ended;
  t.true(Date.now() - started < 5_000, `close took ${Date.now() - started} ms`);
  const err = await failure(api.list({}));
  t.is(err.code, status.UNAVAILABLE);
});

test('Logs.Tail with a machine reads that copy of a Global unit; an unknown copy is NOT_FOUND', async (t) => {
  const api = await startApi(t, server());
  const first = await startAgent(t);
  const second = await startAgent(t);
  await placeOnMachine(api.store, 'mon.service', 'm-a1', first.endpoint);
  await placeOnMachine(api.store, 'mon.service', 'm-b2', second.endpoint);
  const logs = new LogsClient(api.server.address, credentials.createInsecure());
  t.teardown(() => logs.close());
  const tail = (machine: string) =>
    readAll(logs.tail({ unit: 'mon.service', lines: 1, follow: false, machine }));
  t.is((await tail('m-b')).length, 1);
  t.is(second.requests.length, 1, 'the prefix m-b names the second machine');
  t.is(first.requests.length, 0);
  await tail('');
  t.is(first.requests.length, 1, 'no machine: the first machine by id');
  const missing = await failure(tail('m-zz'));
  t.is(missing.code, status.NOT_FOUND);
  t.is(missing.details, 'mon.service is not placed on a machine m-zz');
  const ambiguous = await failure(tail('m-'));
  t.is(ambiguous.code, status.INVALID_ARGUMENT);
});
