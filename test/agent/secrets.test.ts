/**
 * `Secret=` delivered by a real agent (a child process, so its own log can be searched) on
 * a real etcd, the secret created through the real API with `flotctl secret create`: the
 * unit reads it at `/run/secrets/NAME` (`$CREDENTIALS_DIRECTORY/NAME` for plain processes),
 * 0400 of its user; a unit that does not name it sees nothing; the value is in no record,
 * log or flotctl answer; a wrong key, a missing secret or an agent without a key fail the
 * unit with the reason; the files go when the unit stops. Each driver this host has.
 */
import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { MachineLayout } from '../../agent/runtime/layout.js';
import { parseSecretsKey } from '../../lib/secret-box.js';
import { startApiServer } from '../../scheduler/api/server.js';
import { assertEventually, etcdForFile, uniquePrefix } from '../../testkit/index.js';
import { quietLogger } from '../api/api-kit.js';
import { flotctl } from '../cli/cli-kit.js';
import { DRIVERS } from './harness.js';
import {
  place,
  service,
  spawnAgent,
  stateRecord,
  storeFor,
  unplace,
  waitRegistered,
  waitRunning,
  waitState,
} from './daemon-harness.js';

const etcd = etcdForFile(test);

/** A cluster of one API replica (with the secrets key) and a key file for agents. */
async function cluster(t: ExecutionContext, name: string) {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-secrets-'));
  const prefix = uniquePrefix(name);
  const store = storeFor(t, etcd(), prefix);
  const hex = randomBytes(32).toString('hex');
  const keyFile = join(dir, 'secrets.key');
  await writeFile(keyFile, `${hex}\n`, { mode: 0o600 });
  const server = await startApiServer({
    store,
    listen: '127.0.0.1:0',
    logger: quietLogger,
    secretsKey: parseSecretsKey(Buffer.from(hex), keyFile),
  });
  t.teardown(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });
  const at = ['--endpoint', server.address];
  const create = async (secret: string, value: string): Promise<void> => {
    const file = join(dir, secret);
    await writeFile(file, value, { mode: 0o600 });
    const res = await flotctl([...at, 'secret', 'create', secret, file]);
    t.is(res.code, 0, res.stderr);
    await rm(file);
  };
  return { dir, prefix, store, keyFile, at, create };
}

/** What the unit prints about `$CREDENTIALS_DIRECTORY/db`: never the value, its digest. */
const SHOW = service(
  'Secret=db',
  `ExecStart=/bin/sh -c 'f="$CREDENTIALS_DIRECTORY/db"; echo "dir=$CREDENTIALS_DIRECTORY mode=$(stat -c %a "$f") uid=$(stat -c %u "$f") sum=$(sha256sum < "$f" | cut -d" " -f1) ls=$(ls "$CREDENTIALS_DIRECTORY")"; exec sleep 3600'`,
);
/** A unit that names no secret, looking where secrets would be. */
const PEEK = service(
  `ExecStart=/bin/sh -c 'echo "peek cred=[$CREDENTIALS_DIRECTORY] $(ls /run/secrets 2>&1 | head -c 200)"; exec sleep 3600'`,
);

async function logOf(layout: MachineLayout, unit: string, pattern: RegExp): Promise<string> {
  return assertEventually(
    async () => {
      const text = await readFile(layout.logPath(unit), 'utf8');
      if (!pattern.test(text)) throw new Error(`log so far: ${text.slice(-500)}`);
      return text;
    },
    { timeoutMs: 30_000, message: `${unit} logs ${String(pattern)}` },
  );
}

