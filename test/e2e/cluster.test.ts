/**
 * End to end: `bin/flotilla` as a user runs it. `cluster up` as a child process (two agents:
 * ap/ssd worker and eu/hdd edge), Global units on every worker and on a worker that joins
 * later (`cluster add-agent`), a unit no machine fits (status says why) until one joins, and
 * `cluster down` leaving nothing on the host.
 */
import anyTest, { type TestFn } from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findLeftovers, FLOTILLA_BIN, isRunning } from '../../deploy/cluster/index.js';
import { readRecord } from '../../deploy/cluster/state.js';
import { assertEventually, freePorts } from '../../testkit/index.js';
import { leaseNet, type NetLease } from '../../testkit/net-lease.js';
import {
  CAN_RUN,
  E2ECluster,
  EXAMPLES,
  isRunningView,
  LEASE_TTL_SECONDS,
  runNode,
} from './e2e-kit.js';

const test = anyTest as TestFn<unknown>;
const serial = CAN_RUN ? test.serial : test.serial.skip;

// Network 204 and the name e2ecl, unless another test run on this host holds them.
let NAME = 'e2ecl';
let NET = 204;
let lease: NetLease | undefined;
let dir = '';
let cluster: E2ECluster | undefined;

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flotilla-e2e-cli-'));
  if (CAN_RUN) {
    lease = await leaseNet(NAME, NET);
    ({ name: NAME, net: NET } = lease);
  }
});

test.after.always(async (t) => {
  const left = await cluster?.stop();
  if (left !== undefined && left.length > 0) t.log(`left behind: ${left.join(', ')}`);
  await lease?.release();
});

function c(): E2ECluster {
  if (cluster === undefined) throw new Error('the cluster did not start');
  return cluster;
}

const flotilla = (args: readonly string[]) => runNode(FLOTILLA_BIN, args);

test('flotilla --version, --help and usage errors (exit 2)', async (t) => {
  const version = await flotilla(['--version']);
  t.is(version.code, 0);
  t.regex(version.stdout, /^flotilla \d+\.\d+\.\d+/);
  const help = await flotilla(['--help']);
  t.is(help.code, 0);
  t.regex(help.stdout, /scheduler[\s\S]*agent[\s\S]*cluster/);
  t.is((await flotilla(['nope'])).code, 2);
  t.is((await flotilla(['cluster', 'sideways'])).code, 2);
  t.is((await flotilla(['cluster', 'up', '--agents', 'many'])).code, 2);
  t.is((await flotilla(['agent', '--no-such-flag'])).code, 2);
  t.is((await flotilla(['scheduler', '--no-such-flag'])).code, 2);
});

test("flotilla cluster COMMAND --help prints that command's own help", async (t) => {
  for (const [command, usage] of [
    ['up', 'Usage: flotilla cluster up [flags]'],
    ['down', 'Usage: flotilla cluster down [--dir DIR] [--purge]'],
    ['status', 'Usage: flotilla cluster status [--dir DIR]'],
    ['add-agent', 'Usage: flotilla cluster add-agent [--dir DIR] [--metadata K=V,...]'],
    ['restart', 'Usage: flotilla cluster restart NAME [--dir DIR]'],
  ] as const) {
    const help = await flotilla(['cluster', command, '--help']);
    t.is(help.code, 0, help.stderr);
    t.true(help.stdout.startsWith(`${usage}\n`), `${command}: ${help.stdout}`);
    t.false(help.stdout.includes('Commands:'), `${command} --help is not the whole cluster help`);
  }
  const all = await flotilla(['cluster', '--help']);
  t.regex(all.stdout, /^Usage: flotilla cluster <up\|down\|status\|add-agent\|restart>/);
});

