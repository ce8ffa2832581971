import test from 'ava';

import type { ServiceOptions } from '../../unit/model.js';
import { parseUnit, validateUnitFile } from '../../unit/parse.js';
import { unitText, type SectionValues } from '../../testkit/factories.js';

function service(extra: SectionValues): ServiceOptions {
  return parseUnit('s.service', unitText({ exec: '/bin/sleep 60', service: extra })).service;
}

function problems(extra: SectionValues): string[] {
  return validateUnitFile('s.service', unitText({ exec: '/bin/sleep 60', service: extra })).map(
    (e) => `line ${e.line}: ${e.message}`,
  );
}

test('a unit without capability keys asks for no capability and leaves NoNewPrivileges on', (t) => {
  const s = service({});
  t.is(s.ambientCapabilities, undefined);
  t.is(s.capabilityBoundingSet, undefined);
  t.is(s.noNewPrivileges, undefined);
});

test('AmbientCapabilities= lines accumulate, in any case, and read back in kernel order', (t) => {
  const s = service({ AmbientCapabilities: ['cap_net_raw', 'CAP_CHOWN CAP_NET_BIND_SERVICE'] });
  t.deepEqual(s.ambientCapabilities, ['CAP_CHOWN', 'CAP_NET_BIND_SERVICE', 'CAP_NET_RAW']);
});

test('an empty AmbientCapabilities= resets the list, as systemd does', (t) => {
  t.is(service({ AmbientCapabilities: ['CAP_CHOWN', ''] }).ambientCapabilities, undefined);
});

test('CapabilityBoundingSet=~ keeps every capability but the listed ones', (t) => {
  const s = service({ CapabilityBoundingSet: '~CAP_SYS_ADMIN CAP_SYS_MODULE' });
  t.false(s.capabilityBoundingSet?.includes('CAP_SYS_ADMIN'));
  t.false(s.capabilityBoundingSet?.includes('CAP_SYS_MODULE'));
  t.true(s.capabilityBoundingSet?.includes('CAP_CHOWN'));
});

test('NoNewPrivileges= takes a boolean', (t) => {
  t.false(service({ NoNewPrivileges: 'no' }).noNewPrivileges);
  t.true(service({ NoNewPrivileges: 'yes' }).noNewPrivileges);
  t.regex(problems({ NoNewPrivileges: 'sometimes' })[0] ?? '', /NoNewPrivileges/);
});

test('an unknown capability name is refused with its line and what to write instead', (t) => {
  const [first] = problems({ AmbientCapabilities: 'CAP_CHOWN CAP_ROOT' });
  t.regex(
    first ?? '',
    /^line \d+: AmbientCapabilities=CAP_CHOWN CAP_ROOT: CAP_ROOT is not a Linux capability; use names such as CAP_NET_BIND_SERVICE/,
  );
});

test('an ambient capability the bounding set leaves out is refused, naming it', (t) => {
  const [first] = problems({
    AmbientCapabilities: 'CAP_NET_RAW CAP_CHOWN',
    CapabilityBoundingSet: 'CAP_CHOWN',
  });
  t.regex(
    first ?? '',
    /AmbientCapabilities= names CAP_NET_RAW, which CapabilityBoundingSet= leaves out/,
  );
});
