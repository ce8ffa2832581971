/**
 * `flotctl render` as a child process against the real API over a real etcd, with endpoint
 * records written as agents write them: what a template sees, the atomic write only on a
 * change, --watch re-rendering on each endpoint change with --exec run once per change and
 * never piling up, and the shipped nginx and HAProxy examples (HAProxy's checked by
 * `haproxy -c`).
 */
import { execFile } from 'node:child_process';
import { readdir, readFile, stat, chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { pino } from 'pino';
import { startApiServer } from '../../scheduler/api/index.js';
import { openStore } from '../../store/index.js';
import { assertEventually, etcdForFile, sleep, uniquePrefix } from '../../testkit/index.js';
import { deleteEndpoint, putEndpoint, putService } from '../api/service-records.js';
import { EXAMPLES, flotctl, spawnFlotctl, startTestApi, unitDir, type TestApi } from './cli-kit.js';

const etcd = etcdForFile(test);
const run = promisify(execFile);

const LIST = `{{#each services}}{{name}}{{#if publish}} :{{publish}}{{/if}}:{{#each endpoints}} {{hostPort}}{{/each}}
{{/each}}`;

/** shop: one blue and one green endpoint serving, one failing its check (never rendered). */
async function shop(api: TestApi): Promise<void> {
  await putService(api.store, 'shop', { publish: 8000, units: ['shop-blue@.service'] });
  const base = { service: 'shop', machine: 'm1', address: '10.0.0.1' };
  await putEndpoint(api.store, {
    ...base,
    unit: 'shop-blue@1.service',
    port: 20001,
    tags: ['blue'],
  });
  await putEndpoint(api.store, {
    ...base,
    unit: 'shop-green@1.service',
    port: 20002,
    tags: ['green'],
    health: 'passing',
  });
  await putEndpoint(api.store, {
    ...base,
    unit: 'shop-green@2.service',
    port: 20003,
    tags: ['green'],
    health: 'critical',
  });
}

test('render writes the healthy endpoints atomically, and leaves an unchanged output alone', async (t) => {
  const api = await startTestApi(t, etcd());
  await shop(api);
  const dir = await unitDir(t, { 'list.hbs': LIST });
  const out = join(dir, 'out.txt');
  const first = await api.run(['render', '--template', join(dir, 'list.hbs'), '--out', out]);
  t.is(first.code, 0, first.stderr);
  t.is(await readFile(out, 'utf8'), 'shop :8000: 10.0.0.1:20001 10.0.0.1:20002\n');
  t.regex(first.stderr, /render: wrote .*out\.txt \(1 service, 2 healthy endpoints\)/);
  await chmod(out, 0o600);
  const before = await stat(out);

  const again = await api.run(['render', '--template', join(dir, 'list.hbs'), '--out', out]);
  t.is(again.code, 0, again.stderr);
  t.is(again.stderr, '', 'nothing written, nothing said');
  t.is((await stat(out)).ino, before.ino, 'the same file: not rewritten');

  await deleteEndpoint(api.store, { service: 'shop', machine: 'm1', unit: 'shop-blue@1.service' });
  const changed = await api.run(['render', '--template', join(dir, 'list.hbs'), '--out', out]);
  t.is(changed.code, 0, changed.stderr);
  const after = await stat(out);
  t.not(after.ino, before.ino, 'replaced by a rename, never written in place');
  t.is(after.mode & 0o777, 0o600, 'the mode of the file it replaced');
  t.is(await readFile(out, 'utf8'), 'shop :8000: 10.0.0.1:20002\n');
  t.deepEqual((await readdir(dir)).sort(), ['list.hbs', 'out.txt'], 'no temporary file left');
});

test('render --exec reports the output and exit status of CMD; a bad template names its line', async (t) => {
  const api = await startTestApi(t, etcd());
  await shop(api);
  const dir = await unitDir(t, { 'list.hbs': LIST, 'bad.hbs': 'a\n{{#each services}}\nb\n' });
  const failed = await api.run([
    'render',
    '--template',
    join(dir, 'list.hbs'),
    '--out',
    join(dir, 'out.txt'),
    '--exec',
    'echo reloading; exit 3',
  ]);
  t.is(failed.code, 1);
  t.regex(
    failed.stderr,
    /render: --exec "echo reloading; exit 3" exited 3 after \d+ms\n {2}\| reloading\n/,
  );
  const bad = await api.run(['render', '--template', join(dir, 'bad.hbs')]);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /bad\.hbs: Parse error on line \d+:/);
  const stdout = await api.run(['render', '--template', join(dir, 'list.hbs')]);
  t.is(stdout.stdout, 'shop :8000: 10.0.0.1:20001 10.0.0.1:20002\n');
});