serial(
  'cluster up starts etcd, two schedulers and the agents, and says how to use them',
  async (t) => {
    const [etcdPort, peerPort, api1, api2, http1, http2] = await freePorts(6);
    const up = await flotilla([
      'cluster',
      'up',
      '--dir',
      dir,
      '--name',
      NAME,
      '--net',
      String(NET),
      '--agents',
      '2',
      '--agent-metadata',
      'region=ap,zone=ap-1,role=worker,disk=ssd',
      '--agent-metadata',
      'region=eu,zone=eu-1,role=edge,disk=hdd',
      '--etcd-port',
      String(etcdPort),
      '--etcd-peer-port',
      String(peerPort),
      '--api-ports',
      `${api1},${api2}`,
      '--http-ports',
      `${http1},${http2}`,
      '--agent-lease-ttl',
      `${LEASE_TTL_SECONDS}s`,
    ]);
    if ((await readRecord(dir)) !== undefined) cluster = await E2ECluster.attach(dir);
    t.is(up.code, 0, up.stderr);
    t.true(up.stdout.includes(`export FLOTCTL_ENDPOINT=127.0.0.1:${api1}`), up.stdout);
    t.regex(up.stdout, /list-machines/);
    t.true(up.stdout.includes(`  console    http://127.0.0.1:${http1}/ui/\n`), up.stdout);
    for (const port of [http1, http2]) {
      const res = await fetch(`http://127.0.0.1:${port}/api/v1/machines`, {
        signal: AbortSignal.timeout(20_000),
      });
      t.is(res.status, 200, `scheduler HTTP listener on ${port}`);
    }

    const status = await assertEventually(
      async () => {
        const r = await flotilla(['cluster', 'status', '--dir', dir]);
        if (!/ leads; all 2 in sync/.test(r.stdout)) throw new Error(r.stdout + r.stderr);
        return r;
      },
      { timeoutMs: 30_000, message: 'status shows the leading scheduler and both in sync' },
    );
    t.is(status.code, 0, status.stdout);
    for (const p of ['etcd', 'scheduler-1', 'scheduler-2', 'agent-1', 'agent-2']) {
      t.regex(status.stdout, new RegExp(`^${p}\\s+running`, 'm'));
    }
    t.regex(
      status.stdout,
      new RegExp(
        `^schedulers: ${NAME}-scheduler-[12] leads; all 2 in sync with etcd \\(flotctl list-schedulers\\)$`,
        'm',
      ),
    );
    const machines = await c().ok(['list-machines', '--no-legend']);
    t.is(machines.stdout.trim().split('\n').length, 2);

    // Each agent is its own host: its namespace, its address, loopback up.
    const lo = execFileSync('ip', ['-n', `flot-${NAME}-1`, 'link', 'show', 'lo'], {
      encoding: 'utf8',
    });
    t.regex(lo, /[<,]UP[,>]/);
    const addr = execFileSync('ip', ['-n', `flot-${NAME}-2`, '-o', 'addr', 'show', 'eth0'], {
      encoding: 'utf8',
    });
    t.true(addr.includes(c().record.agents[1]?.ip ?? '?'));

    const again = await flotilla(['cluster', 'up', '--dir', dir]);
    t.is(again.code, 1, 'a second up on a running cluster refuses');
    t.regex(again.stderr, /running/);
  },
);

serial(
  'node-monitor runs on every worker; db waits with a reason while no machine fits',
  async (t) => {
    await c().ok([
      'start',
      '--no-block',
      join(EXAMPLES, 'node-monitor.service'),
      join(EXAMPLES, 'db.service'),
    ]);
    const worker = c().machineOf(1);
    await assertEventually(
      async () =>
        (await c().placementsOf('node-monitor.service')).join() === worker &&
        (await c().runsContainer(worker, 'node-monitor.service')),
      { timeoutMs: 60_000, message: 'node-monitor runs on the one worker' },
    );
    t.false(await c().runsContainer(c().machineOf(2), 'node-monitor.service'), 'not on the edge');

    const waiting = await c().waitUnits(
      'db is unscheduled',
      (u) => (u.get('db.service')?.unscheduled ?? '') !== '',
    );
    t.is(waiting.get('db.service')?.machine, '');
    const status = await c().flotctl(['status', 'db.service']);
    t.regex(status.stdout, /0\/2 machines/, status.stdout);
    t.regex(status.stdout, /region|disk/, 'status names what the machines lack');
  },
);

