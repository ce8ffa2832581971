/**
 * End to end, issue 30's "etcd from inside a unit" and "logs on port 4701" bullets on a netns
 * cluster with runc agents, as `flotilla cluster up` sets it up: etcd with auth (a user per
 * machine, one for the schedulers), credentials 0600 in a 0700 directory, a firewall rule in
 * each machine's namespace, and agents that serve logs only to requests the schedulers sign.
 */
import anyTest, { type TestFn } from 'ava';
import { credentials, status, type ServiceError } from '@grpc/grpc-js';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { agentCredentialFile, credentialPath } from '../../deploy/cluster/credentials.js';
import { LogsClient, type LogLine } from '../../proto/flotilla/v1/logs.js';
import { openStore, parseEtcdUser, type Store } from '../../store/index.js';
import { assertEventually } from '../../testkit/index.js';
import { clusterForFile, isRunningView } from './e2e-kit.js';

const { serial, cluster: c } = clusterForFile(anyTest as TestFn, {
  name: 'ten1',
  net: 246,
  agents: 2,
});

/** A store as agent n's etcd user (what a stolen agent credential could do). */
function storeAsAgent(n: number): Store {
  const record = c().record;
  const agent = record.agents.find((a) => a.index === n);
  if (agent === undefined) throw new Error(`no agent ${n}`);
  const auth = parseEtcdUser(
    readFileSync(credentialPath(record, agentCredentialFile(agent)), 'utf8'),
  );
  return openStore({ endpoints: [record.etcd.endpoint], prefix: record.prefix, auth });
}

async function journal(unit: string, until: string): Promise<string> {
  return assertEventually(
    async () => {
      const run = await c().flotctl(['journal', '--lines', '50', unit]);
      return run.stdout.includes(until) ? run.stdout : false;
    },
    { timeoutMs: 60_000, intervalMs: 500, message: `${unit} printed ${until}` },
  );
}

serial(
  'a unit cannot connect to etcd or to an agent, and the schedulers still relay its journal',
  async (t) => {
    const record = c().record;
    const etcd = new URL(record.etcd.agentEndpoint);
    const other = record.agents[1];
    if (other === undefined) throw new Error('two agents expected');
    const probe = [
      `busybox nc -w 3 ${etcd.hostname} ${etcd.port} </dev/null && echo etcd-reached || echo etcd-refused`,
      `busybox wget -q -T 3 -O - http://${etcd.host}/version && echo etcd-http-reached || echo etcd-http-refused`,
      `busybox nc -w 3 ${other.ip} ${record.agentPort} </dev/null && echo logs-reached || echo logs-refused`,
      'echo probe-done',
      'exec sleep 1000',
    ].join('; ');
    const file = await c().unitFile(
      'probe.service',
      [
        '[Service]',
        `ExecStart=/bin/sh -c '${probe}'`,
        '[X-Fleet]',
        `MachineID=${record.agents[0]?.machineId ?? ''}`,
        '',
      ].join('\n'),
    );
    await c().ok(['start', '--timeout', '60s', file]);
    await c().waitUnits('probe runs', (u) => isRunningView(u.get('probe.service')));
    // journal goes flotctl -> scheduler -> agent: the agent accepted the scheduler's signature.
    const out = await journal('probe.service', 'probe-done');
    for (const line of ['etcd-refused', 'etcd-http-refused', 'logs-refused'])
      t.true(out.includes(line), out);
    // The same connections from the agent's side of the namespace (the host here) work: the
    // rule fences the units' cgroup, not the machine.
    const res = await fetch(`${record.etcd.agentEndpoint}/version`);
    t.is(res.status, 200);
    await c().ok(['destroy', 'probe.service']);
  },
);

serial('without credentials etcd refuses a write, however it is reached', async (t) => {
  const anonymous = openStore({ endpoints: [c().record.etcd.endpoint], prefix: c().record.prefix });
  t.teardown(() => anonymous.close());
  const err = await t.throwsAsync(anonymous.put(anonymous.keys.unit('evil.service'), 'x'));
  t.regex(String(err?.message), /user name is empty|permission denied|auth/i);
});