for (const driver of DRIVERS) {
  test.serial(
    `${driver}: a unit reads the secret it names as a 0400 file, another sees none, the value is in no record, log or flotctl answer, and the files go when it stops`,
    async (t) => {
      const c = await cluster(t, `${driver}-deliver`);
      const value = `pw-${randomBytes(12).toString('hex')}`;
      await c.create('db', value);
      const agent = await spawnAgent(t, {
        endpoint: etcd().endpoint,
        prefix: c.prefix,
        driver,
        args: [`--secrets-key-file=${c.keyFile}`],
      });
      await waitRegistered(c.store, agent.machineId);
      // In a container as nobody (it owns its file); a plain process as the agent's user.
      const text =
        driver === 'runc' ? SHOW.replace('[Service]\n', '[Service]\nUser=nobody\n') : SHOW;
      await place(c.store, agent.machineId, 'app.service', text);
      await place(c.store, agent.machineId, 'peek.service', PEEK);
      await waitRunning(c.store, 'app.service');
      await waitRunning(c.store, 'peek.service');

      const layout = new MachineLayout(agent.stateDir, agent.machineId);
      const secretsDir = layout.secretsDir('app.service');
      const digest = createHash('sha256').update(value).digest('hex');
      const where = driver === 'runc' ? '/run/secrets' : secretsDir;
      const uid = driver === 'runc' ? 65534 : 0;
      const log = await logOf(layout, 'app.service', /sum=/);
      t.true(
        log.includes(`dir=${where} mode=400 uid=${uid} sum=${digest} ls=db`),
        `the unit read its secret: ${log}`,
      );
      const peek = await logOf(layout, 'peek.service', /peek/);
      t.regex(peek, /peek cred=\[\] .*No such file or directory/);
      t.deepEqual(await readdir(join(agent.stateDir, 'unit-secrets', agent.machineId)), [
        'app.service',
      ]);
      const mounts = await readFile('/proc/self/mountinfo', 'utf8');
      t.true(mounts.includes(` ${secretsDir} `), 'a tmpfs of its own');

      // The value (and its base64) nowhere it must not be.
      const b64 = Buffer.from(value).toString('base64');
      const absent = (what: string, text: string): void => {
        t.false(text.includes(value) || text.includes(b64), `the value is in ${what}`);
      };
      absent(
        'the sealed record',
        (await c.store.get(c.store.keys.secret('db')))?.value.toString() ?? '',
      );
      absent(
        'the state record',
        JSON.stringify(await stateRecord(c.store, 'app.service'), (_k, v: unknown) =>
          typeof v === 'bigint' ? String(v) : v,
        ),
      );
      const unitDir = layout.unitDir('app.service');
      for (const f of ['meta.json', 'config.json']) {
        absent(f, await readFile(join(unitDir, f), 'utf8').catch(() => ''));
      }
      for (const args of [['status', 'app.service'], ['cat', 'app.service'], ['list-units']]) {
        const res = await flotctl([...c.at, ...args]);
        t.is(res.code, 0, `${args.join(' ')}: ${res.stderr}`);
        absent(`flotctl ${args.join(' ')}`, res.stdout + res.stderr);
      }
      absent("the agent's log", agent.output());
      t.true(agent.output().length > 0, 'the agent logged (at debug)');

      await unplace(c.store, agent.machineId, 'app.service');
      await assertEventually(
        async () => (await stateRecord(c.store, 'app.service')) === undefined,
        {
          timeoutMs: 30_000,
          message: 'app.service stops',
        },
      );
      await t.throwsAsync(stat(secretsDir), { code: 'ENOENT' }, 'its secrets directory is gone');
      t.false((await readFile('/proc/self/mountinfo', 'utf8')).includes(` ${secretsDir} `));
    },
  );
}

