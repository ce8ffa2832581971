/**
 * flotctl's global TLS options, resolved in-process: `--ca-file`, `--cert-file`, `--key-file`
 * (anywhere before `--`), their FLOTCTL_* variables, and an https:// endpoint. The files are
 * only named here; they are read when flotctl connects (test/cli/tls.test.ts).
 */
import test from 'ava';
import { splitGlobalOptions } from '../../cli/global-options.js';
import { UsageError } from '../../cli/verb.js';

test('without TLS options or an https:// endpoint, flotctl speaks plaintext', (t) => {
  const { globals, rest } = splitGlobalOptions(['list-units', '--no-legend'], {});
  t.is(globals.tls, undefined);
  t.deepEqual(rest, ['list-units', '--no-legend']);
});

test('TLS options stand before or after the verb and leave the rest alone', (t) => {
  const { globals, rest } = splitGlobalOptions(
    [
      '--ca-file',
      'ca.pem',
      'list-units',
      '--cert-file=c.pem',
      '--key-file',
      'k.pem',
      '--',
      '--ca-file',
    ],
    {},
  );
  t.deepEqual(globals.tls, { caFile: 'ca.pem', certFile: 'c.pem', keyFile: 'k.pem' });
  t.deepEqual(rest, ['list-units', '--', '--ca-file']);
});

test('an https:// endpoint asks for TLS with the public roots; the scheme is dropped', (t) => {
  const { globals } = splitGlobalOptions(['--endpoint', 'https://api.example:4700/'], {});
  t.is(globals.endpoint, 'api.example:4700');
  t.deepEqual(globals.tls, {});
  const fromEnv = splitGlobalOptions([], { FLOTCTL_ENDPOINT: 'https://api.example' }).globals;
  t.is(fromEnv.endpoint, 'api.example:4700');
  t.deepEqual(fromEnv.tls, {});
});

test('FLOTCTL_CA_FILE, FLOTCTL_CERT_FILE and FLOTCTL_KEY_FILE fill in; flags win', (t) => {
  const env = {
    FLOTCTL_CA_FILE: 'env-ca.pem',
    FLOTCTL_CERT_FILE: 'env-c.pem',
    FLOTCTL_KEY_FILE: 'env-k.pem',
  };
  t.deepEqual(splitGlobalOptions(['list-units'], env).globals.tls, {
    caFile: 'env-ca.pem',
    certFile: 'env-c.pem',
    keyFile: 'env-k.pem',
  });
  t.deepEqual(splitGlobalOptions(['--ca-file=flag-ca.pem', 'list-units'], env).globals.tls, {
    caFile: 'flag-ca.pem',
    certFile: 'env-c.pem',
    keyFile: 'env-k.pem',
  });
  const empty = { FLOTCTL_CA_FILE: '', FLOTCTL_CERT_FILE: '', FLOTCTL_KEY_FILE: '' };
  t.is(splitGlobalOptions(['list-units'], empty).globals.tls, undefined, 'empty means unset');
});

test('a client certificate without its key, or a key without one, is a usage error', (t) => {
  for (const [argv, env] of [
    [['--cert-file', 'c.pem', 'list-units'], {}],
    [['list-units', '--key-file', 'k.pem'], {}],
    [['list-units'], { FLOTCTL_CERT_FILE: 'c.pem' }],
  ] as const) {
    t.throws(() => splitGlobalOptions(argv, env), {
      instanceOf: UsageError,
      message: /^--cert-file and --key-file go together/,
    });
  }
  t.throws(() => splitGlobalOptions(['list-units', '--ca-file'], {}), {
    instanceOf: UsageError,
    message: '--ca-file needs a value',
  });
});

test('--endpoint and FLOTCTL_ENDPOINT name several replicas, each normalized; an empty one is a usage error', (t) => {
  const { globals } = splitGlobalOptions(['--endpoint', 'a:4700, http://b/,a:4700'], {});
  t.deepEqual(globals.endpoints, ['a:4700', 'b:4700']);
  t.is(globals.endpoint, 'a:4700');
  const fromEnv = splitGlobalOptions([], { FLOTCTL_ENDPOINT: '10.0.0.1,10.0.0.2:4800' }).globals;
  t.deepEqual(fromEnv.endpoints, ['10.0.0.1:4700', '10.0.0.2:4800']);
  const empty = t.throws(() => splitGlobalOptions(['--endpoint', 'a:4700,'], {}), {
    instanceOf: UsageError,
  });
  t.is(empty.message, '--endpoint=a:4700,: an endpoint is empty (expected a:4700,b:4700)');
  const mixed = t.throws(() => splitGlobalOptions(['--endpoint', 'https://a,http://b'], {}), {
    instanceOf: UsageError,
  });
  t.is(mixed.message, '--endpoint=https://a,http://b: use https:// for all endpoints or for none');
});
