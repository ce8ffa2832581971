/**
 * A restarted agent adopts what the previous one left running, without restarting it; and
 * several agents (machine ids) share one host without seeing each other's units.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { assertEventually, sleep } from '../../testkit/index.js';
import { DRIVERS, isPidAlive, managed, running, stateOf, unit } from './harness.js';

const LOOP = `/bin/sh -c 'while true; do sleep 0.1; done'`;

/** An agent in its own process: starts `unit` and prints its pid, then idles until killed. */
const AGENT = `
const [agentUrl, unitUrl, stateDir, machineId, driver, name, text] = process.argv.slice(1);
const { UnitManager } = await import(agentUrl);
const { parseUnit } = await import(unitUrl);
const manager = await UnitManager.create({ stateDir, machineId, driver });
manager.onState((s) => {
  if (s.subState === 'running') console.log(JSON.stringify({ pid: s.pid }));
});
await manager.start(parseUnit(name, text));
setInterval(() => {}, 1000);
`;

for (const driver of DRIVERS) {
  test(`${driver}: a new manager adopts running units with unchanged pids and keeps settled ones as they were`, async (t) => {
    const first = await managed(t, { driver });
    const web = unit('web@1.service', LOOP, { ExecStop: '/bin/echo adopted-stop' });
    await first.manager.start(web);
    await first.manager.start(unit('batch.service', '/bin/echo done', { Type: 'oneshot' }));
    await first.manager.start(unit('broken.service', `/bin/sh -c 'exit 5'`));
    const { pid } = await running(first, 'web@1.service');
    await stateOf(first, 'batch.service', (s) => s.subState === 'exited', 'exited');
    await stateOf(first, 'broken.service', (s) => s.activeState === 'failed', 'failed');
    // The agent dies: nothing is stopped, the manager just lets go.
    await first.manager.close();

    const second = await managed(t, {
      driver,
      stateDir: first.stateDir,
      machineId: first.machineId,
    });
    const adopted = await second.manager.adopt();
    const found = adopted.find((a) => a.name === 'web@1.service');
    t.is(found?.pid, pid);
    t.true(found?.running);
    t.is(found?.hash, web.hash);
    t.deepEqual(adopted.map((a) => a.name).sort(), [
      'batch.service',
      'broken.service',
      'web@1.service',
    ]);
    const state = await running(second, 'web@1.service');
    t.is(state.pid, pid);
    t.true(await isPidAlive(pid));
    t.is(
      (await stateOf(second, 'batch.service', (s) => s.subState === 'exited', 'exited'))
        .activeState,
      'active',
    );
    t.regex(
      (await stateOf(second, 'broken.service', (s) => s.activeState === 'failed', 'failed'))
        .message,
      /status 5/,
    );

    // The reconcile loop starts what is placed: the same hash keeps the adopted process.
    await second.manager.start(web);
    await sleep(500);
    t.is(second.manager.get('web@1.service')?.pid, pid);
    t.false(second.states.some((s) => s.name === 'web@1.service' && s.subState === 'start-pre'));

    await second.manager.stop('web@1.service');
    t.false(await isPidAlive(pid));
    t.true((await second.manager.logs.tail('web@1.service', 5)).includes('adopted-stop'));
  });

  test(`${driver}: units outlive a SIGKILLed agent process and the next agent adopts them`, async (t) => {
    const first = await managed(t, { driver });
    const text = `[Service]\nExecStart=${LOOP}\n`;
    const agentUrl = new URL('../../agent/index.js', import.meta.url).href;
    const unitUrl = new URL('../../unit/index.js', import.meta.url).href;
    const args = [
      agentUrl,
      unitUrl,
      first.stateDir,
      first.machineId,
      driver,
      'survivor.service',
      text,
    ];
    const agent = spawn(process.execPath, ['--input-type=module', '-e', AGENT, ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    t.teardown(() => {
      agent.kill('SIGKILL');
    });
    const lines = createInterface({ input: agent.stdout });
    const [line] = (await once(lines, 'line')) as [string];
    const { pid } = JSON.parse(line) as { pid: number };
    agent.kill('SIGKILL');
    await once(agent, 'exit');
    t.true(await isPidAlive(pid), 'the unit survives its agent');

    const second = await managed(t, {
      driver,
      stateDir: first.stateDir,
      machineId: first.machineId,
    });
    const adopted = await second.manager.adopt();
    t.deepEqual(
      adopted.map((a) => [a.name, a.pid]),
      [['survivor.service', pid]],
    );
    t.is((await running(second, 'survivor.service')).pid, pid);
    await second.manager.stop('survivor.service');
    t.false(await isPidAlive(pid));
  });

  test(`${driver}: a unit that died while no agent ran is restarted by the new one per Restart=`, async (t) => {
    const first = await managed(t, { driver });
    await first.manager.start(
      unit('phoenix.service', LOOP, { Restart: 'on-failure', RestartSec: '100ms' }),
    );
    const { pid } = await running(first, 'phoenix.service');
    await first.manager.close();
    process.kill(pid, 'SIGKILL');
    await assertEventually(async () => !(await isPidAlive(pid)), {
      message: 'main process killed',
    });

    const second = await managed(t, {
      driver,
      stateDir: first.stateDir,
      machineId: first.machineId,
    });
    await second.manager.adopt();
    const state = await stateOf(
      second,
      'phoenix.service',
      (s) => s.subState === 'running' && s.pid !== pid,
      'running again',
    );
    t.is(state.restarts, 1);
    t.is(state.exitSignal, 'SIGKILL');
    t.is(state.exitStatus, 137);
  });

  test(`${driver}: two managers with different machine ids run the same unit side by side`, async (t) => {
    const a = await managed(t, { driver });
    const b = await managed(t, { driver, stateDir: a.stateDir });
    const def = unit('same@1.service', LOOP);
    await a.manager.start(def);
    await b.manager.start(def);
    const [sa, sb] = await Promise.all([
      running(a, 'same@1.service'),
      running(b, 'same@1.service'),
    ]);
    t.not(sa.pid, sb.pid);
    t.not(sa.containerId, sb.containerId);
    t.true(sa.containerId.includes(a.machineId));
    t.true(sb.containerId.includes(b.machineId));
    t.deepEqual(
      (await b.manager.adopt()).map((u) => u.name),
      [],
      "b does not see a's unit",
    );
    await a.manager.stop('same@1.service');
    t.false(await isPidAlive(sa.pid));
    t.true(await isPidAlive(sb.pid));
    t.is(b.manager.get('same@1.service')?.activeState, 'active');
  });
}
