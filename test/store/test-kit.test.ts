import test from 'ava';
import {
  assertEventually,
  etcdForFile,
  freePort,
  makeMachine,
  uniquePrefix,
  unitText,
} from '../../testkit/index.js';

const server = etcdForFile(test);

test.serial('startEtcd serves reads and writes, and keeps data across a restart', async (t) => {
  const prefix = uniquePrefix('kit');
  const client = server().client();
  await client.put(`${prefix}k`).value('v1');
  await server().restart();
  const value = await assertEventually(() => client.get(`${prefix}k`).string(), {
    message: 'etcd answers after restart',
  });
  t.is(value, 'v1');
});

test.serial('a killed etcd is gone from the process table', async (t) => {
  const pid = server().pid;
  t.truthy(pid);
  await server().kill('SIGKILL');
  t.throws(() => process.kill(pid ?? 0, 0));
  await server().restart();
  t.truthy(server().pid);
});

test('freePort returns a loopback port nothing listens on', async (t) => {
  const port = await freePort();
  t.true(port > 0 && port < 65536);
});

test('assertEventually returns the value once the condition holds, and reports the last error', async (t) => {
  let n = 0;
  t.is(await assertEventually(() => ++n >= 3 && n), 3);
  const err = await t.throwsAsync(
    assertEventually(
      () => {
        throw new Error('still broken');
      },
      { timeoutMs: 200, message: 'never' },
    ),
  );
  t.regex(err?.message ?? '', /never: not met within 200 ms.*still broken/);
});

test('uniquePrefix gives distinct slash-delimited prefixes', (t) => {
  const a = uniquePrefix('a b');
  t.regex(a, /^\/t-[0-9a-f]{8}-a-b\/$/);
  t.not(uniquePrefix('a b'), a);
});

test('factories build a default machine and a unit file with repeated keys', (t) => {
  const m = makeMachine({ metadata: { region: 'eu' }, capacity: { cpuMillicores: 1000n } });
  t.is(m.id.length, 32);
  t.is(m.capacity?.cpuMillicores, 1000n);
  t.is(m.capacity?.memoryBytes, 8n * 1024n ** 3n);
  t.is(m.driver, 'process');
  const text = unitText({ exec: '/bin/true', xfleet: { MachineMetadata: ['a=1', 'b=2'] } });
  t.is(
    text,
    '[Unit]\nDescription=test unit\n\n[Service]\nExecStart=/bin/true\n\n[X-Fleet]\nMachineMetadata=a=1\nMachineMetadata=b=2\n',
  );
});
