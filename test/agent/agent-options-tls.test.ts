/**
 * `flotilla agent` TLS settings: etcd's (`etcd-cafile`, `etcd-certfile`, `etcd-keyfile`) and
 * the Logs service's (`tls-cert-file`, `tls-key-file`, `tls-client-ca-file`), from flags,
 * FLOTILLA_* variables or the config file, in that order of precedence. The files are read
 * at parse time; an unusable one is a UsageError naming the flag and the file.
 */
import { readFileSync } from 'node:fs';
import test from 'ava';
import { UsageError } from '../../daemon/options.js';
import {
  AGENT_USAGE,
  parseAgentArgs,
  type AgentOptions,
  type HostFacts,
} from '../../agent/options.js';
import { pkiForFile } from '../../testkit/index.js';

const pki = pkiForFile(test);

/** A host with `files` (the config) over the real file system (the PEM files). */
function host(files: Record<string, string> = {}, env: NodeJS.ProcessEnv = {}): HostFacts {
  return {
    env,
    readFile: (path) => files[path] ?? readFileSync(path, 'utf8'),
    cpuMillicores: () => 8000,
    memoryBytes: () => 16 * 1024 ** 3,
    publicIp: () => '192.0.2.7',
  };
}

/** Parsed; plaintext without a token waives the client check (refused otherwise, tested below). */
function options(argv: string[], h: HostFacts = host()): AgentOptions {
  const checked = argv.some((a) => /^--(logs-token-file|tls-|allow-insecure-clients)/.test(a));
  const waiver = checked ? [] : ['--allow-insecure-clients'];
  const parsed = parseAgentArgs(['--machine-id=m1', ...argv, ...waiver], h);
  if (parsed.help) throw new Error('unexpected help');
  return parsed.options;
}

test('no TLS setting: plaintext to etcd and on the Logs service', (t) => {
  const o = options([]);
  t.is(o.etcdTls, undefined);
  t.is(o.logsTls, undefined);
});

test('the config file gives the TLS files, as key = value lines or JSON', (t) => {
  const p = pki();
  const lines = [
    'etcd-endpoints = https://10.0.0.1:2379,https://10.0.0.2:2379',
    `etcd-cafile = ${p.caFile}`,
    `etcd-certfile = ${p.client.certFile}`,
    `etcd-keyfile = ${p.client.keyFile}`,
    `tls-cert-file = ${p.server.certFile}`,
    `tls-key-file = ${p.server.keyFile}`,
    `tls-client-ca-file = ${p.caFile}`,
  ].join('\n');
  const json = JSON.stringify({
    'etcd-endpoints': ['https://10.0.0.1:2379'],
    'etcd-cafile': p.caFile,
    'etcd-certfile': p.client.certFile,
    'etcd-keyfile': p.client.keyFile,
    'tls-cert-file': p.server.certFile,
    'tls-key-file': p.server.keyFile,
    'tls-client-ca-file': p.caFile,
  });
  for (const text of [lines, json]) {
    const o = options(['--config=/etc/agent.conf'], host({ '/etc/agent.conf': text }));
    t.deepEqual(o.etcdTls, {
      ca: p.read(p.caFile),
      cert: p.read(p.client.certFile),
      key: p.read(p.client.keyFile),
    });
    t.deepEqual(o.logsTls, {
      cert: p.read(p.server.certFile),
      key: p.read(p.server.keyFile),
      clientCa: p.read(p.caFile),
    });
  }
});

test('flags win over the environment, which wins over the config file', (t) => {
  const p = pki();
  const h = host(
    {
      '/etc/agent.conf': `tls-cert-file = /nonexistent/from-file.pem\ntls-key-file = ${p.server.keyFile}\n`,
    },
    {
      FLOTILLA_CONFIG: '/etc/agent.conf',
      FLOTILLA_TLS_CERT_FILE: p.server.certFile,
      FLOTILLA_ALLOW_INSECURE_CLIENTS: 'true',
    },
  );
  t.deepEqual(options([], h).logsTls?.cert, p.read(p.server.certFile), 'env over file');
  const flagged = options(
    [`--tls-cert-file=${p.client.certFile}`, `--tls-key-file=${p.client.keyFile}`],
    h,
  );
  t.deepEqual(flagged.logsTls?.cert, p.read(p.client.certFile), 'flags over env');
});

