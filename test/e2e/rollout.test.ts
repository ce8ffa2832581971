/**
 * End to end: health checks and rolling updates on a netns cluster of runc agents, driven
 * through bin/flotctl. A rollout of 4 instances one at a time never has more than one down
 * (counted from the event stream, every state change seen) and ends on the new hash; a file
 * whose health check fails stops after the first batch and rolls back by itself; a SIGKILLed
 * leader's successor finishes a rollout; HealthOnFailure=restart restarts an unhealthy unit.
 */
import anyTest, { type TestFn } from 'ava';
import { spawn } from 'node:child_process';
import { Event } from '../../proto/flotilla/v1/events.js';
import { signalRecorded } from '../../deploy/cluster/index.js';
import { assertEventually } from '../../testkit/index.js';
import { clusterForFile, FLOTCTL, SETTLE_MS, type ListUnitsRow } from './e2e-kit.js';

const { serial, cluster: c } = clusterForFile(anyTest as TestFn, { name: 'hcroll', net: 235 });

/** A template whose version shows in its file (so each version has its own hash). */
function webFile(version: string, health = 'test -e /proc/1'): string {
  return `[Unit]
Description=web ${version}

[Service]
ExecStart=/bin/sh -c 'trap "exit 0" TERM; echo ${version}; while true; do sleep 0.2; done'
TimeoutStopSec=5s
HealthCmd=${health}
HealthInterval=500ms
HealthRetries=2
`;
}

const WEB = ['web@1.service', 'web@2.service', 'web@3.service', 'web@4.service'];

/** `flotctl -o json list-units GLOB`, by unit. */
async function statuses(glob: string): Promise<Map<string, ListUnitsRow>> {
  const run = await c().ok(['-o', 'json', 'list-units', glob]);
  const list = JSON.parse(run.stdout) as ListUnitsRow[];
  return new Map(list.map((s) => [s.unit, s]));
}

/** Running on `hash`, healthy. */
function isUp(s: ListUnitsRow | undefined, hash: string): boolean {
  return (
    s?.hash === hash &&
    s.runningHash === hash &&
    s.active === 'active' &&
    s.sub === 'running' &&
    s.health === 'healthy'
  );
}

/** The hash `flotctl` gives a template after submit (read back from the cluster). */
async function templateHash(name: string): Promise<string> {
  const run = await c().ok(['-o', 'json', 'status', '-n', '0', name]);
  const [s] = JSON.parse(run.stdout) as { unit?: { hash?: string } }[];
  return s?.unit?.hash ?? '';
}

