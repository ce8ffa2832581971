/**
 * What only the runc driver gives: cgroup limits, namespaces, the rootfs. Read from the host
 * (cgroup files, /proc/<pid>/ns) so the assertions hold for what actually runs. Skipped where
 * runc cannot run (no runc, not root).
 */
import anyTest, { type TestFn } from 'ava';
import { copyFile, mkdir, mkdtemp, readFile, readlink, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertEventually } from '../../testkit/index.js';
import { DRIVERS, managed, running, runcContainers, stateOf, unit } from './harness.js';

const test: TestFn = DRIVERS.includes('runc') ? anyTest : (anyTest.skip as TestFn);
const SLEEPER = `/bin/sh -c 'while true; do sleep 0.2; done'`;

async function cgroupFile(
  controller: string,
  machine: string,
  unitDir: string,
  file: string,
): Promise<string> {
  return (
    await readFile(join('/sys/fs/cgroup', controller, 'flotilla', machine, unitDir, file), 'utf8')
  ).trim();
}

test('a unit becomes a running container whose cgroup has its memory, CPU and tasks limits', async (t) => {
  const m = await managed(t, { driver: 'runc' });
  await m.manager.start(
    unit('limited@1.service', SLEEPER, { MemoryMax: '64M', CPUQuota: '25%', TasksMax: '50' }),
  );
  const state = await running(m, 'limited@1.service');
  t.is(state.containerId, `flotilla-${m.machineId}-limited+401.service`);
  t.true((await runcContainers()).includes(state.containerId));
  const dir = 'limited+401.service';
  t.is(
    await cgroupFile('memory', m.machineId, dir, 'memory.limit_in_bytes'),
    String(64 * 1024 * 1024),
  );
  t.is(await cgroupFile('cpu', m.machineId, dir, 'cpu.cfs_quota_us'), '25000');
  t.is(await cgroupFile('cpu', m.machineId, dir, 'cpu.cfs_period_us'), '100000');
  t.is(await cgroupFile('pids', m.machineId, dir, 'pids.max'), '50');
  t.regex(
    await readFile(`/proc/${state.pid}/cgroup`, 'utf8'),
    new RegExp(`memory:/flotilla/${m.machineId}/limited\\+401\\.service`),
  );
  await m.manager.stop('limited@1.service');
  t.false((await runcContainers()).includes(state.containerId));
  await t.throwsAsync(stat(join('/sys/fs/cgroup/memory/flotilla', m.machineId, dir)));
  // A hybrid host's v2 tree gets the container's cgroups too, and runc leaves the machine's
  // directory there: it goes with the machine's last unit, as in the v1 hierarchies.
  for (const tree of ['memory', 'unified']) {
    if ((await stat(`/sys/fs/cgroup/${tree}/cgroup.procs`).catch(() => undefined)) === undefined)
      continue;
    await t.throwsAsync(
      stat(join('/sys/fs/cgroup', tree, 'flotilla', m.machineId)),
      undefined,
      tree,
    );
  }
});

test('a container has its own pid, mount, ipc and uts namespaces and the host network', async (t) => {
  const m = await managed(t, { driver: 'runc' });
  await m.manager.start(unit('ns.service', SLEEPER));
  await m.manager.start(unit('private-net.service', SLEEPER, { PrivateNetwork: 'yes' }));
  const { pid } = await running(m, 'ns.service');
  const ns = (p: number | 'self', kind: string) => readlink(`/proc/${p}/ns/${kind}`);
  for (const kind of ['pid', 'mnt', 'ipc', 'uts']) {
    t.not(await ns(pid, kind), await ns('self', kind), `${kind} namespace`);
  }
  t.is(await ns(pid, 'net'), await ns('self', 'net'), 'host network without PrivateNetwork=');
  const isolated = await running(m, 'private-net.service');
  t.not(await ns(isolated.pid, 'net'), await ns('self', 'net'), 'PrivateNetwork=yes');
});

test('the default rootfs shows the host system directories read-only, a private /tmp and nothing else', async (t) => {
  const m = await managed(t, { driver: 'runc' });
  const marker = `flotilla-tmp-${process.pid}-${Date.now()}`;
  const script = [
    'ls /',
    'touch /usr/probe 2>/dev/null || echo usr-read-only',
    `echo x > /tmp/${marker} && echo tmp-writable`,
    'test -e /work || echo no-work',
    'test -d /sys/class && echo has-sys',
    'touch /sys/probe 2>/dev/null || echo sys-read-only',
    'echo ready',
    'exec sleep 1000',
  ].join('; ');
  await m.manager.start(unit('rootfs.service', `/bin/sh -c '${script}'`));
  await running(m, 'rootfs.service');
  const log = await assertEventually(async () => {
    const lines = await m.manager.logs.tail('rootfs.service', 40);
    if (!lines.includes('ready')) throw new Error(lines.join('\n'));
    return lines;
  });
  for (const dir of ['usr', 'etc', 'tmp', 'proc', 'dev', 'sys']) t.true(log.includes(dir), dir);
  t.false(log.includes('work'));
  for (const line of ['usr-read-only', 'tmp-writable', 'no-work', 'has-sys', 'sys-read-only']) {
    t.true(log.includes(line), line);
  }
  await t.throwsAsync(stat(join('/tmp', marker)), undefined, "the host's /tmp is not the unit's");
});

test('RootDirectory= is the rootfs of the container', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'flotilla-root-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  await mkdir(join(root, 'bin'));
  await copyFile('/usr/bin/busybox', join(root, 'bin/busybox'));
  await symlink('busybox', join(root, 'bin/sh'));
  const m = await managed(t, { driver: 'runc' });
  await m.manager.start(
    unit(
      'chroot.service',
      `/bin/sh -c '/bin/busybox ls /; echo ready; exec /bin/busybox sleep 1000'`,
      { RootDirectory: root },
    ),
  );
  await running(m, 'chroot.service');
  const log = await assertEventually(async () => {
    const lines = await m.manager.logs.tail('chroot.service', 20);
    if (!lines.includes('ready')) throw new Error(lines.join('\n'));
    return lines;
  });
  t.true(log.includes('bin'));
  t.false(log.includes('usr'), 'no host directories are bound into a RootDirectory=');
});

test("a container runc cannot create fails with runc's own reason", async (t) => {
  const m = await managed(t, { driver: 'runc' });
  await m.manager.start(
    unit('tiny.service', '/bin/sleep 1000', { MemoryMax: '4K', Restart: 'no' }),
  );
  const state = await stateOf(m, 'tiny.service', (s) => s.activeState === 'failed', 'failed');
  t.regex(state.message, /ExecStart=\/bin\/sleep \(line \d+\) could not be started .*memory limit/);
  t.false(m.states.some((s) => s.activeState === 'active'));
});
