/**
 * The agent's Logs gRPC service: the last N lines of a unit's output, then (follow) new lines
 * as they are written until the caller cancels; NOT_FOUND for units the agent does not have.
 */
import test from 'ava';
import { credentials, status, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import { LogsClient, type LogLine, type TailRequest } from '../../proto/flotilla/v1/logs.js';
import { openStore } from '../../store/index.js';
import { assertEventually, startEtcd, uniquePrefix, type EtcdServer } from '../../testkit/index.js';
import { DRIVERS } from './harness.js';
import {
  inProcessAgent,
  place,
  service,
  spawnAgent,
  waitRegistered,
  waitRunning,
} from './daemon-harness.js';

let etcd: EtcdServer;
test.before(async () => {
  etcd = await startEtcd();
});
test.after.always(async () => {
  await etcd?.stop();
});

function readAll(stream: ClientReadableStream<LogLine>): Promise<LogLine[]> {
  return new Promise((resolve, reject) => {
    const lines: LogLine[] = [];
    stream.on('data', (l: LogLine) => lines.push(l));
    stream.once('end', () => resolve(lines));
    stream.once('error', reject);
  });
}

function failure(stream: ClientReadableStream<LogLine>): Promise<ServiceError> {
  return new Promise((resolve, reject) => {
    stream.on('data', () => reject(new Error('unexpected line')));
    stream.once('error', (err: ServiceError) => resolve(err));
    stream.once('end', () => reject(new Error('ended without an error')));
  });
}

for (const driver of DRIVERS) {
  test.serial(`${driver}: Tail streams the last lines, then follows until cancelled`, async (t) => {
    const prefix = uniquePrefix('logs');
    const store = openStore({ endpoints: etcd.endpoint, prefix });
    t.teardown(() => store.close());
    const agent = await inProcessAgent(t, { endpoint: etcd.endpoint, prefix, driver });
    const client = new LogsClient(agent.logsAddress, credentials.createInsecure());
    t.teardown(() => client.close());
    const text = service(
      `ExecStart=/bin/sh -c 'echo line1; echo line2 >&2; echo line3; i=0; while :; do i=$((i+1)); echo tick$i; sleep 0.2; done'`,
    );
    await place(store, agent.machineId, 'chatty.service', text);
    await waitRunning(store, 'chatty.service');

    const tail = (req: Partial<TailRequest>) =>
      readAll(client.tail({ unit: 'chatty.service', follow: false, machine: '', ...req }));
    const all = await assertEventually(
      async () => {
        const lines = await tail({ lines: 1000 });
        return lines.filter((l) => l.text.startsWith('tick')).length >= 10 ? lines : false;
      },
      { message: 'the unit has written some ticks' },
    );
    const out = all.filter((l) => l.stream === 'stdout').map((l) => l.text);
    // Both streams arrive (their relative order is the runtime's business, not the agent's).
    for (const line of ['line1', 'line2', 'line3']) t.true(out.includes(line), line);
    t.true(
      all.some((l) => l.stream === 'agent' && /^started, main pid \d+$/.test(l.text)),
      'the agent notes its own events',
    );
    t.true(all.every((l) => l.time > 0n));

    const last2 = await tail({ lines: 2 });
    t.is(last2.length, 2);
    t.is((await tail({ lines: 0 })).length, 0);
    t.is((await tail({})).length, 10, 'ten lines by default');

    // Follow: no backlog, then lines as they come, until we cancel.
    const ticksBefore = (await tail({ lines: 1000 })).filter((l) =>
      l.text.startsWith('tick'),
    ).length;
    const stream = client.tail({ unit: 'chatty.service', lines: 0, follow: true, machine: '' });
    const followed: string[] = [];
    stream.on('data', (l: LogLine) => followed.push(l.text));
    const ended = new Promise<string>((resolve) => {
      stream.once('error', (err: ServiceError) => resolve(status[err.code]));
      stream.once('end', () => resolve('end'));
    });
    const seen = await assertEventually(
      () => (followed.filter((x) => x.startsWith('tick')).length >= 3 ? followed : false),
      {
        message: 'new lines arrive while following',
      },
    );
    const numbers = seen.filter((x) => x.startsWith('tick')).map((x) => Number(x.slice(4)));
    t.true(
      numbers.every((n, i) => i === 0 || n === (numbers[i - 1] ?? 0) + 1),
      `consecutive: ${numbers.join()}`,
    );
    t.true((numbers[0] ?? 0) > ticksBefore, 'following starts at the end, not the beginning');
    stream.cancel();
    t.is(await ended, 'CANCELLED');
  });
}

test.serial(
  'Tail says NOT_FOUND for a unit the agent does not have, INVALID_ARGUMENT for a bad name',
  async (t) => {
    const prefix = uniquePrefix('logs-nf');
    const agent = await inProcessAgent(t, { endpoint: etcd.endpoint, prefix, driver: 'process' });
    const client = new LogsClient(agent.logsAddress, credentials.createInsecure());
    t.teardown(() => client.close());
    const notFound = await failure(
      client.tail({ unit: 'nope.service', follow: true, machine: '' }),
    );
    t.is(notFound.code, status.NOT_FOUND);
    t.regex(notFound.details, /nope\.service/);
    const invalid = await failure(
      client.tail({ unit: '../etc/passwd', follow: false, machine: '' }),
    );
    t.is(invalid.code, status.INVALID_ARGUMENT);
  },
);

test.serial(
  'an agent whose Logs service would check no client exits non-zero saying which flags; with --allow-insecure-clients it starts',
  async (t) => {
    const setup = { endpoint: etcd.endpoint, prefix: uniquePrefix('logs-unchecked') };
    const refused = await spawnAgent(t, { ...setup, driver: 'process', insecureLogs: false });
    t.is(await refused.exited, '2', refused.output());
    // The first line is the reason (the usage text follows it).
    const reason = refused.output().split('\n')[0] ?? '';
    t.regex(reason, /^flotilla agent: a plaintext Logs service without --logs-token-file/);
    for (const flag of ['--logs-token-file', '--tls-client-ca-file', '--allow-insecure-clients'])
      t.true(reason.includes(flag), `names ${flag}: ${reason}`);
    const store = openStore({ endpoints: etcd.endpoint, prefix: setup.prefix });
    t.teardown(() => store.close());
    t.is(await store.get(store.keys.machine(refused.machineId)), undefined, 'it never registered');

    const waived = await spawnAgent(t, { ...setup, driver: 'process' });
    await waitRegistered(store, waived.machineId);
    await assertEventually(
      () => /allow-insecure-clients: the Logs service lets any client/.test(waived.output()),
      { message: 'it starts, warning that any client may read the logs' },
    );
    t.is(await waived.kill('SIGTERM'), '0');
  },
);
