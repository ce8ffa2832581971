/**
 * The routing mesh and DNS inside a real agent (in-process, process driver, real etcd): the
 * machine record says where DNS answers and which published ports the machine cannot serve;
 * a taken port leaves the agent up and every other service served.
 */
import test from 'ava';
import { createServer } from 'node:net';
import { parseAgentArgs } from '../../agent/options.js';
import { UsageError } from '../../daemon/options.js';
import type { Machine } from '../../proto/flotilla/v1/records.js';
import { codecs } from '../../store/index.js';
import { assertEventually, etcdForFile, freePort, uniquePrefix } from '../../testkit/index.js';
import { inProcessAgent, storeFor, waitRegistered } from '../agent/daemon-harness.js';
import { ask, backend, putEndpoint, putService } from './services-kit.js';

const server = etcdForFile(test);

const HOST = {
  env: {},
  readFile: () => '',
  cpuMillicores: () => 1000,
  memoryBytes: () => 1024 ** 3,
  publicIp: () => '10.0.0.7',
};

test('the mesh is on by default; --no-mesh, --mesh-listen-address, --dns-listen and --dns-recursor are read', (t) => {
  const parse = (...argv: string[]) => {
    const parsed = parseAgentArgs(['--machine-id=m1', '--allow-insecure-clients', ...argv], HOST);
    if (parsed.help) throw new Error('help');
    return parsed.options;
  };
  t.is(parse().mesh, true);
  t.is(parse().dnsListen, undefined);
  t.is(parse('--no-mesh').mesh, false);
  const o = parse(
    '--mesh-listen-address=10.0.0.7',
    '--dns-listen=0.0.0.0:53',
    '--dns-recursor=1.1.1.1:53',
  );
  t.is(o.meshListenAddress, '10.0.0.7');
  t.is(o.dnsListen, '0.0.0.0:53');
  t.is(o.dnsRecursor, '1.1.1.1:53');
  t.throws(() => parse('--dns-listen=53'), { instanceOf: UsageError, message: /HOST:PORT/ });
  t.throws(() => parse('--mesh', '--no-mesh'), { instanceOf: UsageError });
  t.throws(() => parse('--mesh-listen-address=any'), { instanceOf: UsageError });
});

test('an agent serves published ports, says where its DNS is, and reports a port it cannot have', async (t) => {
  const prefix = uniquePrefix('agent-services');
  const store = storeFor(t, server(), prefix);
  const dnsPort = await freePort();
  const [free, taken] = [await freePort(), await freePort()];
  const squatter = createServer();
  await new Promise<void>((resolve) =>
    squatter.listen({ host: '127.0.0.1', port: taken }, resolve),
  );
  t.teardown(() => new Promise<void>((resolve) => squatter.close(() => resolve())));
  const agent = await inProcessAgent(t, {
    endpoint: server().endpoint,
    prefix,
    driver: 'process',
    args: [`--dns-listen=0.0.0.0:${dnsPort}`, '--mesh-listen-address=127.0.0.1'],
  });
  await waitRegistered(store, agent.machineId);
  const record = async (): Promise<Machine | undefined> => {
    const kv = await store.get(store.keys.machine(agent.machineId));
    return kv === undefined ? undefined : codecs.machine.decode(kv.key, kv.value);
  };
  t.is(
    (await record())?.dnsEndpoint,
    `127.0.0.1:${dnsPort}`,
    'the wildcard is the advertised address',
  );

  const b = await backend(t, 'web-1');
  await putEndpoint(store, 'web', 'm1', 'web@1.service', b.port);
  await putService(store, 'web', free);
  await putService(store, 'blocked', taken);
  await assertEventually(async () => (await ask(free)) === 'web-1', { message: 'web served' });
  const problems = await assertEventually(async () => {
    const p = (await record())?.meshProblems ?? [];
    return p.length > 0 ? p : false;
  });
  t.is(problems.length, 1);
  t.is(problems[0]?.service, 'blocked');
  t.is(problems[0]?.port, taken);
  t.regex(problems[0]?.error ?? '', /EADDRINUSE/);
  // Still up: still registered, still serving.
  t.is(await ask(free), 'web-1');
  // The port freed, the mesh takes it (retried every 10 s) and the record is cleared.
  await new Promise<void>((resolve) => squatter.close(() => resolve()));
  await assertEventually(async () => ((await record())?.meshProblems ?? [1]).length === 0, {
    timeoutMs: 20_000,
  });
  t.pass();
});
