import test from 'ava';
import { readFile, rmdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureCgroupV2, fenceRule, insertRule } from '../../deploy/cluster/firewall.js';
import { runTool, which } from '../../deploy/cluster/proc.js';

/** Where cgroup v2 is mounted on this host, if it is. */
async function cgroupV2Mount(): Promise<string | undefined> {
  const mounts = await readFile('/proc/self/mounts', 'utf8');
  for (const line of mounts.split('\n')) {
    const [, dir, type] = line.split(' ');
    if (type === 'cgroup2') return dir;
  }
  return undefined;
}

const exists = (path: string): Promise<boolean> =>
  stat(path).then(
    () => true,
    () => false,
  );

test('the firewall rule is accepted on a host where no container has made its cgroup yet', async (t) => {
  const mount = await cgroupV2Mount();
  if (mount === undefined || process.getuid?.() !== 0 || (await which('iptables')) === undefined) {
    t.log('needs root, iptables and a cgroup v2 mount: not checked here');
    return t.pass();
  }
  // A group of its own, as `flotilla` is on a host that has not run a container since boot.
  const group = `flotilla-fw-test-${process.pid}`;
  const netns = `flot-fwtest-${process.pid}`;
  t.teardown(async () => {
    await runTool('ip', ['netns', 'del', netns]);
    await rmdir(join(mount, group)).catch(() => undefined);
  });
  t.false(await exists(join(mount, group)));
  t.is((await runTool('ip', ['netns', 'add', netns])).code, 0);
  const rule = fenceRule([2379]).map((a) => (a === 'flotilla' ? group : a));
  const refused = await insertRule(netns, rule);
  t.not(refused.code, 0, 'the kernel refuses a rule naming a group that does not exist');

  await ensureCgroupV2(group);
  t.true(await exists(join(mount, group)));
  const added = await insertRule(netns, rule);
  t.is(added.code, 0, added.stderr);
  await ensureCgroupV2(group); // again: it exists, nothing to do
});
