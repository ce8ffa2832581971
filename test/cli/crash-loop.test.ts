/**
 * A unit in a restart loop, on a real agent (process driver) behind the real API: flotctl's
 * default list-units columns show its restarts and health verdict, status says why it last
 * restarted, and a crash loop that hits systemd's start limit ends `failed` with a message
 * that says so.
 */
import test from 'ava';
import { inProcessAgent, place } from '../agent/daemon-harness.js';
import { assertEventually, etcdForFile } from '../../testkit/index.js';
import { startTestApi, type TestApi } from './cli-kit.js';

const server = etcdForFile(test);

async function withAgent(t: Parameters<typeof startTestApi>[0]): Promise<{
  api: TestApi;
  machine: string;
}> {
  const api = await startTestApi(t, server());
  const agent = await inProcessAgent(t, {
    endpoint: server().endpoint,
    prefix: api.store.keys.prefix,
    driver: 'process',
  });
  await agent.registered();
  return { api, machine: agent.machineId };
}

/** The unit's row of the default `flotctl list-units`, once `row` matches it. */
async function listedRow(api: TestApi, unit: string, row: RegExp): Promise<string> {
  return assertEventually(
    async () => {
      const r = await api.run(['list-units', '--no-legend', '--full']);
      const line = r.stdout.split('\n').find((l) => l.startsWith(`${unit} `)) ?? '';
      if (!row.test(line)) throw new Error(`list-units shows ${JSON.stringify(line)}`);
      return line;
    },
    { timeoutMs: 60_000, intervalMs: 500, message: `${unit}: ${row}` },
  );
}

test('a crash loop ends failed at the start limit; list-units and status show restarts and why', async (t) => {
  const { api, machine } = await withAgent(t);
  await place(
    api.store,
    machine,
    'crash.service',
    '[Service]\nExecStart=/bin/false\nRestart=always\nRestartSec=100ms\n',
  );
  const header = await api.run(['list-units']);
  t.regex(header.stdout, /^UNIT\s+MACHINE\s+ACTIVE\s+SUB\s+HEALTH\s+RESTARTS\n/);
  await listedRow(api, 'crash.service', /^crash\.service\s+\S+\s+failed\s+failed\s+-\s+5$/);
  const status = await api.run(['status', '-n', '0', 'crash.service']);
  t.is(status.code, 0, status.stderr);
  t.regex(
    status.stdout,
    /^ {3}Restarts: +5 \(last: ExecStart=\/bin\/false \(line 2\) exited with status 1\)$/m,
  );
  t.regex(
    status.stdout,
    /^ {4}Message: +start limit hit: 6 starts within \S+ \(more than StartLimitBurst=5 in StartLimitIntervalSec=10s\); last failure: ExecStart=\/bin\/false \(line 2\) exited with status 1; fix the unit, then flotctl stop and flotctl start it$/m,
  );
});

test('a unit restarted by its failing health check shows its restarts, its verdict and why', async (t) => {
  const { api, machine } = await withAgent(t);
  await place(
    api.store,
    machine,
    'hc.service',
    [
      '[Unit]',
      'StartLimitBurst=1000',
      '[Service]',
      "ExecStart=/bin/sh -c 'while true; do sleep 0.1; done'",
      'HealthCmd=/bin/false',
      'HealthInterval=300ms',
      'HealthRetries=2',
      'HealthOnFailure=restart',
      '',
    ].join('\n'),
  );
  await listedRow(
    api,
    'hc.service',
    /^hc\.service\s+\S+\s+(active\s+running|activating\s+auto-restart|deactivating\s+stop)\s+(starting|unhealthy)\s+([2-9]|\d\d+)$/,
  );
  const status = await api.run(['status', '-n', '0', 'hc.service']);
  t.regex(
    status.stdout,
    /^ {3}Restarts: +\d+ \(last: unhealthy, health check failed 2 times in a row \(last: exit 1\); HealthOnFailure=restart\)$/m,
  );
  t.regex(status.stdout, /^ {5}Health: +(starting|unhealthy)/m);
});