serial(
  "a machine's etcd user, with which its agent registers and reports, is denied other machines' records, states and endpoints, unit files, placements and the election",
  async (t) => {
    const store = storeAsAgent(1);
    t.teardown(() => store.close());
    const [self, other] = c().record.agents;
    if (self === undefined || other === undefined) throw new Error('two agents expected');
    const own = await store.get(store.keys.machine(self.machineId));
    t.truthy(own, 'its own machine record is readable');
    t.true((own?.value.length ?? 0) > 0);
    await store.list(store.keys.placementsOn(self.machineId));
    const denied = async (what: string, op: Promise<unknown>): Promise<void> => {
      const e = await t.throwsAsync(op, undefined, what);
      t.regex(String(e?.message), /permission denied/i, what);
    };
    await denied("another machine's record", store.put(store.keys.machine(other.machineId), '{}'));
    await denied('a unit file', store.put(store.keys.unit('evil.service'), 'x'));
    await denied(
      'a placement',
      store.put(store.keys.placement(self.machineId, 'evil.service'), '{}'),
    );
    await denied(
      "another machine's placements",
      store.list(store.keys.placementsOn(other.machineId)),
    );
    await denied('the election', store.list(store.keys.dir('election')));
    await denied(
      "another machine's unit state",
      store.put(store.keys.state(other.machineId, 'probe.service'), '{}'),
    );
    await denied(
      "another machine's endpoint",
      store.put(store.keys.endpoint('api', other.machineId, 'api@1.service', 'http'), '{}'),
    );
    await denied(
      "a unit's state under the old key",
      store.put(store.keys.legacyState('x.service'), '{}'),
    );
    // Its own directory is its own: what its agent writes there, it may write.
    const mine = store.keys.state(self.machineId, 'tenancy-probe.service');
    await store.put(mine, '{}');
    t.true(await store.delete(mine));
  },
);

serial(
  "an unauthenticated client on an agent's Logs port is refused; credentials are 0600 in 0700",
  async (t) => {
    const agent = c().record.agents[0];
    if (agent === undefined) throw new Error('an agent expected');
    const client = new LogsClient(agent.logsListen, credentials.createInsecure());
    t.teardown(() => client.close());
    const err = await new Promise<ServiceError>((resolve, reject) => {
      const s = client.tail({ unit: 'probe.service', lines: 10, follow: false, machine: '' });
      s.on('data', (l: LogLine) => reject(new Error(`a line leaked: ${l.text}`)));
      s.once('error', resolve);
      s.once('end', () => reject(new Error('ended without an error')));
    });
    t.is(err.code, status.UNAUTHENTICATED);
    const mode = async (p: string): Promise<number> => (await stat(p)).mode & 0o777;
    t.is(await mode(credentialPath(c().record, '')), 0o700);
    for (const file of [
      'root.etcd',
      'scheduler.etcd',
      'agent-token',
      'secrets.key',
      agentCredentialFile(agent),
    ]) {
      t.is(await mode(credentialPath(c().record, file)), 0o600, file);
    }
  },
);

serial(
  "a unit reads the secret it names at /run/secrets; a machine's etcd user reads only sealed records and cannot write one",
  async (t) => {
    const record = c().record;
    const value = `e2e-${randomBytes(12).toString('hex')}`;
    const secretFile = await c().unitFile('e2e-db.value', value);
    await c().ok(['secret', 'create', 'e2e-db', secretFile]);
    const file = await c().unitFile(
      'keyed.service',
      [
        '[Service]',
        'Secret=e2e-db',
        `ExecStart=/bin/sh -c 'echo "sum=$(sha256sum < /run/secrets/e2e-db | cut -c1-64)"; exec sleep 1000'`,
        '[X-Fleet]',
        `MachineID=${record.agents[0]?.machineId ?? ''}`,
        '',
      ].join('\n'),
    );
    await c().ok(['start', '--timeout', '60s', file]);
    const digest = createHash('sha256').update(value).digest('hex');
    const out = await journal('keyed.service', `sum=${digest}`);
    t.false(out.includes(value));
    const store = storeAsAgent(2);
    t.teardown(() => store.close());
    const sealed = (await store.get(store.keys.secret('e2e-db')))?.value.toString() ?? '';
    t.regex(sealed, /"sealed"/, 'the machine role reads secrets/');
    t.false(sealed.includes(value) || sealed.includes(Buffer.from(value).toString('base64')));
    const err = await t.throwsAsync(store.put(store.keys.secret('e2e-db'), '{}'));
    t.regex(String(err?.message), /permission denied/i);
    await c().ok(['destroy', 'keyed.service']);
    await c().ok(['secret', 'rm', 'e2e-db']);
  },
);