test('an unusable TLS file is a UsageError naming the flag and the file, from any source', (t) => {
  const p = pki();
  t.throws(
    () => options(['--etcd-endpoints=https://e:2379', '--etcd-cafile=/nonexistent/ca.pem']),
    {
      instanceOf: UsageError,
      message: /^--etcd-cafile=\/nonexistent\/ca\.pem: cannot read it \(ENOENT/,
    },
  );
  const conf = host({
    '/etc/agent.conf': `tls-cert-file = ${p.server.keyFile}\ntls-key-file = ${p.server.keyFile}`,
  });
  t.throws(() => options(['--config=/etc/agent.conf'], conf), {
    instanceOf: UsageError,
    message: /^--tls-cert-file=.*server\.key: not a PEM certificate/,
  });
  t.throws(() => options([`--tls-client-ca-file=${p.caFile}`]), {
    instanceOf: UsageError,
    message: /--tls-client-ca-file needs --tls-cert-file and --tls-key-file/,
  });
  t.throws(
    () =>
      options([
        `--etcd-certfile=${p.client.certFile}`,
        `--etcd-keyfile=${p.server.keyFile}`,
        '--etcd-endpoints=https://e:2379',
      ]),
    {
      instanceOf: UsageError,
      message: /^--etcd-keyfile=.*server\.key is not the key of --etcd-certfile=.*client\.crt$/,
    },
  );
  t.throws(() => options([`--etcd-cafile=${p.caFile}`]), {
    instanceOf: UsageError,
    message: /^--etcd-endpoints: http:\/\/127\.0\.0\.1:2379 is not https:\/\//,
  });
});

test('the usage lists the TLS flags', (t) => {
  for (const flag of [
    '--etcd-cafile',
    '--etcd-certfile',
    '--etcd-keyfile',
    '--tls-cert-file',
    '--tls-key-file',
    '--tls-client-ca-file',
  ]) {
    t.regex(AGENT_USAGE, new RegExp(`^  ${flag} FILE`, 'm'), flag);
  }
});

test('a Logs certificate without any client check is refused at start unless --allow-insecure-clients', (t) => {
  const p = pki();
  const served = [`--tls-cert-file=${p.server.certFile}`, `--tls-key-file=${p.server.keyFile}`];
  t.throws(() => options(served), {
    instanceOf: UsageError,
    message:
      /^--tls-cert-file without --tls-client-ca-file or --logs-token-file lets any client read every unit's log: add --tls-client-ca-file \(with --tls-client-names\) or --logs-token-file, or say --allow-insecure-clients$/,
  });
  t.deepEqual(
    options([...served, '--allow-insecure-clients']).logsTls?.cert,
    p.read(p.server.certFile),
  );
  const mutual = options([
    ...served,
    `--tls-client-ca-file=${p.caFile}`,
    '--tls-client-names=sched-1,sched-2',
  ]);
  t.deepEqual(mutual.logsAuth, { clientNames: ['sched-1', 'sched-2'] });
  t.throws(() => options(['--tls-client-names=sched-1']), {
    instanceOf: UsageError,
    message: /--tls-client-names needs --tls-client-ca-file/,
  });
});

test('a plaintext Logs service without a token is refused at start unless --allow-insecure-clients', (t) => {
  const h = host({ '/etc/flotilla/token': `${'t'.repeat(40)}\n` });
  const parse = (...argv: string[]) => parseAgentArgs(['--machine-id=m1', ...argv], h);
  const err = t.throws(() => parse('--logs-listen=0.0.0.0:4701'), { instanceOf: UsageError });
  t.regex(
    err?.message ?? '',
    /^a plaintext Logs service without --logs-token-file lets any client/,
  );
  for (const flag of ['--logs-token-file FILE', '--tls-client-ca-file', '--allow-insecure-clients'])
    t.true(err?.message.includes(flag), `the message names ${flag}`);
  t.throws(
    () => parse('--lease-ttl=1500ms'),
    { message: /--lease-ttl/ },
    'a bad flag is named first',
  );
  const waived = parse('--allow-insecure-clients');
  t.false(waived.help);
  if (!waived.help) t.is(waived.options.logsAuth, undefined);
  const signed = parse('--logs-token-file=/etc/flotilla/token');
  if (!signed.help) t.deepEqual(signed.options.logsAuth, { token: Buffer.from('t'.repeat(40)) });
});

test('--logs-token-file holds a secret of 32 characters or more', (t) => {
  const secret = 'a'.repeat(40);
  const h = host({ '/etc/flotilla/token': `${secret}\n`, '/etc/flotilla/short': 'abc\n' });
  t.deepEqual(options(['--logs-token-file=/etc/flotilla/token'], h).logsAuth, {
    token: Buffer.from(secret),
  });
  t.throws(() => options(['--logs-token-file=/etc/flotilla/short'], h), {
    instanceOf: UsageError,
    message: /^--logs-token-file=\/etc\/flotilla\/short: the secret must be at least 32 characters/,
  });
});
