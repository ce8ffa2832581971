/**
 * `flotctl scale` of a name that is a plain unit, not a template, against the real API over a
 * real etcd: it says so, instead of "template hello@.service is not submitted".
 */
import test from 'ava';
import { etcdForFile, unitText } from '../../testkit/index.js';
import { fingerprint, startTestApi, unitDir } from './cli-kit.js';

const server = etcdForFile(test);

test('scale hello=3 of a plain hello.service says hello.service is not a template, writes nothing', async (t) => {
  const api = await startTestApi(t, server());
  const dir = await unitDir(t, { 'hello.service': unitText() });
  const sub = await api.run(['submit', `${dir}/hello.service`]);
  t.is(sub.code, 0, sub.stderr);
  const before = await fingerprint(api.store);
  for (const args of [['hello=3'], ['hello', '3'], ['hello@=3']]) {
    const r = await api.run(['scale', '--no-block', ...args]);
    t.is(r.code, 1, args.join(' '));
    t.is(
      r.stderr,
      'hello.service is not a template: scale runs N instances of a template such as hello@.service (submit one), while hello.service runs once (flotctl start hello.service)\n',
      args.join(' '),
    );
  }
  t.deepEqual(await fingerprint(api.store), before);
  // A name that is neither keeps the API's answer.
  const none = await api.run(['scale', '--no-block', 'nothing=2']);
  t.is(none.code, 1);
  t.regex(none.stderr, /nothing@\.service/);
  t.notRegex(none.stderr, /not a template/);
});
