/**
 * The CPU-quota harness (testkit/cpu-quota.ts) on the real cgroup v1 `cpu` controller: a
 * process under it gets no more than its share of a core and the kernel says it throttled
 * it, children follow, two quotas never share a group, bad input is refused before anything
 * is made, and release leaves no group behind, even with processes still inside.
 */
import anyTest, { type TestFn } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CPU_CGROUP_ROOT,
  CpuQuota,
  CpuQuotaError,
  cpuQuotaFromEnv,
  sweepStaleQuotas,
} from '../../testkit/cpu-quota.js';

const test = anyTest as TestFn;
const CAN_RUN = process.getuid?.() === 0 && existsSync(join(CPU_CGROUP_ROOT, 'cpu.cfs_quota_us'));
const serial = CAN_RUN ? test.serial : test.serial.skip;

/** Children still running when a test ends are killed by its teardown. */
function track(t: { teardown(fn: () => void): void }, child: ChildProcess): ChildProcess {
  t.teardown(() => void child.kill('SIGKILL'));
  return child;
}

function exited(child: ChildProcess): Promise<{ code: number | null; out: string }> {
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (out = (out + s).slice(-4096)));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, out })));
}

async function cgroupOf(pid: number): Promise<string> {
  const text = await readFile(`/proc/${pid}/cgroup`, 'utf8');
  return /^\d+:(?:[^:]*,)?cpu(?:,[^:]*)?:(.*)$/m.exec(text)?.[1] ?? '';
}

async function ourGroups(): Promise<string[]> {
  return (await readdir(CPU_CGROUP_ROOT)).filter((n) => n.startsWith(`flotquota-`));
}

/** Spins for `ms` of wall time and prints the CPU time it got, in ms. */
const BURN = `const t = Date.now(); while (Date.now() - t < ${1500}); const u = process.cpuUsage(); console.log((u.user + u.system) / 1000)`;

serial(
  'a process under a quota gets no more than its share of a core, and the kernel throttled it',
  async (t) => {
    // 0.05 of a core (1 ms in every 20): less than a spinning process gets even on a machine
    // loaded by other runs, so the limit shows whatever the load.
    const quota = await CpuQuota.create({ fraction: 0.05, label: 'test' });
    t.teardown(() => quota.release());
    const t0 = Date.now();
    const child = track(
      t,
      spawn(...spawnArgs(await quota.prefix('burn'), [process.execPath, '-e', BURN])),
    );
    const { code, out } = await exited(child);
    const wallMs = Date.now() - t0;
    t.is(code, 0);
    const cpuMs = Number(out.trim());
    const stats = await quota.stats('burn');
    t.log(
      `${wallMs} ms from spawn to exit got ${cpuMs.toFixed(0)} ms of CPU; throttled ${stats.throttled} of ${stats.periods} periods`,
    );
    t.true(cpuMs <= 0.05 * wallMs + 40, `at most about 5% of a core: ${cpuMs} ms in ${wallMs} ms`);
    t.true(stats.throttled > 10, 'the kernel held it back');
  },
);

serial('node -e 0 takes longer at half a core (figures logged)', async (t) => {
  const quota = await CpuQuota.create({ fraction: 0.5, label: 'test' });
  t.teardown(() => quota.release());
  const startup = async (prefix: string[]) => {
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = process.hrtime.bigint();
      await exited(spawn(...spawnArgs(prefix, [process.execPath, '-e', '0'])));
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    return times.sort((a, b) => a - b)[2] ?? 0;
  };
  const free = await startup([]);
  const slow = await startup(await quota.prefix('startup'));
  const stats = await quota.stats('startup');
  t.log(
    `node -e 0: median ${free.toFixed(0)} ms without a quota, ${slow.toFixed(0)} ms at 0.5 of a core; throttled ${stats.throttled} of ${stats.periods} periods`,
  );
  // Node starts on several threads, over 10 ms of CPU in a 20 ms period: the quota bites.
  t.true(stats.periods > 0, 'it ran in its group');
});

