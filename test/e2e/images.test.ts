/**
 * End to end: an image unit on a netns cluster with runc agents and the cluster's own
 * registry (Debian's docker-registry beside etcd, the example image built offline from
 * busybox-static by `up`): submit -> pinned digest -> the agent pulls -> runs on its overlay
 * root -> status, list-units and journal show it.
 */
import anyTest, { type TestFn } from 'ava';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { usageHint } from '../../deploy/cluster/command.js';
import { assertEventually } from '../../testkit/index.js';
import { clusterForFile, EXAMPLES, isRunningView } from './e2e-kit.js';

const { serial, cluster: c } = clusterForFile(anyTest as TestFn, {
  name: 'im1',
  net: 230,
  agents: 2,
  registry: true,
});

function registry(): string {
  const addr = c().record.registry?.addr;
  if (addr === undefined) throw new Error('the cluster has no registry');
  return addr;
}

serial("up prints the registry's address, the one agents reach on the bridge", (t) => {
  const addr = registry();
  t.regex(addr, /^10\.213\.230\.1:5000$/);
  t.regex(usageHint(c().record), new RegExp(`\\n  registry\\s+${addr.replace(/\./g, '\\.')}\\n`));
});

serial(
  'an image unit runs the pinned digest of its image on a machine, and status shows it',
  async (t) => {
    const image = `${registry()}/examples/busybox:1`;
    const file = await c().unitFile(
      'imaged@.service',
      [
        '[Unit]',
        'Description=from the cluster registry',
        '[Service]',
        'Restart=on-failure',
        '[Container]',
        `Image=${image}`,
        'Exec=/bin/sh -c "cat /www/index.html; echo instance %i; sleep 1000"',
        '[X-Fleet]',
        'Conflicts=imaged@*.service',
        '',
      ].join('\n'),
    );
    await c().ok(['submit', file]);
    await c().ok(['start', '--timeout', '90s', 'imaged@1.service', 'imaged@2.service']);
    const units = await c().waitUnits(
      'both instances run',
      (u) => isRunningView(u.get('imaged@1.service')) && isRunningView(u.get('imaged@2.service')),
    );
    t.not(units.get('imaged@1.service')?.machine, units.get('imaged@2.service')?.machine);

    const listed = await c().ok([
      'list-units',
      '--no-legend',
      '--fields',
      'unit,image',
      'imaged@*',
    ]);
    const digests = listed.stdout
      .trim()
      .split('\n')
      .map((line) => line.trim().split(/\s+/)[1] ?? '');
    t.is(digests.length, 2);
    for (const d of digests) t.regex(d, /@sha256:[0-9a-f]{64}$/);
    t.is(new Set(digests.map((d) => d.split('@')[1])).size, 1, 'every instance runs one digest');

    const status = await c().ok(['status', 'imaged@1.service']);
    t.regex(
      status.stdout,
      new RegExp(`Image: +${image.replace(/\./g, '\\.')}@sha256:[0-9a-f]{64}`),
    );
    t.regex(status.stdout, /Running: +\S+@sha256:[0-9a-f]{64}/);
    const cat = await c().ok(['cat', 'imaged@.service']);
    t.regex(cat.stdout, /^Image=\S+:1@sha256:[0-9a-f]{64}$/m, 'the stored file is pinned');

    await assertEventually(
      async () => {
        const journal = await c().ok(['journal', 'imaged@2.service']);
        if (!/hello from an image[\s\S]*instance 2/.test(journal.stdout)) {
          throw new Error(journal.stdout.slice(-300));
        }
      },
      { timeoutMs: 30_000, intervalMs: 500, message: "the image's file is what runs" },
    );
    await c().ok(['destroy', 'imaged@1.service', 'imaged@2.service', 'imaged@.service']);
    t.pass();
  },
);

serial(
  "the shipped image example runs as shipped, its 127.0.0.1:5000 reached through the cluster's mirror flag: httpd answers on its machine",
  async (t) => {
    const path = join(EXAMPLES, 'images', 'hello-image.service');
    t.regex(await readFile(path, 'utf8'), /^Image=127\.0\.0\.1:5000\/examples\/busybox:1$/m);
    await c().ok(['start', '--timeout', '90s', path]);
    const units = await c().waitUnits('hello-image runs', (u) =>
      isRunningView(u.get('hello-image.service')),
    );
    const machine = units.get('hello-image.service')?.machine ?? '';
    const ip = c().record.agents.find((a) => a.machineId === machine)?.ip;
    if (ip === undefined) return t.fail(`no agent for machine ${machine}`);
    const body = await assertEventually(
      async () => {
        const res = await fetch(`http://${ip}:8090/`, { signal: AbortSignal.timeout(2000) });
        return res.text();
      },
      { timeoutMs: 30_000, intervalMs: 500, message: 'httpd answers' },
    );
    t.is(body, 'hello from an image\n');
    const cat = await c().ok(['cat', 'hello-image.service']);
    t.regex(cat.stdout, /^Image=127\.0\.0\.1:5000\/examples\/busybox:1@sha256:[0-9a-f]{64}$/m);
    // The cluster holds the file pinned; the local file naming the tag is still the same unit.
    const again = await c().ok(['start', '--timeout', '30s', path]);
    t.notRegex(again.stderr, /differs/);
    await c().ok(['destroy', 'hello-image.service']);
  },
);
