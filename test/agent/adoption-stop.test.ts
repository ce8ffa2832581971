/**
 * Stopping what a new agent adopted, whatever point its takeover has reached: a stop that
 * comes before the adopted unit's run took its process over (the agent's first pass can come
 * that early on a loaded machine), an adopted oneshot step, an adopted unit whose definition
 * can no longer be launched, and one whose secrets cannot be delivered again. In every case
 * no process of the unit is left running once it is stopped or reported failed.
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MachineLayout } from '../../agent/runtime/layout.js';
import { removeSecretFiles } from '../../agent/runtime/secret-files.js';
import { signalPid } from '../../agent/runtime/proc.js';
import { assertEventually } from '../../testkit/index.js';
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
    t.regex(await logOf(second, 'web.service'), /stopped: main process killed by SIGTERM/);
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
    t.regex(await logOf(second, 'web.service'), /Secret=token.*tried again before the next start/);
    await second.manager.stop('web.service');
    t.false(await isPidAlive(pid), 'the stop ends it');
  });
}