test.serial(
  'a wrong key, a missing secret and an agent without a key fail the unit with the reason, and never run it',
  async (t) => {
    const c = await cluster(t, 'refused');
    const value = `pw-${randomBytes(12).toString('hex')}`;
    await c.create('db', value);
    const wrongKey = join(c.dir, 'wrong.key');
    await writeFile(wrongKey, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    const [driver] = DRIVERS;
    if (driver === undefined) throw new Error('no driver');
    const wrong = await spawnAgent(t, {
      endpoint: etcd().endpoint,
      prefix: c.prefix,
      driver,
      args: [`--secrets-key-file=${wrongKey}`],
    });
    const keyless = await spawnAgent(t, { endpoint: etcd().endpoint, prefix: c.prefix, driver });
    const right = await spawnAgent(t, {
      endpoint: etcd().endpoint,
      prefix: c.prefix,
      driver,
      args: [`--secrets-key-file=${c.keyFile}`],
    });
    for (const a of [wrong, keyless, right]) await waitRegistered(c.store, a.machineId);
    const named = (secret: string) =>
      service(`Secret=${secret}`, 'ExecStart=/bin/sh -c "echo ran; exec sleep 3600"');
    await place(c.store, wrong.machineId, 'wrong-key.service', named('db'));
    await place(c.store, keyless.machineId, 'no-key.service', named('db'));
    await place(c.store, right.machineId, 'missing.service', named('nope'));
    const failed = (name: string) =>
      waitState(c.store, name, (s) => s.activeState === 'failed', 'failed');
    const cases: [string, RegExp][] = [
      [
        'wrong-key.service',
        /Secret=db: sealed under key [0-9a-f]{16}, this agent holds key [0-9a-f]{16}; give it the schedulers' --secrets-key-file/,
      ],
      [
        'no-key.service',
        /Secret=db: this agent has no secrets key; start it with --secrets-key-file/,
      ],
      [
        'missing.service',
        /Secret=nope: no such secret; create it \(flotctl secret create nope FILE\)/,
      ],
    ];
    for (const [name, reason] of cases) {
      const state = await failed(name);
      t.regex(state.message, reason, name);
      t.is(state.restarts, 0, `${name} is not retried`);
      const res = await flotctl([...c.at, 'status', name]);
      t.regex(res.stdout, reason, `flotctl status ${name} says why`);
      t.false(res.stdout.includes(value));
    }
    for (const a of [wrong, keyless, right]) {
      t.false(a.output().includes(value));
      t.is(a.child.exitCode, null, 'the agent runs on');
      const layout = new MachineLayout(a.stateDir, a.machineId);
      for (const name of ['wrong-key.service', 'no-key.service', 'missing.service']) {
        const log = await readFile(layout.logPath(name), 'utf8').catch(() => '');
        t.false(log.includes('ran'), `${name} never ran`);
      }
    }
  },
);

test.serial(
  "an agent restarted with its units running adopts a unit with secrets as it was: same process, same files, no read of etcd's record",
  async (t) => {
    const c = await cluster(t, 'adopt');
    const value = `pw-${randomBytes(12).toString('hex')}`;
    await c.create('db', value);
    const driver = DRIVERS.at(-1) ?? 'process';
    const first = await spawnAgent(t, {
      endpoint: etcd().endpoint,
      prefix: c.prefix,
      driver,
      args: [`--secrets-key-file=${c.keyFile}`],
    });
    await waitRegistered(c.store, first.machineId);
    await place(c.store, first.machineId, 'app.service', SHOW);
    const before = await waitRunning(c.store, 'app.service');
    const layout = new MachineLayout(first.stateDir, first.machineId);
    const file = join(layout.secretsDir('app.service'), 'db');
    const inode = (await stat(file)).ino;
    await first.kill('SIGKILL');
    // The secret is gone from etcd meanwhile: the adopted unit must not need it again.
    const res = await flotctl([...c.at, 'secret', 'rm', '--force', 'db']);
    t.is(res.code, 0, res.stderr);
    const second = await spawnAgent(t, {
      endpoint: etcd().endpoint,
      prefix: c.prefix,
      driver,
      machineId: first.machineId,
      stateDir: first.stateDir,
      args: [`--secrets-key-file=${c.keyFile}`],
    });
    await waitRegistered(c.store, second.machineId);
    const after = await waitState(
      c.store,
      'app.service',
      (s) => s.activeState === 'active' && s.pid === before.pid && s.restarts === 0,
      'active, the same pid',
    );
    t.is(after.pid, before.pid);
    t.is((await stat(file)).ino, inode, 'the same file, not written again');
    t.false(second.output().includes(value));
  },
);
