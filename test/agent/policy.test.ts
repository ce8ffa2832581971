/**
 * The pure rules of the agent runtime: exit judgement, restart back-off, state records,
 * names, and the OCI config built from [Service] options.
 */
import test from 'ava';
import fc from 'fast-check';
import { MachineLayout, escapeUnit, isSafeUnitName } from '../../agent/index.js';
import { ociConfig } from '../../agent/runtime/oci-spec.js';
import { ROOT_USER } from '../../agent/runtime/users.js';
import {
  applyChange,
  backoffDelay,
  initialState,
  judgeExit,
  shouldRestart,
} from '../../agent/units/supervisor/policy.js';
import { unit } from './harness.js';

test('exits are judged as systemd does: status 0 and the polite signals are clean', (t) => {
  t.is(judgeExit({ status: 0, signal: '' }), 'success');
  t.is(judgeExit({ status: 3, signal: '' }), 'exit-code');
  t.is(judgeExit({ status: 3, signal: '' }, true), 'success', 'the - prefix');
  t.is(judgeExit({ status: 143, signal: 'SIGTERM' }), 'success');
  t.is(judgeExit({ status: 137, signal: 'SIGKILL' }), 'signal');
  t.is(judgeExit({ status: 139, signal: 'SIGSEGV' }), 'signal');
  t.true(shouldRestart('on-failure', 'signal'));
  t.false(shouldRestart('on-failure', 'success'));
  t.true(shouldRestart('always', 'success'));
  t.false(shouldRestart('no', 'exit-code'));
});

test('the restart back-off doubles from RestartSec up to the cap and never spins', (t) => {
  const opts = { capMs: 30_000, floorMs: 100 };
  t.deepEqual(
    [1, 2, 3, 4].map((n) => backoffDelay(1_000, n, opts)),
    [1_000, 2_000, 4_000, 8_000],
  );
  t.is(backoffDelay(1_000, 50, opts), 30_000);
  t.is(backoffDelay(0, 1, opts), 100, 'RestartSec=0 still waits the floor');
  t.is(backoffDelay(60_000, 3, opts), 60_000, 'a RestartSec above the cap is honoured');
  fc.assert(
    fc.property(fc.nat(100_000), fc.integer({ min: 1, max: 100 }), (sec, streak) => {
      const d = backoffDelay(sec, streak, opts);
      return (
        d >= Math.max(sec, 100) &&
        d <= Math.max(30_000, sec) &&
        d <= backoffDelay(sec, streak + 1, opts)
      );
    }),
  );
});

test('since moves only when the active state changes', (t) => {
  const s0 = initialState('a.service', 'm1', 'h', 'c', 1_000);
  const s1 = applyChange(s0, { activeState: 'activating', subState: 'start-pre' }, 2_000);
  t.is(s1.since, 2_000n);
  const s2 = applyChange(s1, { subState: 'start-post', pid: 5 }, 3_000);
  t.is(s2.since, 2_000n);
  t.is(applyChange(s2, { pid: 5 }, 4_000), s2, 'no change, same object');
});

test('container ids carry the machine id and are distinct for distinct units and machines', (t) => {
  const layout = new MachineLayout('/state', 'm-1');
  t.is(layout.containerId('web@1.service'), 'flotilla-m+2d1-web+401.service');
  t.is(layout.cgroupPath('web@1.service'), '/flotilla/m+2d1/web+401.service');
  t.throws(() => layout.unitDir('../etc'), { code: 'invalid-name' });
  const name = fc.stringMatching(/^[A-Za-z0-9:_.@-]{1,20}$/).filter(isSafeUnitName);
  fc.assert(fc.property(name, name, (a, b) => a === b || escapeUnit(a) !== escapeUnit(b)));
  fc.assert(
    fc.property(name, name, name, (m1, m2, u) => {
      const ids = [
        new MachineLayout('/s', m1).containerId('x.service'),
        new MachineLayout('/s', m2).containerId(u),
      ];
      return (m1 === m2 && u === 'x.service') || ids[0] !== ids[1];
    }),
  );
});

test('the OCI config has the unit limits, namespaces and a read-only default rootfs', (t) => {
  const def = unit('web@1.service', '/bin/true', {
    MemoryMax: '64M',
    CPUQuota: '150%',
    TasksMax: '20',
    PrivateNetwork: 'yes',
  });
  const cmd = { path: '/bin/true', args: [], env: { PATH: '/bin' }, cwd: '/', user: ROOT_USER };
  const rootfs = { path: '/r', readonly: true, binds: ['/usr', '/etc'], tmp: '/u/tmp' };
  const config = ociConfig(def.service, cmd, rootfs, '/flotilla/m/web+401.service');
  t.deepEqual(config.linux.resources.memory, { limit: 64 * 1024 * 1024 });
  t.deepEqual(config.linux.resources.cpu, { quota: 150_000, period: 100_000 });
  t.deepEqual(config.linux.resources.pids, { limit: 20 });
  t.deepEqual(config.linux.namespaces.map((n) => n.type).sort(), [
    'ipc',
    'mount',
    'network',
    'pid',
    'uts',
  ]);
  t.true(config.root.readonly);
  const usr = config.mounts.find((m) => m.destination === '/usr');
  t.deepEqual(usr?.options, ['bind', 'ro']);
  t.is(config.mounts.find((m) => m.destination === '/tmp')?.source, '/u/tmp');
  const hostNet = ociConfig(unit('a.service', '/bin/true').service, cmd, rootfs, '/x');
  t.false(hostNet.linux.namespaces.some((n) => n.type === 'network'));
  t.is(hostNet.linux.resources.memory, undefined);
});
