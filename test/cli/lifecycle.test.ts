/**
 * The waiting verbs (start, stop, load, unload, destroy, scale) against the real API server
 * over a real etcd. The scheduler leader and the agents are played by sim-cluster.ts, which
 * writes placements, pending reasons and unit states as those processes do (see there):
 * flotctl only ever talks to the API.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import test from 'ava';
import type { UnitState } from '../../proto/flotilla/v1/records.js';
import { codecs, type Store } from '../../store/index.js';
import { etcdForFile, unitText } from '../../testkit/index.js';
import {
  addMachine,
  EXAMPLES,
  FLOTCTL,
  fingerprint,
  parseJson,
  startTestApi,
  unitDir,
} from './cli-kit.js';
import { simulateCluster } from './sim-cluster.js';

const server = etcdForFile(test);

/** An API with two machines and the simulated leader and agents. */
/** The state record of `name`, whichever machine reports it. */
async function stateOf(store: Store, name: string): Promise<{ value: UnitState } | undefined> {
  const { items } = await store.listRecords(codecs.state, store.keys.dir('state'));
  return items.find((s) => store.keys.parse(s.key)?.name === name);
}

async function cluster(
  t: Parameters<typeof startTestApi>[0],
  sim: {
    unplaceable?: (n: string) => string | undefined;
    failing?: (n: string) => string | undefined;
  } = {},
) {
  const api = await startTestApi(t, server());
  const a = await addMachine(api.store, { addresses: ['10.0.0.1'] });
  const b = await addMachine(api.store, { addresses: ['10.0.0.2'] });
  simulateCluster(t, api.store, { machines: [a, b], ...sim });
  return { api, machines: [a, b] };
}

test.serial('start FILE submits it, waits until it runs, and says where', async (t) => {
  const { api, machines } = await cluster(t);
  const r = await api.run(['start', `${EXAMPLES}hello.service`]);
  t.is(r.code, 0, r.stdout + r.stderr);
  const ids = machines.map((m) => `${m.id.slice(0, 8)}\\.\\.\\./10\\.0\\.0\\.\\d`).join('|');
  t.regex(r.stdout, new RegExp(`^Unit hello\\.service launched on (${ids})\\n$`));
  const state = await stateOf(api.store, 'hello.service');
  t.is(
    state?.value.activeState,
    'active',
    'flotctl returned only once the agent reported it running',
  );
  const list = await api.run(['list-units']);
  t.regex(list.stdout, /^UNIT\s+MACHINE\s+ACTIVE\s+SUB\s+HEALTH\s+RESTARTS\n/);
  t.regex(
    list.stdout,
    /^hello\.service\s+[0-9a-f]{8}\.\.\.\/10\.0\.0\.\d\s+active\s+running\s+-\s+0$/m,
  );
  const again = await api.run(['start', 'hello']);
  t.is(again.code, 0, 'starting a running unit succeeds at once');
  t.regex(again.stdout, /Unit hello\.service launched/);
});

test.serial('an unplaceable unit returns the reasons promptly and exits 1', async (t) => {
  const summary = '0/2 machines: 2 lack region=us';
  const { api } = await cluster(t, {
    unplaceable: (n) => (n === 'us.service' ? summary : undefined),
  });
  const dir = await unitDir(t, {
    'us.service': unitText({ xfleet: { MachineMetadata: 'region=us' } }),
  });
  const r = await api.run(['start', '--timeout', '60s', `${dir}/us.service`]);
  t.is(r.code, 1);
  t.is(r.stderr, `us.service cannot be placed: ${summary}\n`);
  t.true(r.ms < 20_000, `returned after ${r.ms} ms, long before the 60 s timeout`);
  // Asked again, nothing changes and no new reason is written: the standing one is the answer.
  const again = await api.run(['start', '--timeout', '60s', 'us.service']);
  t.is(again.code, 1);
  t.regex(again.stderr, /us\.service cannot be placed: 0\/2 machines: 2 lack region=us/);
  t.true(again.ms < 20_000, `returned after ${again.ms} ms`);
  const status = await api.run(['status', 'us']);
  t.is(status.code, 0, status.stdout + status.stderr);
  t.regex(status.stdout, /Pending:\s+0\/2 machines: 2 lack region=us/);
  // Once: the summary, not the summary and then each reason again.
  t.is(status.stdout.split('lack region=us').length - 1, 1, status.stdout);
  t.regex(status.stdout, /Logs: unavailable: .*not placed/);
  const listed = await api.run(['list-units', '--fields', 'unit,state,reason']);
  t.regex(listed.stdout, /^us\.service\s+inactive\s+0\/2 machines: 2 lack region=us$/m);
});

