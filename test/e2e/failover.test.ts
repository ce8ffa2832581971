/**
 * End to end: failures. A SIGKILLed agent's units (and only those) move and run again within
 * about the lease TTL; an etcd restart and a SIGKILL of the leading scheduler stop no unit
 * (same machine, same pid, the process still alive). Agents' lease TTL is 4 s here.
 */
import anyTest, { type TestFn } from 'ava';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { restartProcess, signalRecorded } from '../../deploy/cluster/index.js';
import { assertEventually, sleep } from '../../testkit/index.js';
import { clusterForFile, EXAMPLES, LEASE_TTL_SECONDS, type UnitView } from './e2e-kit.js';

const { serial, cluster: c } = clusterForFile(anyTest as TestFn, { name: 'e2efo', net: 202 });

const IDLE = `[Unit]
Description=Does nothing, for failover tests

[Service]
ExecStart=/bin/sh -c 'while true; do sleep 1; done'
`;

const UNITS = [...Array.from({ length: 6 }, (_, i) => `idle@${i + 1}.service`), 'hello.service'];

const running = (u: UnitView | undefined): boolean =>
  u !== undefined && u.active === 'active' && u.sub === 'running' && u.pid > 0;

/** Every unit in `names` runs, on the same machine with the same live pid as in `before`. */
function unchanged(before: Map<string, UnitView>, now: Map<string, UnitView>, names: string[]) {
  return names.every((n) => {
    const a = before.get(n);
    const b = now.get(n);
    return running(b) && b?.machine === a?.machine && b?.pid === a?.pid;
  });
}

serial('SIGKILL of an agent moves exactly its units, which run again', async (t) => {
  const idle = await c().unitFile('idle@.service', IDLE);
  await c().ok(['submit', idle]);
  await c().ok(['start', '--timeout', '90s', ...UNITS.filter((u) => u !== 'hello.service')]);
  await c().ok(['start', '--timeout', '90s', join(EXAMPLES, 'hello.service')]);
  const before = await c().waitUnits('seven units running', (u) =>
    UNITS.every((n) => running(u.get(n))),
  );

  // The victim: the machine with the most units.
  const count = new Map<string, number>();
  for (const n of UNITS) {
    const m = before.get(n)?.machine ?? '';
    count.set(m, (count.get(m) ?? 0) + 1);
  }
  const victim = [...count.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? '';
  const moved = UNITS.filter((n) => before.get(n)?.machine === victim);
  const stayed = UNITS.filter((n) => !moved.includes(n));
  t.true(moved.length > 0 && stayed.length > 0);
  const agent = c().process(`agent-${c().agentIndexOf(victim)}`);

  const killedAt = Date.now();
  t.true(signalRecorded(agent, 'SIGKILL'));
  const after = await c().waitUnits("the victim's units run elsewhere", (u) =>
    moved.every((n) => running(u.get(n)) && u.get(n)?.machine !== victim),
  );
  const seconds = (Date.now() - killedAt) / 1000;
  t.log(
    `units of the killed machine ran again after ${seconds.toFixed(1)} s (lease TTL ${LEASE_TTL_SECONDS} s, goal ${LEASE_TTL_SECONDS + 5} s)`,
  );
  t.true(unchanged(before, after, stayed), 'nothing else moved or restarted');
  t.true(seconds < 45, `moved within a generous bound (${seconds} s)`);

  // The killed machine is listed as lost, with what moved, and not as unknown.
  const short = victim.slice(0, 8);
  const listed = await assertEventually(
    async () => {
      const r = await c().ok(['list-machines', '--no-legend', '--fields', 'machine,state']);
      const row = r.stdout.split('\n').find((l) => l.startsWith(short)) ?? '';
      if (!row.includes(`${moved.length} of ${moved.length} unit`)) throw new Error(r.stdout);
      return row;
    },
    { timeoutMs: 30_000, message: 'list-machines shows the killed machine as lost' },
  );
  const n = moved.length;
  t.regex(listed, new RegExp(`^${short}\\.\\.\\.\\s+lost \\d+s ago, ${n} of ${n} units? moved$`));
  const units = await c().flotctl(['list-units', '--machine', short]);
  t.is(units.code, 0, units.stderr);
  t.regex(
    units.stderr,
    new RegExp(
      `^WARNING: machine ${victim} is lost: lost \\d+s ago .*${n} of its ${n} units? moved\\n$`,
    ),
  );

  // The machine comes back: its agent stops the stale copies and nothing moves back.
  await restartProcess(c().dir, agent.name);
  await c().refresh();
  await sleep(3000);
  const settled = await c().units();
  t.true(unchanged(after, settled, UNITS), 'a returning machine takes nothing back');
});

serial('an etcd restart and a SIGKILL of the leading scheduler stop no unit', async (t) => {
  const before = await c().waitUnits('all running', (u) => UNITS.every((n) => running(u.get(n))));
  for (const n of UNITS) t.true(existsSync(`/proc/${before.get(n)?.pid}`), `${n}'s process runs`);

  await restartProcess(c().dir, 'etcd');
  await c().refresh();
  // Longer than the lease TTL: had a lease been lost, its units would have moved by now.
  await sleep((LEASE_TTL_SECONDS + 3) * 1000);
  const afterEtcd = await c().waitUnits('unchanged after the etcd restart', (u) =>
    unchanged(before, u, UNITS),
  );
  t.true(unchanged(before, afterEtcd, UNITS));

  const leader = await assertEventually(async () => (await c().leader()) ?? false, {
    message: 'a leader is elected',
  });
  const i = Number(/-scheduler-(\d+)$/.exec(leader.name)?.[1] ?? '0');
  const victim = c().process(`scheduler-${i}`);
  const survivor = c().record.apiAddresses[i === 1 ? 1 : 0] ?? '';
  t.true(signalRecorded(victim, 'SIGKILL'), `killed ${victim.name}`);
  c().useApi(survivor);
  const next = await assertEventually(
    async () => {
      const l = await c().leader();
      return l !== undefined && l.name !== leader.name ? l : false;
    },
    { timeoutMs: 30_000, message: 'another scheduler takes over' },
  );
  t.not(next.name, leader.name);
  await sleep(3000);
  const afterKill = await c().units();
  t.true(unchanged(before, afterKill, UNITS), 'same machines, same pids');
  for (const n of UNITS) t.true(existsSync(`/proc/${afterKill.get(n)?.pid}`), `${n} still runs`);

  // The new leader schedules: a new unit starts.
  await c().ok(['start', '--timeout', '90s', 'idle@7.service']);
  await c().waitUnits('idle@7 runs', (u) => running(u.get('idle@7.service')));
});
