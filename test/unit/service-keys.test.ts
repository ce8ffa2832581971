/**
 * [X-Service]: Name= (default the unit's prefix), Port=NAME and Port=NAME=NUMBER (several),
 * Publish=NUMBER[:NAME], Tags=, DrainSec=; every bad key or value refused with its line, and
 * what `flotctl verify` prints for it.
 */
import test from 'ava';
import { parseUnit, portEnvName, validateUnitFile } from '../../unit/index.js';

const service = '[Service]\nExecStart=/bin/true\n';

function problems(text: string, name = 'web@.service'): string[] {
  return validateUnitFile(name, text).map((e) => `${e.line}: ${e.message}`);
}

test('a unit without [X-Service] declares no service', (t) => {
  t.is(parseUnit('web.service', service).xService, undefined);
});

test("an instance's service is named after its prefix, with ports in file order, published on the first", (t) => {
  const def = parseUnit(
    'web@3.service',
    `${service}[X-Service]\nPort=http\nPort=admin=9090\nPublish=8080\nTags=blue  canary blue\n`,
  );
  t.deepEqual(def.xService, {
    name: 'web',
    ports: [
      { name: 'http', number: 0, line: 4 },
      { name: 'admin', number: 9090, line: 5 },
    ],
    publish: 8080,
    publishPortName: 'http',
    tags: ['blue', 'canary'],
    drainMs: 2000,
  });
});

test('Name=, Publish=NUMBER:NAME, Tags=%i and DrainSec= are read; an empty value resets a key', (t) => {
  const def = parseUnit(
    'web@green.service',
    `${service}[X-Service]\nName=api\nPort=http\nPort=grpc\nPublish=443:grpc\nTags=old\nTags=\nTags=%i\nDrainSec=500ms\n`,
  );
  t.is(def.xService?.name, 'api');
  t.is(def.xService?.publish, 443);
  t.is(def.xService?.publishPortName, 'grpc');
  t.deepEqual(def.xService?.tags, ['green']);
  t.is(def.xService?.drainMs, 500);
});

test('bad [X-Service] keys and values are refused, each with its line and what to write', (t) => {
  t.deepEqual(
    problems(
      `${service}[X-Service]\nName=Web_API\nPort=HTTP\nPort=http=70000\nPort=http\nPort=web=8080\nPort=www=8080\nPort=http\nPublish=80:nope\nTags=Blue\nDrainSec=10min\nPorts=x\n`,
    ),
    [
      '4: Name=Web_API: a service name is lower-case letters, digits and "-", at most 63, not starting or ending with "-"',
      '5: Port=HTTP: expected NAME (a dynamic port) or NAME=NUMBER (a static one); NAME is a lower-case letter, then letters, digits and "-" (at most 32)',
      '6: Port=http=70000: "70000" is not a port number (1-65535)',
      '9: Port=www=8080: port 8080 is already "web" on line 8',
      '10: Port=http: port "http" is already declared on line 7',
      '11: Publish=80:nope: there is no Port=nope; use one of http, web',
      '12: Tags=Blue: a tag is lower-case letters, digits and "-", at most 63, not starting or ending with "-"',
      '13: DrainSec=10min: at most 300s',
      '14: unknown [X-Service] key "Ports" (did you mean "Port"?)',
    ],
  );
});

test('[X-Service] without a Port=, or with a prefix that is no service name and no Name=, says what to add', (t) => {
  t.deepEqual(problems(`${service}[X-Service]\nTags=a\n`), [
    '3: [X-Service] has no Port=: add Port=NAME (a port picked for each instance) or Port=NAME=NUMBER',
  ]);
  t.deepEqual(problems(`${service}[X-Service]\nPort=http\n`, 'Web_1.service'), [
    '3: [X-Service] has no Name= and the unit\'s prefix "Web_1" is not a service name (lower-case letters, digits and "-", at most 63, not starting or ending with "-"): add Name=',
  ]);
  t.deepEqual(problems(`${service}[X-Service]\nPort=http\nPublish=0\n`), [
    '5: Publish=0: expected NUMBER (1-65535) or NUMBER:NAME, NAME one of the Port= names',
  ]);
});

test('a unit may declare at most 16 ports', (t) => {
  const ports = Array.from({ length: 17 }, (_, i) => `Port=p${i}\n`).join('');
  t.deepEqual(problems(`${service}[X-Service]\n${ports}`), [
    '20: Port=p16: at most 16 ports per unit',
  ]);
});

test('a port name becomes its environment variable upper-cased, "-" as "_"', (t) => {
  t.is(portEnvName('http'), 'FLOTILLA_PORT_HTTP');
  t.is(portEnvName('admin-v2'), 'FLOTILLA_PORT_ADMIN_V2');
});
