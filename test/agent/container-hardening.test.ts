/**
 * Issue 30's "root on the host" bullets, contained: a container holds no capability its unit
 * does not name, runs with NoNewPrivileges and a seccomp profile, and sees only the few host
 * files under /etc it needs (never /etc/shadow). Read from inside real runc containers, so
 * the assertions hold for what the kernel enforces. The agent's own files are 0600 under
 * 0700. Skipped where runc cannot run (no runc, not root).
 */
import anyTest, { type TestFn } from 'ava';
import { chmod, mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UnitManager } from '../../agent/units/unit-manager.js';
import { MachineLayout } from '../../agent/runtime/index.js';
import { assertEventually } from '../../testkit/index.js';
import { DRIVERS, managed, running, unit, type Managed } from './harness.js';

const test: TestFn = DRIVERS.includes('runc') ? anyTest : (anyTest.skip as TestFn);

/** Runs `script` in a container of `name` and returns its log once it printed `done`. */
async function outputOf(
  m: Managed,
  name: string,
  script: readonly string[],
  service: Record<string, string> = {},
): Promise<string[]> {
  const body = [...script, 'echo done', 'exec sleep 1000'].join('; ');
  await m.manager.start(unit(name, `/bin/sh -c '${body}'`, service));
  await running(m, name);
  return assertEventually(async () => {
    const lines = await m.manager.logs.tail(name, 60);
    if (!lines.includes('done')) throw new Error(lines.join('\n'));
    return lines;
  });
}

const PRIVILEGED_ACTS = [
  'chown 65534 /tmp/f 2>/dev/null && echo chown-ok || echo chown-denied',
  'mknod /tmp/null c 1 3 2>/dev/null && echo mknod-ok || echo mknod-denied',
  'busybox ping -c 1 -W 1 127.0.0.1 >/dev/null 2>&1 && echo raw-ok || echo raw-denied',
  'grep -E "^Cap(Eff|Bnd)" /proc/self/status',
];

test('a root container granted no capability cannot chown, mknod or open a raw socket', async (t) => {
  const m = await managed(t, { driver: 'runc' });
  const log = await outputOf(m, 'nocaps.service', ['touch /tmp/f', ...PRIVILEGED_ACTS]);
  for (const line of ['chown-denied', 'mknod-denied', 'raw-denied'])
    t.true(log.includes(line), line);
  t.true(log.includes('CapEff:\t0000000000000000'), log.join('\n'));
  t.true(log.includes('CapBnd:\t0000000000000000'), log.join('\n'));
});

test('AmbientCapabilities= grants exactly the capabilities it names', async (t) => {
  const m = await managed(t, { driver: 'runc' });
  const log = await outputOf(m, 'somecaps.service', ['touch /tmp/f', ...PRIVILEGED_ACTS], {
    AmbientCapabilities: 'CAP_CHOWN CAP_NET_RAW',
  });
  t.true(log.includes('chown-ok'), log.join('\n'));
  t.true(log.includes('raw-ok'), log.join('\n'));
  t.true(log.includes('mknod-denied'), 'CAP_MKNOD was not asked for');
  // CAP_CHOWN is bit 0, CAP_NET_RAW bit 13.
  t.true(log.includes('CapEff:\t0000000000002001'), log.join('\n'));
});

test('NoNewPrivileges is on in every container unless the unit turns it off', async (t) => {
  const m = await managed(t, { driver: 'runc' });
  const probe = ['grep NoNewPrivs /proc/self/status'];
  t.true((await outputOf(m, 'nnp.service', probe)).includes('NoNewPrivs:\t1'));
  const off = await outputOf(m, 'nnp-off.service', probe, { NoNewPrivileges: 'no' });
  t.true(off.includes('NoNewPrivs:\t0'), off.join('\n'));
});

test('the seccomp profile stops a container from making a user namespace or mounting', async (t) => {
  const m = await managed(t, { driver: 'runc' });
  const log = await outputOf(m, 'seccomp.service', [
    'grep "^Seccomp:" /proc/self/status',
    // A user namespace needs no capability: only the profile stops this one.
    'unshare -U true 2>/dev/null && echo userns-ok || echo userns-denied',
    'mount -t tmpfs none /tmp 2>/dev/null && echo mount-ok || echo mount-denied',
  ]);
  t.true(log.includes('Seccomp:\t2'), log.join('\n'));
  t.true(log.includes('userns-denied'), log.join('\n'));
  t.true(log.includes('mount-denied'), log.join('\n'));
});

test("a container's /etc holds no shadow file and only root, nobody and its own user", async (t) => {
  const m = await managed(t, { driver: 'runc' });
  const log = await outputOf(m, 'etc.service', [
    'cat /etc/shadow >/dev/null 2>&1 && echo shadow-read || echo no-shadow',
    'test -e /etc/ssh && echo has-ssh || echo no-ssh',
    // One write of the whole line: the shim's own lines go to the same log meanwhile.
    'echo "$(cut -d: -f1 /etc/passwd | sort | tr "\\n" " ")"',
  ]);
  t.true(log.includes('no-shadow'), log.join('\n'));
  t.true(log.includes('no-ssh'), log.join('\n'));
  const users = log.find((l) => l.startsWith('nobody') || l.startsWith('root')) ?? '';
  t.deepEqual(users.trim().split(' ').sort(), ['nobody', 'root'], log.join('\n'));
});

test("the agent's unit files and logs are 0600 under 0700, and older ones are fixed at start", async (t) => {
  const m = await managed(t, { driver: 'runc' });
  await outputOf(m, 'modes.service', ['echo secret-output']);
  const layout = new MachineLayout(m.stateDir, m.machineId);
  const mode = async (p: string): Promise<number> => (await stat(p)).mode & 0o777;
  const dir = layout.unitDir('modes.service');
  t.is(await mode(layout.root), 0o700);
  t.is(await mode(layout.unitsDir), 0o700);
  t.is(await mode(layout.logsDir), 0o700);
  t.is(await mode(dir), 0o700);
  t.is(await mode(join(dir, 'config.json')), 0o600);
  t.is(await mode(join(dir, 'meta.json')), 0o600);
  t.is(await mode(layout.logPath('modes.service')), 0o600);

  // What an older agent left: world-readable files under 0755 directories.
  const stale = layout.unitDir('old.service');
  await mkdir(stale, { recursive: true });
  await writeFile(join(stale, 'meta.json'), '{}\n', { mode: 0o644 });
  await writeFile(layout.logPath('old.service'), 'db password\n', { mode: 0o644 });
  for (const d of [layout.root, layout.unitsDir, layout.logsDir, stale]) await chmod(d, 0o755);
  const again = await UnitManager.create({
    machineId: m.machineId,
    stateDir: m.stateDir,
    driver: 'runc',
  });
  t.teardown(() => again.close());
  for (const d of [layout.root, layout.unitsDir, layout.logsDir, stale])
    t.is(await mode(d), 0o700, d);
  t.is(await mode(join(stale, 'meta.json')), 0o600);
  t.is(await mode(layout.logPath('old.service')), 0o600);
});
