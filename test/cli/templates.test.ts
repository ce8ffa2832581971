/**
 * A template and its instances, against the real API over a real etcd (no scheduler: the
 * instances are wanted but never placed): destroying a template while instances exist is
 * refused naming them (a few, then a count) unless `--with-instances` destroys them too, and
 * scale still reaches instances whose template is gone (down, never up); plan of a template
 * file plans its instances or says to name them.
 */
import test from 'ava';
import { etcdForFile, unitText } from '../../testkit/index.js';
import {
  addMachine,
  EXAMPLES,
  fingerprint,
  startTestApi,
  unitDir,
  type TestApi,
} from './cli-kit.js';

const server = etcdForFile(test);

async function withInstances(t: Parameters<typeof startTestApi>[0], count: number) {
  const api = await startTestApi(t, server());
  const dir = await unitDir(t, { 'cache@.service': unitText({ exec: '/bin/sleep 3600' }) });
  const sub = await api.run(['submit', `${dir}/cache@.service`]);
  t.is(sub.code, 0, sub.stderr);
  const scaled = await api.run(['scale', '--no-block', '--allow-pending', `cache=${count}`]);
  t.is(scaled.code, 0, scaled.stderr);
  return api;
}

async function unitNames(api: TestApi): Promise<string[]> {
  const r = await api.run(['list-unit-files', '--no-legend', '--fields', 'unit']);
  return r.stdout.split('\n').filter((l) => l !== '');
}

test('destroy of a template with instances is refused, naming them, and changes nothing', async (t) => {
  const api = await withInstances(t, 2);
  const before = await fingerprint(api.store);
  const r = await api.run(['destroy', 'cache@.service']);
  t.is(r.code, 1);
  t.is(
    r.stderr,
    'cache@.service has 2 instances (cache@1.service, cache@2.service): destroy them with it (flotctl destroy --with-instances cache@.service) or first (flotctl scale cache=0)\n',
  );
  t.deepEqual(await fingerprint(api.store), before);
  const many = await withInstances(t, 7);
  const seven = await many.run(['destroy', '--no-block', 'cache@.service', 'cache@7.service']);
  t.is(seven.code, 1);
  t.regex(
    seven.stderr,
    /^cache@\.service has 6 instances \(cache@1\.service, cache@2\.service, cache@3\.service, cache@4\.service, cache@5\.service and 1 more\): /,
  );
});

test('destroy --with-instances removes the template and every instance; naming them all works too', async (t) => {
  const api = await withInstances(t, 3);
  const r = await api.run(['destroy', '--with-instances', '--no-block', 'cache@.service']);
  t.is(r.code, 0, r.stderr);
  t.is(
    r.stdout,
    'Destroyed cache@.service\nDestroyed cache@1.service\nDestroyed cache@2.service\nDestroyed cache@3.service\n',
  );
  t.deepEqual(await unitNames(api), []);
  const again = await withInstances(t, 1);
  const all = await again.run(['destroy', 'cache@1.service', 'cache@.service']);
  t.is(all.code, 0, all.stderr);
  t.deepEqual(await unitNames(again), []);
});

test('scale reaches instances whose template is gone: down works, up says to submit it', async (t) => {
  const api = await withInstances(t, 3);
  // A template destroyed before destroy refused it (or deleted by hand): only instances left.
  await api.store.delete(api.store.keys.unit('cache@.service'));
  const up = await api.run(['scale', '--no-block', '--allow-pending', 'cache=4']);
  t.is(up.code, 1);
  t.is(
    up.stderr,
    'template cache@.service is not submitted: its 3 instances can be scaled down (to at most 3) but new ones need the template: submit it first\n',
  );
  const down = await api.run(['scale', '--no-block', 'cache@.service=1']);
  t.is(down.code, 0, down.stderr);
  t.regex(down.stdout, /destroyed cache@\{2\.\.3\}\.service/);
  const zero = await api.run(['scale', 'cache=0']);
  t.is(zero.code, 0, zero.stderr);
  t.deepEqual(await unitNames(api), []);
  const none = await api.run(['scale', '--no-block', 'cache=0']);
  t.is(none.code, 1);
  t.is(none.stderr, 'template cache@.service is not submitted\n');
});

test('plan of a template file plans its instances on the file, or says to name them', async (t) => {
  const api = await startTestApi(t, server());
  const web = `${EXAMPLES}web@.service`;
  const none = await api.run(['plan', web]);
  t.is(none.code, 1);
  t.is(none.stdout, '');
  t.is(
    none.stderr,
    'web@.service is a template with no instances: name the instances to plan with it (flotctl plan FILE web@{1..3}.service)\n',
  );
  const named = await api.run(['plan', '--no-legend', web, 'web@1.service']);
  t.is(named.code, 1, 'no machine yet');
  t.regex(named.stdout, /^web@1\.service\s+-\s+-\s+0\/0 machines/m);
  for (const ip of ['10.0.0.1', '10.0.0.2']) await addMachine(api.store, { addresses: [ip] });
  const sub = await api.run(['submit', web]);
  t.is(sub.code, 0, sub.stderr);
  await api.run(['scale', '--no-block', 'web=2']);
  const r = await api.run(['plan', web]);
  t.is(r.code, 0, r.stdout + r.stderr);
  t.regex(r.stdout, /^web@1\.service\s+\S+\/10\.0\.0\.\d\s+-\s+-$/m);
  t.regex(r.stdout, /^web@2\.service\s+\S+\/10\.0\.0\.\d\s+-\s+-$/m);
  t.regex(r.stdout, /\n2 of 2 units can be placed on 2 machines\n$/);
});