test('render --watch renders again on each endpoint change and runs --exec once per change', async (t) => {
  const api = await startTestApi(t, etcd());
  await putService(api.store, 'web', { units: ['web@.service'] });
  const dir = await unitDir(t, { 'list.hbs': LIST });
  const out = join(dir, 'out.txt');
  const runs = join(dir, 'runs');
  await writeFile(runs, '');
  const live = api.spawn([
    'render',
    '--template',
    join(dir, 'list.hbs'),
    '--out',
    out,
    '--watch',
    '--exec',
    `cat ${out} >> ${runs}`,
  ]);
  const runsNow = async (): Promise<string[]> =>
    (await readFile(runs, 'utf8')).split('\n').filter((l) => l !== '');
  await assertEventually(async () => (await runsNow()).length === 1, {
    message: 'first render ran CMD',
  });
  t.deepEqual(await runsNow(), ['web:']);

  const ep = { service: 'web', machine: 'm1', address: '10.0.0.1' };
  await putEndpoint(api.store, { ...ep, unit: 'web@1.service', port: 20001 });
  await assertEventually(async () => (await runsNow()).length === 2, {
    message: 'a run per change',
  });
  t.is(await readFile(out, 'utf8'), 'web: 10.0.0.1:20001\n');
  t.deepEqual(await runsNow(), ['web:', 'web: 10.0.0.1:20001']);

  // A change the output does not show (the endpoint's since) neither writes nor runs CMD.
  await putEndpoint(api.store, { ...ep, unit: 'web@1.service', port: 20001 });
  await deleteEndpoint(api.store, { service: 'web', machine: 'm1', unit: 'web@1.service' });
  await assertEventually(async () => (await runsNow()).length === 3, { message: 'removed' });
  await sleep(1_000);
  t.deepEqual(await runsNow(), ['web:', 'web: 10.0.0.1:20001', 'web:']);
  t.regex(live.stderr(), /--exec "cat .*" exited 0/);
  t.is(await live.stop(), 0);
});

test('a slow --exec does not pile up: changes during a run make one more run', async (t) => {
  const api = await startTestApi(t, etcd());
  await putService(api.store, 'web', { units: ['web@.service'] });
  const dir = await unitDir(t, { 'list.hbs': LIST });
  const runs = join(dir, 'runs');
  await writeFile(runs, '');
  const live = api.spawn([
    'render',
    '--template',
    join(dir, 'list.hbs'),
    '--out',
    join(dir, 'out.txt'),
    '--watch',
    '--exec',
    `sleep 2; echo ran >> ${runs}`,
  ]);
  const count = async (): Promise<number> => (await readFile(runs, 'utf8')).split('\n').length - 1;
  await assertEventually(async () => (await count()) === 1, { message: 'first run' });
  for (let i = 0; i < 5; i++) {
    await putEndpoint(api.store, {
      service: 'web',
      unit: `web@${i}.service`,
      machine: 'm',
      port: 100 + i,
    });
    await sleep(100);
  }
  await assertEventually(async () =>
    (await readFile(join(dir, 'out.txt'), 'utf8')).includes('127.0.0.1:104'),
  );
  await assertEventually(async () => (await count()) >= 2, { message: 'a run after the changes' });
  await sleep(5_000); // long enough for any further run to finish
  const total = await count();
  // One run for the first change, at most one for the 4 that came while it ran (a loaded
  // machine may split them over two runs, never five).
  t.true(total <= 4, `${total} runs`);
  t.true(total >= 2, `${total} runs`);
  t.is(await live.stop(), 0);
});

