/**
 * `flotilla scheduler` TLS flags: etcd's (`--etcd-cafile`, `--etcd-certfile`, `--etcd-keyfile`),
 * the API's (`--tls-cert-file`, `--tls-key-file`, `--tls-client-ca-file`) and the agents'
 * (`--agent-ca-file`). Files are read at parse time, so every unusable one is a UsageError
 * naming the flag and the file; FLOTILLA_* variables work as for every flag.
 */
import test from 'ava';
import { UsageError } from '../../daemon/options.js';
import { parseSchedulerArgs, SCHEDULER_USAGE } from '../../scheduler/options.js';
import type { SchedulerOptions } from '../../scheduler/options.js';
import { pkiForFile } from '../../testkit/index.js';

const pki = pkiForFile(test);
const other = pkiForFile(test, 'other-ca');

const TLS_ENV = [
  'FLOTILLA_ETCD_ENDPOINTS',
  'FLOTILLA_ETCD_CAFILE',
  'FLOTILLA_ETCD_CERTFILE',
  'FLOTILLA_ETCD_KEYFILE',
  'FLOTILLA_TLS_CERT_FILE',
  'FLOTILLA_TLS_KEY_FILE',
  'FLOTILLA_TLS_CLIENT_CA_FILE',
  'FLOTILLA_AGENT_CA_FILE',
];