test.serial('a unit its agent reports failed ends the wait with the agent message', async (t) => {
  const { api } = await cluster(t, {
    failing: (n) => (n === 'hello.service' ? 'exec /bin/nope: not found' : undefined),
  });
  const r = await api.run(['start', `${EXAMPLES}hello.service`]);
  t.is(r.code, 1);
  t.regex(
    r.stderr,
    /^hello\.service failed on machine [0-9a-f]{32}: exec \/bin\/nope: not found\n$/,
  );
  // Started again, nothing changes: the standing failure is the answer, at once.
  const again = await api.run(['start', '--timeout', '60s', 'hello']);
  t.is(again.code, 1);
  t.regex(again.stderr, /exec \/bin\/nope: not found \(flotctl stop hello\.service, then start it/);
  t.true(again.ms < 20_000, `${again.ms} ms`);
});

test.serial('stop, unload, load and destroy each wait for their state', async (t) => {
  const { api } = await cluster(t);
  t.is((await api.run(['start', `${EXAMPLES}db.service`])).code, 0);
  const stop = await api.run(['stop', 'db.service']);
  t.is(stop.code, 0, stop.stdout + stop.stderr);
  t.regex(stop.stdout, /^Unit db\.service loaded on [0-9a-f]{8}\.\.\.\/10\.0\.0\.\d\n$/);
  const state = await stateOf(api.store, 'db.service');
  t.is(state?.value.activeState, 'inactive', 'stop returned once the container stopped');

  const unload = await api.run(['unload', 'db']);
  t.is(unload.code, 0, unload.stdout + unload.stderr);
  t.is(unload.stdout, 'Unit db.service inactive\n');
  const placed = await api.store.list(api.store.keys.dir('placement'));
  t.deepEqual(placed.items, [], 'no machine holds it any more');

  const stopInactive = await api.run(['stop', 'db']);
  t.is(stopInactive.code, 1);
  t.regex(stopInactive.stderr, /cannot stop db\.service: it is not loaded/);

  const load = await api.run(['load', 'db']);
  t.is(load.code, 0, load.stdout + load.stderr);
  t.regex(load.stdout, /^Unit db\.service loaded on /);

  t.is((await api.run(['start', 'db'])).code, 0);
  const destroy = await api.run(['destroy', 'db']);
  t.is(destroy.code, 0, destroy.stdout + destroy.stderr);
  t.is(destroy.stdout, 'Unit db.service destroyed\n');
  const left = await fingerprint(api.store);
  t.false(
    left.some((k) => k.includes('/placements/') || k.includes('/states/') || k.includes('/units/')),
    `placement, state and unit are all gone: ${left.join(', ')}`,
  );
});

test.serial(
  '--no-block returns at once; --timeout and --block-attempts bound the wait',
  async (t) => {
    const api = await startTestApi(t, server()); // no leader: nothing will ever be placed
    await api.run(['submit', `${EXAMPLES}hello.service`, `${EXAMPLES}db.service`]);
    const noBlock = await api.run(['start', '--no-block', 'hello']);
    t.is(noBlock.code, 0, noBlock.stdout + noBlock.stderr);
    t.is(noBlock.stdout, 'Triggered unit hello.service start\n');
    const timeout = await api.run(['start', '--timeout', '2s', 'db']);
    t.is(timeout.code, 1);
    t.regex(
      timeout.stderr,
      /^timed out after 2s waiting for db\.service to be launched \(it is not placed yet\)\n$/,
    );
    t.true(timeout.ms < 15_000, `${timeout.ms} ms`);
    const attempts = await api.run(['stop', '--block-attempts', '4', 'db']);
    t.is(attempts.code, 1);
    t.regex(attempts.stderr, /timed out after 2s waiting for db\.service to be loaded/);
  },
);

test.serial(
  'start refuses a template, and creates instances of a submitted or local template',
  async (t) => {
    const { api } = await cluster(t);
    const template = await api.run(['start', `${EXAMPLES}web@.service`]);
    t.is(template.code, 1);
    t.regex(
      template.stderr,
      /web@\.service: a template cannot be launched; start its instances instead, e\.g\. flotctl start web@1\.service/,
    );
    t.deepEqual(
      await fingerprint(api.store).then((k) => k.filter((x) => x.includes('/units/'))),
      [],
    );
    const dir = await unitDir(t, {
      'api@.service': unitText({ description: 'api %i' }),
      'solo.service': unitText(),
    });
    const local = await api.run(['start', `${dir}/api@7.service`]);
    t.is(local.code, 0, local.stdout + local.stderr);
    t.regex(local.stdout, /Unit api@7\.service launched on /);
    t.regex(
      (await api.run(['list-unit-files', '--no-legend', '--fields', 'unit'])).stdout,
      /^api@\.service$/m,
    );
    const fromCluster = await api.run(['start', 'api@8']);
    t.is(fromCluster.code, 0, fromCluster.stdout + fromCluster.stderr);
    t.regex(fromCluster.stdout, /Unit api@8\.service launched on /);
    const bare = await api.run(['start', `${dir}/solo`]);
    t.is(bare.code, 0, bare.stdout + bare.stderr);
    t.regex(bare.stdout, /Unit solo\.service launched on /, 'DIR/solo finds DIR/solo.service');
  },
);

test.serial(
  'start of 300 files submits them launched and waits for all; an unknown name among 300 writes nothing',
  async (t) => {
    const { api } = await cluster(t);
    const files: Record<string, string> = { 'w@.service': unitText({ description: 'w %i' }) };
    for (let i = 0; i < 300; i++) files[`f${i}.service`] = unitText();
    const dir = await unitDir(t, files);
    const names = Array.from({ length: 300 }, (_, i) => `${dir}/f${i}.service`);
    const r = await api.run(['start', ...names]);
    t.is(r.code, 0, r.stderr);
    t.is(r.stdout.match(/^Unit f\d+\.service launched on /gm)?.length, 300);
    // Three requests' worth of names, instances of a submitted template among them, and one
    // name that is neither: refused before the first request, so nothing is written.
    t.is((await api.run(['submit', `${dir}/w@.service`])).code, 0);
    const before = await fingerprint(api.store);
    const instances = Array.from({ length: 299 }, (_, i) => `w@${i + 1}.service`);
    const refused = await api.run(['start', '--no-block', ...instances, 'nowhere.service']);
    t.is(refused.code, 1);
    t.regex(
      refused.stderr,
      /nowhere\.service is not a submitted unit \(nor instances of a submitted template\)/,
    );
    t.deepEqual(
      (await fingerprint(api.store)).filter((k) => k.includes('/units/')),
      before.filter((k) => k.includes('/units/')),
    );
  },
);

test.serial('start of a Global unit is triggered without waiting, as with fleetctl', async (t) => {
  const { api } = await cluster(t);
  const r = await api.run(['start', `${EXAMPLES}node-monitor.service`]);
  t.is(r.code, 0, r.stdout + r.stderr);
  t.is(r.stdout, 'Triggered global unit node-monitor.service start\n');
});

test.serial('scale grows and shrinks a template and waits for both directions', async (t) => {
  const { api } = await cluster(t);
  const dir = await unitDir(t, { 'web@.service': unitText() });
  await api.run(['submit', `${dir}/web@.service`]);
  const up = await api.run(['scale', 'web@.service=3']);
  t.is(up.code, 0, up.stdout + up.stderr);
  t.regex(
    up.stdout,
    /^Scaled web@\.service to 3: started web@\{1\.\.3\}\.service; destroyed none$/m,
  );
  for (const n of [1, 2, 3])
    t.regex(up.stdout, new RegExp(`^Unit web@${n}\\.service launched on `, 'm'));
  const down = await api.run(['-o', 'json', 'scale', 'web', '1']);
  t.is(down.code, 0, down.stdout + down.stderr);
  const json = parseJson(t, down.stdout) as {
    scaled: { instances: string[]; destroyed: string[] }[];
    units: { name: string; target: string; reached: boolean }[];
  };
  t.deepEqual(json.scaled[0]?.instances, ['web@1.service']);
  t.deepEqual([...(json.scaled[0]?.destroyed ?? [])].sort(), ['web@2.service', 'web@3.service']);
  t.true(json.units.every((u) => u.reached));
  const states = await api.store.list(api.store.keys.dir('state'));
  t.deepEqual(
    states.items.map((kv) => kv.key.slice(kv.key.lastIndexOf('/') + 1)),
    ['web@1.service'],
    'the scaled-away instances stopped before flotctl returned',
  );
});

test.serial(
  'scale past 20 instances waits by counts, up and down, with one line per template',
  async (t) => {
    const { api } = await cluster(t);
    const dir = await unitDir(t, { 'web@.service': unitText() });
    await api.run(['submit', `${dir}/web@.service`]);
    const up = await api.run(['scale', 'web@.service=30']);
    t.is(up.code, 0, up.stdout + up.stderr);
    t.is(
      up.stdout,
      'Scaled web@.service to 30: started web@{1..30}.service; destroyed none\n' +
        'web@.service: all 30 instances launched\n',
    );
    const states = async (): Promise<UnitState[]> =>
      (await api.store.listRecords(codecs.state, api.store.keys.dir('state'))).items.map(
        (s) => s.value,
      );
    const running = await states();
    t.is(running.length, 30, 'every instance reported before flotctl returned');
    t.true(running.every((s) => s.activeState === 'active'));

    const down = await api.run(['-o', 'json', 'scale', 'web=24']);
    t.is(down.code, 0, down.stdout + down.stderr);
    const json = parseJson(t, down.stdout) as {
      scaled: { destroyed: string[] }[];
      templates: { template: string; reached: boolean; wanted: number; launched: number }[];
    };
    t.is(json.scaled[0]?.destroyed.length, 6);
    t.like(json.templates[0], {
      template: 'web@.service',
      reached: true,
      wanted: 24,
      launched: 24,
    });
    t.deepEqual(
      (await states()).map((s) => s.name).filter((n) => /web@(2[5-9]|30)\./.test(n)),
      [],
      'the scaled-away instances stopped before flotctl returned',
    );
    const none = await api.run(['scale', 'web=0']);
    t.is(none.code, 0, none.stdout + none.stderr);
    t.regex(none.stdout, /^web@\.service: all 24 instances scaled away stopped$/m);
    t.deepEqual(await states(), [], 'nothing runs');
  },
);

test.serial(
  'a scale past 20 instances ends at the first failures or pending reasons, naming them',
  async (t) => {
    const { api } = await cluster(t, {
      failing: (n) => (/^web@2[27]\./.test(n) ? 'exec /bin/nope: not found' : undefined),
      unplaceable: (n) => (n.startsWith('us@') ? '0/2 machines: 2 lack region=us' : undefined),
    });
    const dir = await unitDir(t, {
      'web@.service': unitText(),
      'us@.service': unitText({ xfleet: { MachineMetadata: 'region=us' } }),
    });
    await api.run(['submit', `${dir}/web@.service`, `${dir}/us@.service`]);
    // Both fail in one round of the agents; the wait may end having seen the first alone.
    const failed = await api.run(['scale', '--timeout', '60s', 'web=30']);
    t.is(failed.code, 1, failed.stdout + failed.stderr);
    t.regex(
      failed.stderr,
      /^(1 of 30 instances of web@\.service failed: web@22\.service on machine [0-9a-f]{32}: exec \/bin\/nope: not found|2 of 30 instances of web@\.service failed: web@22\.service on machine [0-9a-f]{32}: exec \/bin\/nope: not found; web@27\.service on machine [0-9a-f]{32}: exec \/bin\/nope: not found)\n$/,
    );
    const pending = await api.run(['scale', '--timeout', '60s', '--allow-pending', 'us=25']);
    t.is(pending.code, 1, pending.stdout + pending.stderr);
    t.regex(
      pending.stderr,
      /^25 of 25 instances of us@\.service cannot be placed: 0\/2 machines: 2 lack region=us\n$/,
    );
    t.true(pending.ms < 30_000, `returned after ${pending.ms} ms`);
  },
);

test.serial('list-units and status show what runs; -o json of both parses', async (t) => {
  const { api } = await cluster(t);
  await api.run(['start', `${EXAMPLES}hello.service`, `${EXAMPLES}db.service`]);
  await api.run(['submit', `${EXAMPLES}web@.service`]);
  const list = await api.run([
    'list-units',
    '--fields',
    'unit,dstate,state,active,sub,hash,pid',
    '--no-legend',
  ]);
  t.is(list.code, 0, list.stdout + list.stderr);
  t.regex(
    list.stdout,
    /^db\.service\s+launched\s+launched\s+active\s+running\s+[0-9a-f]{7}\s+4242$/m,
  );
  t.notRegex(list.stdout, /web@/, 'templates and inactive units are not listed');
  const glob = await api.run(['list-units', '--no-legend', '--fields', 'unit', 'h*']);
  t.is(glob.stdout, 'hello.service\n');
  const json = parseJson(t, (await api.run(['list-units', '-o', 'json'])).stdout) as Record<
    string,
    unknown
  >[];
  t.deepEqual(
    json.map((u) => u['unit']),
    ['db.service', 'hello.service'],
  );
  t.true(json.every((u) => u['state'] === 'launched' && u['active'] === 'active'));
  const status = await api.run(['status', 'hello', 'ghost']);
  t.is(status.code, 1, 'ghost.service is not a unit');
  t.regex(status.stderr, /ghost\.service is not a submitted unit/);
  t.regex(status.stdout, /^● hello\.service - Prints a line every second$/m);
  t.regex(status.stdout, /Desired:\s+launched/);
  t.regex(status.stdout, /Machine:\s+[0-9a-f]{32}\/10\.0\.0\.\d/);
  t.regex(status.stdout, /Active:\s+active \(running\) since /);
  t.regex(status.stdout, /Container:\s+flotilla-/);
  t.regex(status.stdout, /PID:\s+4242/);
  t.regex(status.stdout, /Restarts:\s+0/);
  t.regex(
    status.stdout,
    /Logs: unavailable: .*agent/,
    'no agent serves logs: one line, still exit 0 for found units',
  );
  const sj = parseJson(t, (await api.run(['status', '-o', 'json', 'db'])).stdout) as {
    unit: { name: string };
    logsError?: string;
  }[];
  t.is(sj[0]?.unit.name, 'db.service');
  t.is(typeof sj[0]?.logsError, 'string');
});

/** `script` runs a command on a pseudo-terminal: the one way to give flotctl a TTY here. */
const SCRIPT = ['/usr/bin/script', '/bin/script'].find((p) => existsSync(p));

(SCRIPT === undefined ? test.serial.skip : test.serial)(
  'waiting draws a progress line on a terminal only',
  async (t) => {
    const api = await startTestApi(t, server()); // no leader: the unit stays pending
    await api.run(['submit', `${EXAMPLES}hello.service`]);
    const args = ['--endpoint', api.endpoint, 'start', '--timeout', '2s', 'hello'];
    const command = [process.execPath, FLOTCTL, ...args].map((a) => `'${a}'`).join(' ');
    const tty = await new Promise<string>((resolve, reject) => {
      execFile(
        SCRIPT ?? 'script',
        ['-qec', command, '/dev/null'],
        { timeout: 60_000 },
        (err, out) => (err !== null && typeof err.code !== 'number' ? reject(err) : resolve(out)),
      );
    });
    const clearLine = '\r\u001b[2K';
    const drawn = tty.split(clearLine).slice(1);
    t.true(
      drawn.some((d) => /^waiting \ds: hello\.service not placed yet/.test(d)),
      `progress line drawn in place: ${JSON.stringify(tty)}`,
    );
    t.regex(tty, /timed out after 2s waiting for hello\.service/);
    const piped = await api.run(['start', '--timeout', '2s', 'hello']);
    t.false((piped.stdout + piped.stderr).includes('\u001b'), 'no terminal codes when piped');
  },
);