serial('a worker that joins later gets node-monitor, and db lands on it (us, ssd)', async (t) => {
  const add = await flotilla([
    'cluster',
    'add-agent',
    '--dir',
    dir,
    '--metadata',
    'region=us,zone=us-1,role=worker,disk=ssd',
  ]);
  t.is(add.code, 0, add.stderr);
  await c().refresh();
  const joined = c().machineOf(3);
  const units = await c().waitUnits(
    'db runs on the new machine',
    (u) => u.get('db.service')?.sub === 'running',
  );
  t.is(units.get('db.service')?.machine, joined);
  await assertEventually(
    async () =>
      (await c().placementsOf('node-monitor.service')).length === 2 &&
      (await c().runsContainer(joined, 'node-monitor.service')),
    { timeoutMs: 60_000, message: 'node-monitor runs on the new worker too' },
  );
  t.deepEqual(await c().placementsOf('node-monitor.service'), [c().machineOf(1), joined].sort());
  const copies = await assertEventually(
    async () => {
      const listed = await c().copies('node-monitor.service');
      if (listed.length !== 2 || !listed.every(isRunningView)) {
        throw new Error(JSON.stringify(listed));
      }
      return listed;
    },
    { timeoutMs: 60_000, message: 'list-units shows each copy running on its own machine' },
  );
  t.deepEqual(
    copies.map((u) => u.machine),
    [c().machineOf(1), joined].sort(),
  );
  const rows = await c().ok(['list-units', '--no-legend', '--fields', 'unit,sub', 'node-monitor*']);
  t.is(rows.stdout, 'node-monitor.service  running\nnode-monitor.service  running\n');
});

serial(
  "each machine has its own hostname, its namespace's name: a unit on every machine says so; runc names containers as the docs do",
  async (t) => {
    const unit = await c().unitFile(
      'hostname-probe.service',
      `[Service]\nExecStart=/bin/sh -c 'while true; do echo "hello from $(hostname)"; sleep 1; done'\n\n[X-Fleet]\nGlobal=true\n`,
    );
    await c().ok(['start', '--no-block', unit]);
    for (const agent of c().record.agents) {
      const id = agent.machineId;
      await assertEventually(
        async () => {
          const r = await c().flotctl([
            'journal',
            '-n',
            '1',
            '--machine',
            id,
            'hostname-probe.service',
          ]);
          if (!r.stdout.includes(`hello from flot-${NAME}-${agent.index}\n`))
            throw new Error(r.stdout + r.stderr);
        },
        { timeoutMs: 60_000, message: `the unit on agent ${agent.index} prints its own hostname` },
      );
      const runc = execFileSync('runc', ['list', '-q'], { encoding: 'utf8' });
      t.true(runc.split('\n').includes(`flotilla-${id}-hostname-probe.service`), runc);
    }
    const status = await c().flotctl(['status', '-n', '0', 'hostname-probe.service']);
    t.regex(
      status.stdout,
      new RegExp(`Container:  flotilla-${c().machineOf(1)}-hostname-probe\\.service`),
    );
    await c().ok(['destroy', 'hostname-probe.service']);
  },
);

serial(
  'cluster down leaves no process, namespace, bridge, container, cgroup or mount',
  async (t) => {
    const record = await readRecord(dir);
    if (record === undefined) throw new Error('no record');
    const down = await flotilla(['cluster', 'down', '--dir', dir]);
    t.is(down.code, 0, down.stderr);
    t.deepEqual(await findLeftovers(record), []);
    for (const p of record.processes) t.false(await isRunning(p), `${p.name} stopped`);
    t.false(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).includes(`flot-${NAME}-`));
    t.false(
      execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).includes(`flotbr${NET}`),
    );
    const containers = execFileSync('runc', ['list', '-q'], { encoding: 'utf8' });
    for (const a of record.agents)
      t.false(containers.includes(a.machineId), `no container of ${a.index}`);
    const status = await flotilla(['cluster', 'status', '--dir', dir]);
    t.is(status.code, 3, 'status: nothing runs');
    t.regex(status.stdout, /^agent-1\s+stopped/m);
    await flotilla(['cluster', 'down', '--dir', dir, '--purge']);
  },
);