/** Parses with exactly `env` among the TLS variables (tests that set env are serial). */
function options(argv: string[], env: Record<string, string> = {}): SchedulerOptions {
  const saved = new Map(TLS_ENV.map((k) => [k, process.env[k]]));
  for (const k of TLS_ENV) delete process.env[k];
  Object.assign(process.env, env);
  try {
    const parsed = parseSchedulerArgs(argv);
    if (parsed.help) throw new Error('unexpected help');
    return parsed.options;
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

const HTTPS = '--etcd-endpoints=https://10.0.0.1:2379,https://10.0.0.2:2379';

test.serial('no TLS flag: plaintext everywhere, nothing read', (t) => {
  const o = options([]);
  t.is(o.etcdTls, undefined);
  t.is(o.apiTls, undefined);
  t.is(o.agentTls, undefined);
});

test.serial('every TLS flag is read into PEM material', (t) => {
  const p = pki();
  const o = options([
    HTTPS,
    `--etcd-cafile=${p.caFile}`,
    `--etcd-certfile=${p.client.certFile}`,
    `--etcd-keyfile=${p.client.keyFile}`,
    `--tls-cert-file=${p.server.certFile}`,
    `--tls-key-file=${p.server.keyFile}`,
    `--tls-client-ca-file=${p.caFile}`,
    `--agent-ca-file=${other().caFile}`,
  ]);
  t.deepEqual(o.etcdTls, {
    ca: p.read(p.caFile),
    cert: p.read(p.client.certFile),
    key: p.read(p.client.keyFile),
  });
  t.deepEqual(o.apiTls, {
    cert: p.read(p.server.certFile),
    key: p.read(p.server.keyFile),
    clientCa: p.read(p.caFile),
  });
  t.deepEqual(
    o.agentTls,
    { ca: other().read(other().caFile), cert: o.apiTls?.cert, key: o.apiTls?.key },
    "the agents' CA, and the API's own certificate as client certificate",
  );
});

test.serial('the FLOTILLA_* environment gives the TLS files too', (t) => {
  const p = pki();
  const o = options([], {
    FLOTILLA_ETCD_ENDPOINTS: 'https://10.0.0.1:2379',
    FLOTILLA_ETCD_CAFILE: p.caFile,
    FLOTILLA_TLS_CERT_FILE: p.server.certFile,
    FLOTILLA_TLS_KEY_FILE: p.server.keyFile,
    FLOTILLA_AGENT_CA_FILE: p.caFile,
  });
  t.deepEqual(o.etcdTls, { ca: p.read(p.caFile) });
  t.is(o.apiTls?.clientCa, undefined, 'TLS without client certificates');
  t.deepEqual(o.agentTls?.ca, p.read(p.caFile));
});

test.serial(
  '--agent-ca-file without an API certificate: TLS to agents, no client certificate',
  (t) => {
    const o = options([`--agent-ca-file=${pki().caFile}`]);
    t.deepEqual(o.agentTls, { ca: pki().read(pki().caFile) });
    t.is(o.apiTls, undefined);
  },
);

test.serial('https:// endpoints alone are fine: etcd verified with the public roots', (t) => {
  t.is(options([HTTPS]).etcdTls, undefined);
});

/** Argument lists that must be refused, and what the message must say. */
function refusals(): [string[], RegExp][] {
  const p = pki();
  return [
    [
      [HTTPS, '--etcd-cafile=/nonexistent/ca.pem'],
      /^--etcd-cafile=\/nonexistent\/ca\.pem: cannot read it \(ENOENT/,
    ],
    [
      [HTTPS, `--etcd-cafile=${p.server.keyFile}`],
      /^--etcd-cafile=.*server\.key: not a PEM certificate/,
    ],
    [
      [`--tls-cert-file=${p.server.certFile}`, `--tls-key-file=${p.server.certFile}`],
      /^--tls-key-file=.*server\.crt: not an unencrypted PEM private key/,
    ],
    [[`--tls-cert-file=${p.server.certFile}`], /^--tls-cert-file and --tls-key-file go together/],
    [
      [HTTPS, `--etcd-keyfile=${p.client.keyFile}`],
      /^--etcd-certfile and --etcd-keyfile go together/,
    ],
    [
      [`--tls-cert-file=${p.server.certFile}`, `--tls-key-file=${p.client.keyFile}`],
      /^--tls-key-file=.*client\.key is not the key of --tls-cert-file=.*server\.crt$/,
    ],
    [
      [`--tls-client-ca-file=${p.caFile}`],
      /^--tls-client-ca-file needs --tls-cert-file and --tls-key-file$/,
    ],
    [
      [`--etcd-cafile=${p.caFile}`],
      /^--etcd-endpoints: http:\/\/127\.0\.0\.1:2379 is not https:\/\/, but etcd is reached over TLS/,
    ],
    [
      ['--etcd-endpoints=https://10.0.0.1:2379,http://10.0.0.2:2379'],
      /^--etcd-endpoints: http:\/\/10\.0\.0\.2:2379 is not https:\/\//,
    ],
    [
      ['--agent-ca-file=/nonexistent/agents.pem'],
      /^--agent-ca-file=\/nonexistent\/agents\.pem: cannot read it/,
    ],
  ];
}

test.serial('an unusable TLS file or combination is a UsageError naming the flag and file', (t) => {
  for (const [argv, message] of refusals()) {
    t.throws(() => options(argv), { instanceOf: UsageError, message }, argv.join(' '));
  }
});

test.serial('an unreadable file given by environment is named by its flag too', (t) => {
  t.throws(
    () =>
      options([], {
        FLOTILLA_TLS_CLIENT_CA_FILE: '/nonexistent/clients.pem',
        FLOTILLA_TLS_CERT_FILE: pki().server.certFile,
        FLOTILLA_TLS_KEY_FILE: pki().server.keyFile,
      }),
    {
      instanceOf: UsageError,
      message: /^--tls-client-ca-file=\/nonexistent\/clients\.pem: cannot read it/,
    },
  );
});

test('the usage lists every TLS flag', (t) => {
  for (const flag of [
    '--etcd-cafile FILE',
    '--etcd-certfile FILE',
    '--etcd-keyfile FILE',
    '--tls-cert-file FILE',
    '--tls-key-file FILE',
    '--tls-client-ca-file FILE',
    '--agent-ca-file FILE',
  ]) {
    t.true(SCHEDULER_USAGE.includes(flag), flag);
  }
});