/** Collects `flotctl -o json watch --unit GLOB` events until stopped. */
function watchEvents(glob: string): { events: Event[]; stop: () => Promise<void> } {
  const events: Event[] = [];
  const child = spawn(process.execPath, [FLOTCTL, '-o', 'json', 'watch', '--unit', glob], {
    env: { ...process.env, FLOTCTL_ENDPOINT: c().endpoint },
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  let rest = '';
  child.stdout.on('data', (chunk: Buffer) => {
    const lines = (rest + chunk.toString('utf8')).split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) {
      if (line.trim() !== '') events.push(Event.fromJSON(JSON.parse(line)));
    }
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    events,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** The most instances down at once over a stream of state events, all up at its start. */
function mostDown(events: readonly Event[]): number {
  const down = new Set<string>();
  let most = 0;
  for (const e of events) {
    if (e.kind !== 'state') continue;
    const s = e.state;
    const up = e.type === 'put' && s?.activeState === 'active' && s.subState === 'running';
    if (up) down.delete(e.name);
    else down.add(e.name);
    most = Math.max(most, down.size);
  }
  return most;
}

async function startWeb(version: string): Promise<string> {
  const path = await c().unitFile('web@.service', webFile(version));
  await c().ok(['submit', '--replace', path]);
  await c().ok(['start', '--timeout', '90s', ...WEB]);
  const hash = await templateHash('web@.service');
  await assertEventually(
    async () => {
      const s = await statuses('web@*');
      return WEB.every((n) => isUp(s.get(n), hash));
    },
    { timeoutMs: SETTLE_MS, intervalMs: 500, message: `4 instances healthy on ${version}` },
  );
  return hash;
}

serial(
  '4 instances with --parallelism 1: never more than one down, all end on the new hash',
  async (t) => {
    const v1 = await startWeb('v1');
    const watch = watchEvents('web@*');
    await new Promise((resolve) => setTimeout(resolve, 1_000)); // the watch is open
    const v2File = await c().unitFile('web@.service', webFile('v2'));
    const run = await c().flotctl(['update', '--parallelism', '1', '--monitor', '2s', v2File]);
    await watch.stop();
    t.is(run.code, 0, run.stdout + run.stderr);
    t.regex(run.stdout, /4\/4 updated/);
    const v2 = await templateHash('web@.service');
    t.not(v2, v1);
    const s = await statuses('web@*');
    for (const n of WEB) t.true(isUp(s.get(n), v2), `${n} runs healthy on the new hash`);
    const down = mostDown(watch.events);
    t.log(`${watch.events.length} events; at most ${down} instance(s) down at once`);
    t.true(
      watch.events.some((e) => e.kind === 'rollout'),
      'watch shows the rollout',
    );
    t.true(down >= 1, 'the instances did restart');
    t.true(down <= 1, `at most one instance down at once (saw ${down})`);
    const status = await c().ok(['rollout', 'status', 'web@.service']);
    t.regex(status.stdout, /completed/);
  },
);

serial('a new file whose health check fails rolls back after the first batch', async (t) => {
  const before = await templateHash('web@.service');
  const watch = watchEvents('web@*');
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const bad = await c().unitFile('web@.service', webFile('v3', 'echo "no such page"; exit 1'));
  const run = await c().flotctl([
    'update',
    '--parallelism',
    '1',
    '--monitor',
    '2s',
    '--failure-action',
    'rollback',
    bad,
  ]);
  t.is(run.code, 1, run.stdout + run.stderr);
  t.regex(run.stderr, /rolled back/);
  const settled = await assertEventually(
    async () => {
      const s = await statuses('web@*');
      return WEB.every((n) => isUp(s.get(n), before)) ? s : false;
    },
    { timeoutMs: SETTLE_MS, intervalMs: 500, message: 'every instance healthy on the old hash' },
  );
  await watch.stop();
  t.is(await templateHash('web@.service'), before, 'the template is back on its old file');
  t.is(settled.size, 4);
  // Only the first batch ever ran the bad file.
  const bad3 = new Set(
    watch.events
      .filter((e) => e.kind === 'state' && e.state !== undefined && e.state.hash !== before)
      .map((e) => e.name),
  );
  t.is(bad3.size, 1, `instances that ran the bad file: ${[...bad3].join(', ')}`);
  const unhealthy = watch.events.filter(
    (e) => e.kind === 'state' && e.state?.health === 'unhealthy',
  );
  t.true(unhealthy.length > 0, 'watch shows the health change');
});

serial('the leader SIGKILLed mid-rollout: its successor finishes the rollout', async (t) => {
  const v4File = await c().unitFile('web@.service', webFile('v4'));
  await c().ok(['update', '--no-block', '--parallelism', '1', '--monitor', '3s', v4File]);
  const v4 = await templateHash('web@.service');
  await assertEventually(
    async () => {
      const s = await statuses('web@*');
      return WEB.filter((n) => isUp(s.get(n), v4)).length >= 1;
    },
    { timeoutMs: SETTLE_MS, intervalMs: 300, message: 'the first instance is updated' },
  );
  const leader = await assertEventually(async () => (await c().leader()) ?? false, {
    message: 'a leader',
  });
  const i = Number(/-scheduler-(\d+)$/.exec(leader.name)?.[1] ?? '0');
  const victim = c().process(`scheduler-${i}`);
  const status = await c().ok(['rollout', 'status', 'web@.service']);
  t.regex(status.stdout, /running/, 'still running when the leader dies');
  t.true(signalRecorded(victim, 'SIGKILL'), `killed ${victim.name}`);
  c().useApi(c().record.apiAddresses[i === 1 ? 1 : 0] ?? '');
  await assertEventually(
    async () => {
      const run = await c().flotctl(['rollout', 'status', 'web@.service']);
      return /completed/.test(run.stdout);
    },
    { timeoutMs: 120_000, intervalMs: 1_000, message: 'the new leader completes the rollout' },
  );
  const s = await statuses('web@*');
  for (const n of WEB) t.true(isUp(s.get(n), v4), `${n} on the new hash`);
});

serial(
  'an agent SIGKILLed mid-rollout: its instances move and the rollout completes',
  async (t) => {
    const v5File = await c().unitFile('web@.service', webFile('v5'));
    await c().ok(['update', '--no-block', '--parallelism', '1', '--monitor', '3s', v5File]);
    const v5 = await templateHash('web@.service');
    const first = await assertEventually(
      async () => {
        const s = await statuses('web@*');
        return WEB.some((n) => isUp(s.get(n), v5)) ? s : false;
      },
      { timeoutMs: SETTLE_MS, intervalMs: 300, message: 'the first instance is updated' },
    );
    // The victim: a machine running an instance that is still on the old file.
    const old = WEB.find((n) => !isUp(first.get(n), v5)) ?? '';
    const machine = first.get(old)?.machine ?? '';
    const agent = c().process(`agent-${c().agentIndexOf(machine)}`);
    t.true(signalRecorded(agent, 'SIGKILL'), `killed ${agent.name}`);
    await assertEventually(
      async () =>
        /completed/.test((await c().flotctl(['rollout', 'status', 'web@.service'])).stdout),
      { timeoutMs: 180_000, intervalMs: 1_000, message: 'the rollout completes' },
    );
    const s = await statuses('web@*');
    for (const n of WEB) {
      t.true(isUp(s.get(n), v5), `${n} on the new hash`);
      t.not(s.get(n)?.machine, machine, `${n} left the dead machine`);
    }
  },
);

serial('flotctl rollback returns every instance to the previous file', async (t) => {
  const status = await c().ok(['-o', 'json', 'rollout', 'status', 'web@.service']);
  const previous = (JSON.parse(status.stdout) as { rollout: { fromHash: string } }).rollout
    .fromHash;
  const run = await c().flotctl(['rollback', 'web@.service']);
  t.is(run.code, 0, run.stdout + run.stderr);
  t.regex(run.stdout, /rolled-back/);
  t.is(await templateHash('web@.service'), previous);
  const s = await statuses('web@*');
  for (const n of WEB) t.true(isUp(s.get(n), previous), `${n} back on the previous hash`);
});

serial(
  'HealthOnFailure=restart restarts an unhealthy unit; list-units and status show health',
  async (t) => {
    const flaky = await c().unitFile(
      'sick.service',
      `[Service]
ExecStart=/bin/sh -c 'trap "exit 0" TERM; while true; do sleep 0.2; done'
HealthCmd=echo "backend down"; exit 1
HealthInterval=500ms
HealthRetries=2
HealthOnFailure=restart
`,
    );
    await c().ok(['start', '--timeout', '90s', flaky]);
    const restarted = await assertEventually(
      async () => {
        const s = (await statuses('sick.service')).get('sick.service');
        return (s?.restarts ?? 0) >= 2 ? s : false;
      },
      { timeoutMs: SETTLE_MS, intervalMs: 500, message: 'restarted twice' },
    );
    t.true((restarted?.restarts ?? 0) >= 2);
    const list = await c().ok(['list-units', '--fields', 'unit,health', 'sick.service']);
    t.regex(list.stdout, /^UNIT\s+HEALTH\n/);
    t.regex(list.stdout, /sick\.service\s+(starting|unhealthy)/);
    const status = await c().ok(['status', '-n', '0', 'sick.service']);
    t.regex(status.stdout, /Health:/);
    t.regex(status.stdout, /exit 1 in \d+(\.\d+)?(ms|s): backend down/);
    await c().ok(['destroy', 'sick.service']);
  },
);