serial('children forked after the process joined stay in its group', async (t) => {
  const quota = await CpuQuota.create({ fraction: 0.5, label: 'test' });
  t.teardown(() => quota.release());
  const child = track(
    t,
    spawn(
      ...spawnArgs(await quota.prefix('parent'), ['/bin/sh', '-c', 'sleep 30 & echo $!; wait']),
    ),
  );
  const pid = await new Promise<number>((resolve) =>
    child.stdout?.setEncoding('utf8').once('data', (s: string) => resolve(Number(s.trim()))),
  );
  t.teardown(() => void process.kill(pid, 'SIGKILL'));
  const group = quota.path.slice(CPU_CGROUP_ROOT.length);
  t.is(await cgroupOf(child.pid ?? 0), `${group}/parent`);
  t.is(await cgroupOf(pid), `${group}/parent`, 'the forked child too');
  const limit = await readFile(join(quota.path, 'parent', 'cpu.cfs_quota_us'), 'utf8');
  t.is(limit.trim(), '10000', 'half of a 20 ms period');
});

serial(
  'release moves processes still inside back to the root and removes every group',
  async (t) => {
    const quota = await CpuQuota.create({ fraction: 0.25, label: 'test' });
    const child = track(t, spawn('sleep', ['30']));
    await new Promise((resolve) => child.once('spawn', resolve));
    await quota.place(child.pid ?? 0, 'sleeper');
    await mkdir(join(quota.path, 'sleeper', 'nested'));
    await quota.release();
    t.false(existsSync(quota.path), 'the group is gone');
    t.is(await cgroupOf(child.pid ?? 0), '/', 'the process is back in the root group');
    t.is(child.exitCode, null, 'and still running');
    await quota.release(); // twice is fine
    await t.throwsAsync(quota.place(child.pid ?? 0, 'again'), { instanceOf: CpuQuotaError });
  },
);

serial('two quotas at once never share a group', async (t) => {
  const [a, b] = await Promise.all([
    CpuQuota.create({ fraction: 0.5, label: 'same' }),
    CpuQuota.create({ fraction: 0.5, label: 'same' }),
  ]);
  t.teardown(() => Promise.all([a.release(), b.release()]).then(() => undefined));
  t.not(a.path, b.path);
  t.true(existsSync(a.path) && existsSync(b.path));
});

serial(
  'a bad fraction, period or name is refused with what to give, and makes nothing',
  async (t) => {
    const before = await ourGroups();
    t.throws(() => cpuQuotaFromEnv({ FLOTILLA_CPU_QUOTA: 'half' }), {
      instanceOf: CpuQuotaError,
      message: /FLOTILLA_CPU_QUOTA=half: .*e\.g\. 0\.5/,
    });
    t.is(cpuQuotaFromEnv({ FLOTILLA_CPU_QUOTA: '0.5' }), 0.5);
    t.is(cpuQuotaFromEnv({}), undefined);
    await t.throwsAsync(CpuQuota.create({ fraction: 0, label: 'x' }), { message: /above 0/ });
    await t.throwsAsync(CpuQuota.create({ fraction: 0.01, label: 'x' }), {
      message: /1 ms minimum/,
    });
    await t.throwsAsync(CpuQuota.create({ fraction: 0.5, label: '../up' }), { message: /letters/ });
    const quota = await CpuQuota.create({ fraction: 0.5, label: 'test' });
    t.teardown(() => quota.release());
    await t.throwsAsync(quota.group('../../escape'), { instanceOf: CpuQuotaError });
    t.deepEqual(
      (await ourGroups()).filter((g) => !before.includes(g)),
      [quota.path.split('/').pop()],
    );
  },
);

serial('a dead run’s empty groups are swept; a live run’s stay', async (t) => {
  const live = await CpuQuota.create({ fraction: 0.5, label: 'test' });
  t.teardown(() => live.release());
  await live.group('etcd');
  const done = spawn('true');
  await exited(done);
  const stale = `flotquota-test-${done.pid ?? 0}-0badc0de`;
  await mkdir(join(CPU_CGROUP_ROOT, stale, 'agent-1'), { recursive: true });
  t.true((await sweepStaleQuotas()).includes(stale));
  t.false(existsSync(join(CPU_CGROUP_ROOT, stale)));
  t.true(existsSync(join(live.path, 'etcd')), 'the live run keeps its groups');
  await mkdir(join(CPU_CGROUP_ROOT, stale), { recursive: true });
  const next = await CpuQuota.create({ fraction: 0.5, label: 'test' });
  await next.release();
  t.false(existsSync(join(CPU_CGROUP_ROOT, stale)), 'every create sweeps too');
});

/** spawn()'s first two arguments for `prefix` then `command`. */
function spawnArgs(prefix: readonly string[], command: readonly string[]): [string, string[]] {
  const [program = '', ...args] = [...prefix, ...command];
  return [program, args];
}
