/**
 * etcd out of space (its NOSPACE alarm, raised when the database reaches
 * --quota-backend-bytes): a write through the API is refused with FAILED_PRECONDITION saying
 * what happened and what the operator does about it, not an internal error quoting etcd; it
 * writes nothing; reads still answer; once space is freed and the alarm disarmed, writes work.
 * Found by the chaos suite (test/chaos/etcd-faults.test.ts).
 */
import { execFile } from 'node:child_process';
import { status } from '@grpc/grpc-js';
import test from 'ava';
import { startEtcd, unitText, type EtcdServer } from '../../testkit/index.js';
import { failure, fingerprint, startApi } from './api-kit.js';

let etcd: EtcdServer | undefined;
test.before(async () => {
  etcd = await startEtcd({ extraArgs: [`--quota-backend-bytes=${16 << 20}`] });
});
test.after.always(async () => etcd?.stop());

function etcdctl(args: readonly string[], input?: Buffer): Promise<{ code: number; err: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      'etcdctl',
      [`--endpoints=${etcd?.endpoint}`, '--command-timeout=10s', ...args],
      { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 60_000 },
      (err, _stdout, stderr) => resolve({ code: err === null ? 0 : 1, err: stderr }),
    );
    child.stdin?.end(input);
  });
}

test('a write while etcd is out of space is refused clearly, writes nothing, and works once freed', async (t) => {
  if (etcd === undefined) throw new Error('etcd did not start');
  const api = await startApi(t, etcd);
  await api.submit({ files: [{ name: 'before.service', contents: unitText() }] });

  const value = Buffer.alloc(1 << 20, 'x');
  let full = false;
  for (let i = 0; i < 64 && !full; i++) {
    const put = await etcdctl(['put', `/fill/${i}`], value);
    full = /database space exceeded/.test(put.err);
  }
  t.true(full, 'etcd raised its NOSPACE alarm');

  const before = await fingerprint(api.store);
  const err = await failure(
    api.submit({ files: [{ name: 'after.service', contents: unitText() }] }),
  );
  t.is(err.code, status.FAILED_PRECONDITION, err.details);
  t.regex(err.details, /out of space/);
  t.regex(err.details, /alarm disarm/);
  t.notRegex(err.details, /internal/i);
  t.deepEqual(await fingerprint(api.store), before, 'nothing was written');
  t.is((await api.get('before.service')).unit?.name, 'before.service', 'reads still answer');

  await etcdctl(['del', '--prefix', '/fill/']);
  await etcdctl(['compact', String(await revision()), '--physical']);
  await etcdctl(['defrag']);
  t.is((await etcdctl(['alarm', 'disarm'])).code, 0);
  const ok = await api.submit({ files: [{ name: 'after.service', contents: unitText() }] });
  t.deepEqual(ok.created, ['after.service']);
});

/** etcd's current revision. */
async function revision(): Promise<string> {
  return new Promise((resolve) =>
    execFile(
      'etcdctl',
      [`--endpoints=${etcd?.endpoint}`, 'endpoint', 'status', '-w', 'json'],
      { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 30_000 },
      (_err, stdout) => resolve(/"revision":(\d+)/.exec(stdout)?.[1] ?? '0'),
    ),
  );
}
