/**
 * `flotctl secret create|ls|rm` as a child process against a real API and etcd: the value
 * goes in from a file or stdin, never comes out, and a file over 64 KiB is refused locally.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { parseSecretsKey } from '../../lib/secret-box.js';
import { startApiServer } from '../../scheduler/api/server.js';
import { openStore } from '../../store/index.js';
import { etcdForFile, uniquePrefix } from '../../testkit/index.js';
import { quietLogger } from '../api/api-kit.js';
import { FLOTCTL, flotctl, ROOT } from './cli-kit.js';

const etcd = etcdForFile(test);
const VALUE = 's3cr3t-db-pass';

test('secret create from a file and stdin, ls without values, rm; too large is refused locally', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-secret-'));
  const store = openStore({ endpoints: etcd().endpoint, prefix: uniquePrefix(t.title) });
  const server = await startApiServer({
    store,
    listen: '127.0.0.1:0',
    logger: quietLogger,
    secretsKey: parseSecretsKey(Buffer.from('22'.repeat(32)), 'k'),
  });
  t.teardown(async () => {
    await server.close();
    store.close();
    await rm(dir, { recursive: true, force: true });
  });
  const at = ['--endpoint', server.address];
  await writeFile(join(dir, 'db'), VALUE);
  const created = await flotctl([...at, 'secret', 'create', 'web-db', join(dir, 'db')]);
  t.is(created.code, 0, created.stderr);
  t.is(created.stdout, `secret web-db created (${VALUE.length} bytes)\n`);

  const piped = await new Promise<{ code: number; stdout: string }>((resolve) => {
    const child = execFile(
      process.execPath,
      [FLOTCTL, ...at, 'secret', 'create', 'web-api', '-'],
      { cwd: ROOT, timeout: 60_000 },
      (err, stdout) => resolve({ code: err === null ? 0 : Number(err.code), stdout }),
    );
    child.stdin?.end('api-key-123');
  });
  t.is(piped.code, 0);

  const ls = await flotctl([...at, 'secret', 'ls']);
  t.is(ls.code, 0, ls.stderr);
  t.regex(ls.stdout, /^NAME\s+SIZE\s+CREATED\s+USED-BY\n/);
  t.regex(ls.stdout, /\nweb-api\s+11B\s/);
  t.regex(ls.stdout, /\nweb-db\s+14B\s/);
  t.false(ls.stdout.includes(VALUE) || ls.stdout.includes('api-key-123'));

  await writeFile(join(dir, 'big'), Buffer.alloc(64 * 1024 + 1, 120));
  const big = await flotctl([...at, 'secret', 'create', 'big', join(dir, 'big')]);
  t.is(big.code, 1);
  t.regex(big.stderr, /more than the 65536 bytes a secret may hold/);

  const removed = await flotctl([...at, 'secret', 'rm', 'web-db']);
  t.is(removed.stdout, 'secret web-db removed\n');
  const gone = await flotctl([...at, 'secret', 'rm', 'web-db']);
  t.is(gone.code, 1);
  t.regex(gone.stderr, /secret web-db does not exist/);
});
