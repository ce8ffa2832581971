/**
 * End to end: where the example units land on a three-machine cluster (agent 1 eu/eu-1
 * worker ssd, agent 2 us/us-1 worker hdd, agent 3 us/us-2 edge ssd), and that MachineOf
 * peers follow their unit when it moves. Real etcd, schedulers, agents and runc containers;
 * every command goes through bin/flotctl.
 */
import anyTest, { type TestFn } from 'ava';
import { join } from 'node:path';
import { storedUnits } from '../../testkit/index.js';
import { clusterForFile, isRunningView, EXAMPLES } from './e2e-kit.js';

const { serial, cluster: c } = clusterForFile(anyTest as TestFn, { name: 'e2epl', net: 201 });

const names = (template: string, n: number): string[] =>
  Array.from({ length: n }, (_, i) => `${template}@${i + 1}.service`);

serial(
  'web@1..3 land on three machines; each web-presence@N and legacy-sidekick@N sits with its web',
  async (t) => {
    const files = ['web@.service', 'web-presence@.service', 'legacy-sidekick@.service'];
    await c().ok(['submit', ...files.map((f) => join(EXAMPLES, f))]);
    const all = [...names('web', 3), ...names('web-presence', 3), ...names('legacy-sidekick', 3)];
    await c().ok(['start', '--timeout', '90s', ...all]);
    const units = await c().waitUnits('nine units running', (u) =>
      all.every((n) => isRunningView(u.get(n))),
    );
    const webMachines = names('web', 3).map((n) => units.get(n)?.machine);
    t.is(
      new Set(webMachines).size,
      3,
      'the three web instances conflict, so they use three machines',
    );
    for (let i = 1; i <= 3; i++) {
      const web = units.get(`web@${i}.service`)?.machine;
      t.is(units.get(`web-presence@${i}.service`)?.machine, web, `web-presence@${i} (MachineOf)`);
      t.is(
        units.get(`legacy-sidekick@${i}.service`)?.machine,
        web,
        `legacy-sidekick@${i} (X-ConditionMachineOf)`,
      );
    }
  },
);

serial('web-presence@1 and legacy-sidekick@1 follow web@1 when a drain moves it', async (t) => {
  await c().ok(['destroy', 'web@3.service', 'web-presence@3.service', 'legacy-sidekick@3.service']);
  const before = await c().waitUnits('web@3 gone', (u) => !u.has('web@3.service'));
  const from = before.get('web@1.service')?.machine ?? '';
  const other = before.get('web@2.service')?.machine ?? '';
  await c().ok(['drain', from]);
  t.teardown(() => c().flotctl(['undrain', from]));
  const after = await c().waitUnits('web@1 and its peers moved and running', (u) => {
    const web = u.get('web@1.service');
    return (
      isRunningView(web) &&
      web?.machine !== from &&
      isRunningView(u.get('web-presence@1.service')) &&
      isRunningView(u.get('legacy-sidekick@1.service')) &&
      u.get('web-presence@1.service')?.machine === web?.machine &&
      u.get('legacy-sidekick@1.service')?.machine === web?.machine
    );
  });
  const to = after.get('web@1.service')?.machine;
  t.not(to, from);
  t.not(to, other, 'web@1 never shares a machine with web@2');
  t.is(after.get('web@2.service')?.machine, other, 'web@2 stayed where it was');
  t.is(after.get('web-presence@2.service')?.machine, other);
});

serial('db.service lands only on an ssd machine in eu or us', async (t) => {
  await c()
    .ok(['undrain', c().machineOf(1)])
    .catch(() => undefined);
  await c().ok(['start', '--timeout', '90s', join(EXAMPLES, 'db.service')]);
  const units = await c().waitUnits('db running', (u) => isRunningView(u.get('db.service')));
  const md = c().metadataOf(units.get('db.service')?.machine ?? '');
  t.is(md['disk'], 'ssd');
  t.true(md['region'] === 'eu' || md['region'] === 'us', `region ${md['region']}`);
  t.not(units.get('db.service')?.machine, c().machineOf(2), 'agent 2 has an hdd');
});

