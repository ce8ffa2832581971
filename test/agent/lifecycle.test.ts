/**
 * A unit's lifecycle under both runtime drivers: start, stop with ExecStop/KillSignal/
 * TimeoutStopSec/ExecStopPost, restarts with back-off, oneshot, and units that cannot run.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertEventually } from '../../testkit/index.js';
import { DRIVERS, isPidAlive, managed, running, stateOf, unit } from './harness.js';

const LOOP = `/bin/sh -c 'echo up; while true; do sleep 0.1; done'`;
const GRACEFUL = `/bin/sh -c 'trap "echo got-term; exit 0" TERM; echo up; while true; do sleep 0.1; done'`;
const STUBBORN = `/bin/sh -c 'trap "" TERM; echo up; while true; do sleep 0.1; done'`;

for (const driver of DRIVERS) {
  test(`${driver}: a unit runs with its environment and working directory, ExecStartPre first and ExecStartPost after`, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-env-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'env'), '# read by the agent\nFROM="the file"\nEXTRA=1\n');
    const m = await managed(t, { driver });
    const def = unit(
      'env.service',
      `/bin/sh -c 'echo "greeting=$GREETING from=\${FROM} extra=$EXTRA dir=$(pwd)"; exec sleep 1000'`,
      {
        Environment: ['GREETING=hello', '"FROM=the unit"'],
        EnvironmentFile: join(dir, 'env'),
        WorkingDirectory: '/etc',
        ExecStartPre: '/bin/echo pre $GREETING',
        ExecStartPost: '/bin/echo post',
      },
    );
    await m.manager.start(def);
    const state = await running(m, 'env.service');
    t.true(state.pid > 0 && (await isPidAlive(state.pid)));
    t.is(state.hash, def.hash);
    t.is(state.machine, m.machineId);
    const log = await m.manager.logs.tail('env.service', 10);
    const program = log.filter((l) => !l.startsWith('flotilla:'));
    // EnvironmentFile= wins over Environment=, as in systemd.
    t.deepEqual(program, ['pre hello', 'greeting=hello from=the file extra=1 dir=/etc', 'post']);
    const subs = m.states.filter((s) => s.name === 'env.service').map((s) => s.subState);
    t.deepEqual([...new Set(subs)], ['start-pre', 'start-post', 'running']);
  });

  test(`${driver}: stop runs ExecStop, SIGKILLs what ignores KillSignal after TimeoutStopSec, then ExecStopPost`, async (t) => {
    const m = await managed(t, { driver });
    await m.manager.start(
      unit('stubborn.service', STUBBORN, {
        TimeoutStopSec: '2s',
        ExecStop: '/bin/echo exec-stop main=${MAINPID}',
        ExecStopPost: '/bin/echo exec-stop-post result=${SERVICE_RESULT}',
      }),
    );
    const { pid } = await running(m, 'stubborn.service');
    const began = Date.now();
    await m.manager.stop('stubborn.service');
    const took = Date.now() - began;
    t.true(took >= 1_800, `stop took ${took} ms: it must wait TimeoutStopSec before SIGKILL`);
    t.true(took < 15_000, `stop took ${took} ms`);
    t.false(await isPidAlive(pid));
    const last = m.states.filter((s) => s.name === 'stubborn.service').at(-1);
    t.is(last?.activeState, 'inactive');
    t.is(last?.subState, 'dead');
    t.is(m.manager.get('stubborn.service'), undefined);
    const log = await m.manager.logs.tail('stubborn.service', 20);
    // $MAINPID as the unit sees it: pid 1 of its pid namespace in a container.
    const stop = log.indexOf(`exec-stop main=${driver === 'runc' ? 1 : pid}`);
    const post = log.indexOf('exec-stop-post result=timeout');
    t.true(stop >= 0 && post > stop, log.join('\n'));
  });

  test(`${driver}: a unit that handles KillSignal stops at once with status 0`, async (t) => {
    const m = await managed(t, { driver });
    await m.manager.start(unit('graceful.service', GRACEFUL, { TimeoutStopSec: '20s' }));
    const { pid } = await running(m, 'graceful.service');
    const began = Date.now();
    await m.manager.stop('graceful.service');
    t.true(Date.now() - began < 10_000);
    t.false(await isPidAlive(pid));
    const exits = m.states.filter((s) => s.name === 'graceful.service' && s.exitStatus >= 0);
    t.is(exits.at(-1)?.exitStatus, 0);
    t.true((await m.manager.logs.tail('graceful.service', 10)).includes('got-term'));
  });

  test(`${driver}: ExecStop gets $MAINPID and a synchronous ExecStop stops the unit gracefully`, async (t) => {
    const m = await managed(t, { driver });
    // As in systemd, what remains after ExecStop returns gets KillSignal at once; SIGKILL here,
    // so only the ExecStop (which waits for the process to go) can give it a graceful end.
    const stop = `/bin/sh -c 'kill -TERM $MAINPID; while kill -0 $MAINPID 2>/dev/null; do sleep 0.05; done'`;
    await m.manager.start(
      unit('killer.service', GRACEFUL, { ExecStop: stop, KillSignal: 'SIGKILL' }),
    );
    await running(m, 'killer.service');
    await m.manager.stop('killer.service');
    const exits = m.states.filter((s) => s.name === 'killer.service' && s.exitStatus >= 0);
    t.is(exits.at(-1)?.exitStatus, 0);
    t.true((await m.manager.logs.tail('killer.service', 10)).includes('got-term'));
  });

  test(`${driver}: Restart=on-failure restarts a crashing unit with a doubling back-off and counts restarts`, async (t) => {
    const m = await managed(t, { driver, timings: { restartCapMs: 800 } });
    await m.manager.start(
      unit('crash@1.service', `/bin/sh -c 'echo crashing; exit 3'`, {
        Restart: 'on-failure',
        RestartSec: '200ms',
      }),
    );
    const state = await stateOf(m, 'crash@1.service', (s) => s.restarts >= 4, 'four restarts');
    t.is(state.exitStatus, 3);
    const delays = m.states
      .filter((s) => s.subState === 'auto-restart')
      .map((s) => /restarting in (\S+)$/.exec(s.message)?.[1]);
    // Written as durations are everywhere (250ms, 30s), never "30000 ms".
    t.deepEqual(delays.slice(0, 4), ['200ms', '400ms', '800ms', '800ms']);
    const counts = m.states.filter((s) => s.subState === 'auto-restart').map((s) => s.restarts);
    t.deepEqual(counts.slice(0, 4), [1, 2, 3, 4]);
    t.regex(
      m.states.find((s) => s.subState === 'auto-restart')?.message ?? '',
      /ExecStart=\/bin\/sh \(line \d+\) exited with status 3/,
    );
  });

  test(`${driver}: Type=exec is active only once the program itself runs`, async (t) => {
    const m = await managed(t, { driver });
    const atRunning: string[] = [];
    m.manager.onState((s) => {
      if (s.subState === 'running') atRunning.push(readFileSync(`/proc/${s.pid}/cmdline`, 'utf8'));
    });
    await m.manager.start(unit('exec.service', '/bin/sleep 1000', { Type: 'exec' }));
    await running(m, 'exec.service');
    t.deepEqual(atRunning, ['/bin/sleep\u00001000\u0000']);
  });

  // Plain processes only: a runc container has a private /tmp, where the broken program lives.
  if (driver === 'process') {
    test(`${driver}: Type=exec never reports active for a program that cannot be executed`, async (t) => {
      const dir = await mkdtemp(join(tmpdir(), 'flotilla-exec-'));
      t.teardown(() => rm(dir, { recursive: true, force: true }));
      const script = join(dir, 'broken');
      await writeFile(script, '#!/nonexistent/interpreter\n');
      await chmod(script, 0o755);
      const m = await managed(t, { driver });
      await m.manager.start(unit('noexec.service', script, { Type: 'exec' }));
      const state = await stateOf(m, 'noexec.service', (s) => s.activeState === 'failed', 'failed');
      t.is(state.exitStatus, 127);
      t.false(m.states.some((s) => s.activeState === 'active'));
    });
  }

  test(`${driver}: Restart=no leaves a crashed unit failed with its exit status`, async (t) => {
    const m = await managed(t, { driver });
    await m.manager.start(unit('once.service', `/bin/sh -c 'exit 7'`));
    const state = await stateOf(m, 'once.service', (s) => s.activeState === 'failed', 'failed');
    t.is(state.subState, 'failed');
    t.is(state.exitStatus, 7);
    t.is(state.restarts, 0);
    t.regex(state.message, /exited with status 7/);
  });

  test(`${driver}: a oneshot runs its ExecStart lines in order and ends exited with status 0`, async (t) => {
    const m = await managed(t, { driver });
    await m.manager.start(
      unit('batch.service', ['/bin/echo step-one', '-/bin/false', '/bin/echo step-two'], {
        Type: 'oneshot',
      }),
    );
    const state = await stateOf(m, 'batch.service', (s) => s.subState === 'exited', 'exited');
    t.is(state.activeState, 'active');
    t.is(state.exitStatus, 0);
    const log = (await m.manager.logs.tail('batch.service', 10)).filter(
      (l) => !l.startsWith('flotilla:'),
    );
    t.deepEqual(log, ['step-one', 'step-two']);
  });

  test(`${driver}: a failing oneshot ends failed`, async (t) => {
    const m = await managed(t, { driver });
    await m.manager.start(
      unit('bad-batch.service', ['/bin/true', '/bin/false', '/bin/echo never'], {
        Type: 'oneshot',
      }),
    );
    const state = await stateOf(
      m,
      'bad-batch.service',
      (s) => s.activeState === 'failed',
      'failed',
    );
    t.is(state.exitStatus, 1);
    t.regex(state.message, /ExecStart=\/bin\/false \(line \d+\) exited with status 1/);
    t.false((await m.manager.logs.tail('bad-batch.service', 10)).includes('never'));
  });

  test(`${driver}: a unit that cannot run fails with the reason and the others keep running`, async (t) => {
    const m = await managed(t, { driver });
    await m.manager.start(unit('good.service', LOOP));
    await m.manager.start(
      unit('missing.service', '/nonexistent/bin/server --port 1', { Restart: 'always' }),
    );
    await m.manager.start(unit('nouser.service', LOOP, { User: 'no-such-user-xyz' }));
    await m.manager.start(unit('nodir.service', LOOP, { WorkingDirectory: '/nonexistent/dir' }));
    await m.manager.start(unit('noenv.service', LOOP, { EnvironmentFile: '/nonexistent/env' }));
    await m.manager.start(unit('secret.service', LOOP, { Secret: 'web-db' }));
    const failed = (name: string) => stateOf(m, name, (s) => s.activeState === 'failed', 'failed');
    const missing = await failed('missing.service');
    t.regex(
      missing.message,
      /ExecStart=\/nonexistent\/bin\/server \(line \d+\): no such executable/,
    );
    t.is(missing.restarts, 0, 'a missing binary is not retried');
    t.regex((await failed('nouser.service')).message, /User=no-such-user-xyz: no such user/);
    t.regex(
      (await failed('nodir.service')).message,
      /WorkingDirectory=\/nonexistent\/dir: no such directory/,
    );
    t.regex(
      (await failed('noenv.service')).message,
      /EnvironmentFile=\/nonexistent\/env: no such file/,
    );
    // Fail closed where no secrets are delivered (an agent without --secrets-key-file): a
    // unit never runs without the file it names.
    const secret = await failed('secret.service');
    t.regex(
      secret.message,
      /Secret=web-db: this agent delivers no secrets; start it with --secrets-key-file/,
    );
    t.is(secret.restarts, 0);
    t.is((await running(m, 'good.service')).activeState, 'active');
  });

  test(`${driver}: a unit gets the secrets it names as files of its own, and only while it runs`, async (t) => {
    const value = Buffer.from(`v-${randomBytes(8).toString('hex')}`);
    const m = await managed(t, { driver, secrets: async () => new Map([['api-key', value]]) });
    const show = `/bin/sh -c 'cat "$CREDENTIALS_DIRECTORY/api-key" > /tmp/seen; exec sleep 1000'`;
    const def = unit('keyed.service', show, { Secret: 'api-key' });
    await m.manager.start(def);
    await running(m, 'keyed.service');
    const ctx = m.manager.driver.context('keyed.service', def.service);
    const file = join(ctx.secretsDir, 'api-key');
    const seen = m.manager.driver.hostPath(ctx, '/tmp/seen') ?? '';
    await assertEventually(async () => (await readFile(seen)).equals(value), {
      timeoutMs: 10_000,
      message: 'the unit read its secret',
    });
    t.is((await stat(file)).mode & 0o777, 0o400);
    await m.manager.stop('keyed.service');
    await t.throwsAsync(stat(ctx.secretsDir), { code: 'ENOENT' }, 'the files go with the unit');
  });

  const asRoot = process.getuid?.() === 0 ? test : test.skip;
  if (driver === 'process') {
    asRoot(
      'process: a User= unit gets its secrets only where it can reach them, else fails saying where',
      async (t) => {
        const value = Buffer.from(`v-${randomBytes(8).toString('hex')}`);
        const m = await managed(t, { driver, secrets: async () => new Map([['tok', value]]) });
        const show = `/bin/sh -c 'id -u > /dev/null; wc -c < "$CREDENTIALS_DIRECTORY/tok"; exec sleep 1000'`;
        const def = unit('nobody-keyed.service', show, { Secret: 'tok', User: 'nobody' });
        await chmod(m.stateDir, 0o700);
        await m.manager.start(def);
        const closed = await stateOf(
          m,
          'nobody-keyed.service',
          (s) => s.activeState === 'failed',
          'failed',
        );
        t.regex(
          closed.message,
          new RegExp(`uid 65534\\) cannot reach its secrets under ${m.stateDir} \\(mode 700\\)`),
        );
        const ctx = m.manager.driver.context('nobody-keyed.service', def.service);
        await t.throwsAsync(stat(ctx.secretsDir), { code: 'ENOENT' }, 'nothing left behind');
        await m.manager.stop('nobody-keyed.service');
        await chmod(m.stateDir, 0o711);
        await m.manager.start(def);
        await running(m, 'nobody-keyed.service');
        const st = await stat(join(ctx.secretsDir, 'tok'));
        t.is(st.uid, 65534);
        await assertEventually(
          async () =>
            (await m.manager.logs.tail('nobody-keyed.service', 5)).includes(String(value.length)),
          { timeoutMs: 10_000, message: 'nobody read its secret' },
        );
      },
    );
  }

  asRoot(`${driver}: User= runs the main process as that user`, async (t) => {
    const m = await managed(t, { driver });
    await m.manager.start(
      unit('nobody.service', `/bin/sh -c 'id -u; exec sleep 1000'`, { User: 'nobody' }),
    );
    const { pid } = await running(m, 'nobody.service');
    const status = await import('node:fs/promises').then((fs) =>
      fs.readFile(`/proc/${pid}/status`, 'utf8'),
    );
    t.regex(status, /^Uid:\s+65534\s/m);
    await stateOf(m, 'nobody.service', () => true, 'x');
  });
}
