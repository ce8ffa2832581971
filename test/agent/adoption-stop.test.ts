/**
 * Stopping what a new agent adopted, whatever point its takeover has reached: a stop that
 * comes before the adopted unit's run took its process over (the agent's first pass can come
 * that early on a loaded machine), an adopted oneshot step, an adopted unit whose definition
 * can no longer be launched, and one whose secrets cannot be delivered again. In every case
 * no process of the unit is left running once it is stopped or reported failed; and no
 * process of another is signalled when the dead shim's pid now leads someone else's group.
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MachineLayout } from '../../agent/runtime/layout.js';
import { removeSecretFiles } from '../../agent/runtime/secret-files.js';
import { procStat, signalPid } from '../../agent/runtime/proc.js';
import { ProcessDriver } from '../../agent/runtime/process.js';
import { assertEventually, sleep } from '../../testkit/index.js';
import { DRIVERS, isPidAlive, managed, running, stateOf, unit, type Managed } from './harness.js';

const LOOP = `/bin/sh -c 'while true; do sleep 0.1; done'`;

/**
 * A second manager over `first`'s state, as a restarted agent. If a test fails with `pid`
 * still running, its directory may be gone already (the old bug): it is killed at teardown.
 */
async function restarted(t: ExecutionContext, first: Managed, pid: number): Promise<Managed> {
  t.teardown(() => signalPid(pid, 'SIGKILL'));
  await first.manager.close();
  return managed(t, { driver: first.manager.driver.name, ...same(first) });
}

function same(first: Managed): { stateDir: string; machineId: string } {
  return { stateDir: first.stateDir, machineId: first.machineId };
}

async function logOf(m: Managed, name: string): Promise<string> {
  return (await m.manager.logs.tail(name, 20)).join('\n');
}

for (const driver of DRIVERS) {
  test(`${driver}: a stop right after adoption ends the adopted process before its run took it over`, async (t) => {
    const first = await managed(t, { driver });
    await first.manager.start(unit('web.service', LOOP));
    const { pid } = await running(first, 'web.service');
    const second = await restarted(t, first, pid);
    t.deepEqual(
      (await second.manager.adopt()).map((a) => [a.name, a.pid]),
      [['web.service', pid]],
    );
    // No wait for the adopted run: the stop comes while its lifecycle is still getting ready.
    await second.manager.stop('web.service');
    t.false(await isPidAlive(pid), 'the adopted process is ended by the stop');
    t.like(second.states.at(-1), { name: 'web.service', activeState: 'inactive', pid: 0 });
    await assertEventually(
      async () =>
        /stopped: main process killed by SIGTERM/.test(await logOf(second, 'web.service')),
      { message: 'the log says how the unit stopped' },
    );
  });

  test(`${driver}: a stop right after adoption ends an adopted oneshot step`, async (t) => {
    const first = await managed(t, { driver });
    await first.manager.start(unit('batch.service', '/bin/sleep 3600', { Type: 'oneshot' }));
    const { pid } = await stateOf(first, 'batch.service', (s) => s.pid > 0, 'its step runs');
    const second = await restarted(t, first, pid);
    await second.manager.adopt();
    await second.manager.stop('batch.service');
    t.false(await isPidAlive(pid), 'the adopted step is ended by the stop');
    t.like(second.states.at(-1), { name: 'batch.service', activeState: 'inactive' });
  });

  test(`${driver}: an adopted unit that can no longer be launched fails and its process is ended`, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-adopt-env-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const envFile = join(dir, 'web.env');
    await writeFile(envFile, 'GREETING=hello\n');
    const first = await managed(t, { driver });
    await first.manager.start(unit('web.service', LOOP, { EnvironmentFile: envFile }));
    const { pid } = await running(first, 'web.service');
    await rm(envFile);
    const second = await restarted(t, first, pid);
    await second.manager.adopt();
    const failed = await stateOf(
      second,
      'web.service',
      (s) => s.activeState === 'failed',
      'failed',
    );
    t.regex(failed.message, /EnvironmentFile=/);
    t.is(failed.pid, 0);
    await assertEventually(async () => !(await isPidAlive(pid)), {
      message: 'a unit reported failed leaves no process running',
    });
  });

  test(`${driver}: an adopted unit whose secrets cannot be delivered again keeps running and still stops`, async (t) => {
    const values = new Map([['token', Buffer.from('s3cret')]]);
    const first = await managed(t, { driver, secrets: () => Promise.resolve(values) });
    await first.manager.start(unit('web.service', LOOP, { Secret: 'token' }));
    const { pid } = await running(first, 'web.service');
    // The tmpfs went (a host cleanup) and the new agent has no key to open secrets with.
    const layout = new MachineLayout(first.stateDir, first.machineId);
    await removeSecretFiles(layout.secretsDir('web.service'));
    const second = await restarted(t, first, pid);
    await second.manager.adopt();
    const state = await running(second, 'web.service');
    t.is(state.pid, pid, 'taken over, not failed or restarted');
    // The note is appended to the unit's log on its own, maybe after the state was reported.
    await assertEventually(
      async () =>
        /Secret=token.*tried again before the next start/.test(await logOf(second, 'web.service')),
      { message: 'the log says the secret is tried again before the next start' },
    );
    await second.manager.stop('web.service');
    t.false(await isPidAlive(pid), 'the stop ends it');
  });
}

test(`process: a stop signals no group whose leader is not the unit's shim (its pid reused)`, async (t) => {
  // Someone else's session: a leader and a child, as another unit's shim and program are.
  const other = spawn('/bin/sh', ['-c', 'sleep 60 & wait'], { detached: true, stdio: 'ignore' });
  const leader = other.pid ?? 0;
  t.teardown(() => {
    if (leader > 0) signalPid(-leader, 'SIGKILL');
  });
  t.true(leader > 0);
  const child = await assertEventually(
    async () => {
      const text = await readFile(`/proc/${leader}/task/${leader}/children`, 'utf8');
      return Number(text.trim().split(' ')[0]) || false;
    },
    { message: 'the other group has its child' },
  );
  const start = (await procStat(leader))?.startTime ?? -1;
  const driver = new ProcessDriver(tmpdir(), 'tunused');
  const ctx = driver.context('gone.service', unit('gone.service', '/bin/true').service);
  // An adopted unit that ended long ago: its shim's pid now leads that other group.
  const stale = { shimPid: leader, shimStart: start - 1, pid: 0, pidStart: -1 };
  await driver.kill(ctx, stale, 'SIGKILL', 'all');
  await sleep(300); // a SIGKILL sent would have ended it by now
  t.true(await isPidAlive(child), "the other group's processes are not the unit's");
  // The same group as the unit's own (the shim's start time matches): its members go.
  await driver.kill(ctx, { ...stale, shimStart: start }, 'SIGKILL', 'all');
  await assertEventually(async () => !(await isPidAlive(child)), {
    message: "the unit's own group is signalled",
  });
});