serial(
  'api@.service scaled to 6 spreads evenly over zones with at most 2 per machine',
  async (t) => {
    await c().ok(['submit', join(EXAMPLES, 'api@.service')]);
    await c().ok(['scale', '--timeout', '90s', 'api@.service=6']);
    const units = await c().waitUnits('six api instances running', (u) =>
      names('api', 6).every((n) => isRunningView(u.get(n))),
    );
    const perZone = new Map<string, number>();
    const perMachine = new Map<string, number>();
    for (const n of names('api', 6)) {
      const machine = units.get(n)?.machine ?? '';
      const zone = c().metadataOf(machine)['zone'] ?? '?';
      perZone.set(zone, (perZone.get(zone) ?? 0) + 1);
      perMachine.set(machine, (perMachine.get(machine) ?? 0) + 1);
    }
    t.deepEqual([...perZone.entries()].sort(), [
      ['eu-1', 2],
      ['us-1', 2],
      ['us-2', 2],
    ]);
    t.true(
      [...perMachine.values()].every((n) => n <= 2),
      JSON.stringify([...perMachine]),
    );
    t.is([...units.keys()].filter((n) => n.startsWith('api@')).length, 6);
  },
);

serial(
  'a typo scale of api@.service to 1,000,000 is refused at once with what fits, and writes no unit record',
  async (t) => {
    const store = c().openStore();
    t.teardown(() => store.close());
    // Records under units/ and instance-counts/ (where a scale writes its instances).
    const units = async (): Promise<string[]> =>
      (
        await Promise.all(
          [store.keys.dir('unit'), store.keys.dir('instance-count')].map((d) => store.list(d)),
        )
      ).flatMap((l) => l.items.map((kv) => `${kv.key}@${kv.modRevision}`));
    const before = await units();
    const t0 = Date.now();
    const r = await c().flotctl(['scale', 'api@.service=1000000']);
    const ms = Date.now() - t0;
    t.log(`refused in ${ms} ms (a flotctl process, start to exit)`);
    t.is(r.code, 1, r.stdout);
    t.is(
      r.stderr,
      "api@.service=1000000 is over its ceiling of 10000 instances (the scheduler's --max-instances); at most 6 of 1000000 can be placed now (0/3 machines: 3 already run 2 instances of api@.service (MaxPerMachine=2)); scale to at most 10000, or raise the schedulers' --max-instances (an operator's flag)\n",
    );
    t.true(ms < 5_000, `${ms} ms`);
    const pending = await c().flotctl(['scale', '--allow-pending', 'api@.service=1000000']);
    t.is(pending.code, 1, '--allow-pending does not lift the ceiling');
    const fit = await c().flotctl(['scale', '--dry-run', 'api@.service=7']);
    t.is(fit.code, 1);
    t.regex(fit.stderr, /^api@\.service=7: at most 6 of 7 can be placed now \(0\/3 machines: /);
    t.deepEqual(await units(), before, 'no unit record was written or touched');
  },
);

serial(
  'with --allow-pending a scale to the ceiling is accepted, status stays quick while it runs, and a scale back to 2 completes in seconds',
  async (t) => {
    const store = c().openStore();
    t.teardown(() => store.close());
    const scaling = c().flotctl(['scale', '--no-block', '--allow-pending', 'api@.service=10000']);
    const done = { scaled: false };
    void scaling.finally(() => (done.scaled = true));
    // Status of one instance, as an operator would call it, all through the scale.
    const statusMs: number[] = [];
    while (!done.scaled || statusMs.length < 3) {
      const t0 = Date.now();
      const s = await c().flotctl(['status', '-n', '0', 'api@1.service']);
      statusMs.push(Date.now() - t0);
      t.is(s.code, 0, s.stderr);
    }
    const scaled = await scaling;
    t.is(scaled.code, 0, scaled.stderr);
    const pending = await store.list(store.keys.dir('unscheduled'));
    t.true(pending.items.length <= 2, `${pending.items.length} unscheduled records`);
    const waiting = await c().ok(['status', '-n', '0', 'api@9999.service']);
    t.regex(waiting.stdout, /Pending:.*already run 2 instances of api@\.service/);

    const t0 = Date.now();
    await c().ok(['scale', '--timeout', '120s', 'api@.service=2']);
    const downMs = Date.now() - t0;
    const left = [...(await storedUnits(store)).keys()];
    t.is(left.filter((name) => name.startsWith('api@')).length, 3, 'the template and 2');
    const sorted = [...statusMs].sort((a, b) => a - b);
    t.log(
      `status during the scale: ${statusMs.length} calls, median ${sorted[sorted.length >> 1]} ms, max ${sorted.at(-1)} ms (whole flotctl processes); scale back to 2: ${downMs} ms`,
    );
    t.true((sorted.at(-1) ?? 0) < 10_000, 'status answered throughout');
    t.true(downMs < 60_000, `scale back to 2 took ${downMs} ms`);
  },
);