test('the example templates render from real records; HAProxy accepts its config, blue or green', async (t) => {
  const api = await startTestApi(t, etcd());
  await shop(api);
  const dir = await unitDir(t, {});
  const cfg = join(dir, 'haproxy.cfg');
  const haproxy = join(EXAMPLES, 'services', 'haproxy.cfg.hbs');
  for (const live of ['green', 'blue']) {
    const r = await api.run([
      'render',
      '--template',
      haproxy,
      '--out',
      cfg,
      '--set',
      `live=${live}`,
    ]);
    t.is(r.code, 0, r.stderr);
    const text = await readFile(cfg, 'utf8');
    t.regex(text, new RegExp(`default_backend shop_${live}\\n`));
    t.regex(
      text,
      /backend shop_blue\n.*\n {4}server shop-blue_1\.service_m1 10\.0\.0\.1:20001 check/,
    );
    t.regex(
      text,
      /backend shop_green\n.*\n {4}server shop-green_1\.service_m1 10\.0\.0\.1:20002 check/,
    );
    t.notRegex(text, /20003/, 'an endpoint failing its check takes no traffic');
    const check = await run('haproxy', ['-c', '-f', cfg]).catch((err: unknown) => err as Error);
    t.false(check instanceof Error, `haproxy -c: ${String(check)}\n${text}`);
  }
  const nginx = await api.run([
    'render',
    '--template',
    join(EXAMPLES, 'services', 'nginx.conf.hbs'),
  ]);
  t.is(nginx.code, 0, nginx.stderr);
  t.regex(
    nginx.stdout,
    /upstream shop \{\n {4}least_conn;\n {4}server 10\.0\.0\.1:20001 max_fails/,
  );
  t.regex(nginx.stdout, /location \/shop\/ \{\n {8}proxy_pass http:\/\/shop\/;/);
});

test('the example service units verify', async (t) => {
  const dir = join(EXAMPLES, 'services');
  const files = (await readdir(dir)).filter((f) => f.endsWith('.service')).map((f) => join(dir, f));
  t.is(files.length, 3);
  const r = await flotctl(['verify', ...files]);
  t.is(r.code, 0, r.stdout + r.stderr);
});

test('render --watch outlives the API going away, and catches up with what changed meanwhile', async (t) => {
  const store = openStore({
    endpoints: etcd().endpoint,
    prefix: uniquePrefix(t.title.slice(0, 40)),
  });
  const logger = pino({ level: 'silent' });
  let server = await startApiServer({ store, listen: '127.0.0.1:0', logger });
  const endpoint = server.address;
  t.teardown(async () => {
    await server.close();
    store.close();
  });
  await putService(store, 'web', { units: ['web@.service'] });
  const dir = await unitDir(t, { 'list.hbs': LIST });
  const out = join(dir, 'out.txt');
  const live = spawnFlotctl(t, [
    '--endpoint',
    endpoint,
    'render',
    '--template',
    join(dir, 'list.hbs'),
    '--out',
    out,
    '--watch',
  ]);
  await assertEventually(async () => (await readFile(out, 'utf8').catch(() => '')) === 'web:\n');
  await server.close();
  await assertEventually(() => /lost the Flotilla API/.test(live.stderr()), {
    message: 'render says it lost the API',
  });
  // Written while no API answers: the render must read it when the API is back.
  await putEndpoint(store, { service: 'web', unit: 'web@1.service', machine: 'm', port: 20001 });
  server = await startApiServer({ store, listen: endpoint, logger });
  await assertEventually(async () => (await readFile(out, 'utf8')) === 'web: 127.0.0.1:20001\n', {
    message: 'the endpoint written meanwhile is rendered',
  });
  t.is(await live.stop(), 0);
});
