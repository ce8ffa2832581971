/**
 * TLS end to end, with real certificates (testkit/tls.ts): a real scheduler replica
 * (scheduler/main.ts, flags parsed as the daemon parses them) over an etcd that serves TLS and
 * requires client certificates, its API serving TLS or mutual TLS, and flotctl as a child
 * process; for `journal`, a real agent (process driver) serving its Logs service over mutual
 * TLS. Every misconfiguration ends flotctl with exit 1 and one line saying what to pass.
 */
import test, { type ExecutionContext } from 'ava';
import { pino } from 'pino';
import { channelCredentials } from '../../daemon/tls.js';
import { LogsClient, type LogLine } from '../../proto/flotilla/v1/logs.js';
import { API_SERVICES } from '../../scheduler/api/index.js';
import { startScheduler, type Scheduler } from '../../scheduler/main.js';
import { parseSchedulerArgs } from '../../scheduler/options.js';
import { inProcessAgent } from '../agent/daemon-harness.js';
import {
  assertEventually,
  clientTls,
  etcdForFile,
  pkiForFile,
  reflectedServices,
  uniquePrefix,
  type TestPki,
} from '../../testkit/index.js';
import { addMachine, EXAMPLES, flotctl, type Run } from './cli-kit.js';

const server = etcdForFile(test, { tls: true });
const stranger = pkiForFile(test, 'stranger-ca');

function etcdPki(): TestPki {
  const pki = server().pki;
  if (pki === undefined) throw new Error('etcd without TLS');
  return pki;
}

/** `--tls-cert-file` and `--tls-key-file` with the PKI's server certificate. */
function apiCert(pki: TestPki): string[] {
  return [`--tls-cert-file=${pki.server.certFile}`, `--tls-key-file=${pki.server.keyFile}`];
}

/** A scheduler replica over the TLS etcd (with a client certificate), plus `flags`. */
async function tlsScheduler(
  t: ExecutionContext,
  flags: readonly string[],
  prefix = uniquePrefix('cli-tls'),
): Promise<Scheduler & { readonly endpoint: string }> {
  const etcd = server();
  const pki = etcdPki();
  const parsed = parseSchedulerArgs([
    `--etcd-endpoints=${etcd.endpoint}`,
    `--etcd-cafile=${pki.caFile}`,
    `--etcd-certfile=${pki.client.certFile}`,
    `--etcd-keyfile=${pki.client.keyFile}`,
    `--prefix=${prefix}`,
    '--listen=127.0.0.1:0',
    '--log-level=silent',
    '--election-ttl=2s',
    '--tick=200ms',
    ...flags,
  ]);
  if (parsed.help) throw new Error('unexpected --help');
  const scheduler = await startScheduler(parsed.options, pino({ level: 'silent' }));
  t.teardown(() => scheduler.close({ resign: true }));
  return Object.assign(scheduler, { endpoint: scheduler.apiAddress ?? '' });
}

/** flotctl failed with exit 1 and exactly one line on stderr matching `re`. */
function failsWithOneLine(t: ExecutionContext, r: Run, re: RegExp, what: string): void {
  t.is(r.code, 1, `${what}: ${r.stdout}${r.stderr}`);
  t.regex(r.stderr, re, what);
  t.is(r.stderr.split('\n').length, 2, `${what}: one line, got ${JSON.stringify(r.stderr)}`);
  t.is(r.stdout, '', what);
}

test('over a TLS etcd with a client certificate, the API serves TLS to flotctl --ca-file', async (t) => {
  const pki = etcdPki();
  const api = await tlsScheduler(t, apiCert(pki));
  const machine = await addMachine(api.store, { addresses: ['10.0.0.1'] });
  const ca = ['--endpoint', api.endpoint, '--ca-file', pki.caFile];

  const list = await flotctl([...ca, 'list-machines', '--full']);
  t.is(list.code, 0, list.stderr);
  t.true(list.stdout.includes(machine.id), list.stdout);
  const submit = await flotctl([...ca, 'submit', `${EXAMPLES}hello.service`]);
  t.is(submit.code, 0, submit.stderr);

  const viaEnv = await flotctl(['--endpoint', `https://${api.endpoint}`, 'list-unit-files'], {
    env: { FLOTCTL_CA_FILE: pki.caFile },
  });
  t.is(viaEnv.code, 0, viaEnv.stderr);
  t.regex(viaEnv.stdout, /^hello\.service\s/m, 'FLOTCTL_CA_FILE and an https:// endpoint');
});

test('flotctl without the right CA fails with one line saying to pass --ca-file', async (t) => {
  const pki = etcdPki();
  const api = await tlsScheduler(t, apiCert(pki));
  const at = api.endpoint.replace(/\./g, '\\.');
  const plain = new RegExp(
    `^the Flotilla API at ${at} closed a plaintext connection at once: it probably requires TLS: pass --ca-file `,
  );
  for (const args of [['list-units'], ['watch'], ['journal', '-f', 'hello.service']]) {
    const r = await flotctl(['--endpoint', api.endpoint, ...args]);
    failsWithOneLine(t, r, plain, `plaintext ${args.join(' ')}`);
  }
  const roots = await flotctl(['--endpoint', `https://${api.endpoint}`, 'list-units']);
  const untrusted =
    /presented a certificate that is not trusted \(.+\): pass --ca-file with the CA that signed it \(or set FLOTCTL_CA_FILE\)$/m;
  failsWithOneLine(t, roots, untrusted, 'https:// with the public roots');
  const wrong = await flotctl([
    '--endpoint',
    api.endpoint,
    '--ca-file',
    stranger().caFile,
    'list-units',
  ]);
  const notSigned =
    /presented a certificate not signed by the CA in --ca-file=.+: pass --ca-file with the CA that signed it/;
  failsWithOneLine(t, wrong, notSigned, "another CA's file");
  const missing = await flotctl([
    '--endpoint',
    api.endpoint,
    '--ca-file',
    '/nonexistent/ca.pem',
    'list-units',
  ]);
  failsWithOneLine(
    t,
    missing,
    /^--ca-file=\/nonexistent\/ca\.pem: cannot read it \(ENOENT/,
    'no file',
  );
});

test('with --tls-client-ca-file, flotctl needs a client certificate signed by that CA', async (t) => {
  const pki = etcdPki();
  const api = await tlsScheduler(t, [...apiCert(pki), `--tls-client-ca-file=${pki.caFile}`]);
  const ca = ['--endpoint', api.endpoint, '--ca-file', pki.caFile];

  const without = await flotctl([...ca, 'list-units']);
  const needsCert =
    /requires a client certificate \(.*certificate required\): pass --cert-file and --key-file \(or set FLOTCTL_CERT_FILE and FLOTCTL_KEY_FILE\)$/m;
  failsWithOneLine(t, without, needsCert, 'no client certificate');

  const client = ['--cert-file', pki.client.certFile, '--key-file', pki.client.keyFile];
  const withCert = await flotctl([...ca, ...client, 'list-units']);
  t.is(withCert.code, 0, withCert.stderr);
  const viaEnv = await flotctl([...ca, 'list-units'], {
    env: { FLOTCTL_CERT_FILE: pki.client.certFile, FLOTCTL_KEY_FILE: pki.client.keyFile },
  });
  t.is(viaEnv.code, 0, viaEnv.stderr);

  const foreign = stranger().client;
  const refused = await flotctl([
    ...ca,
    '--cert-file',
    foreign.certFile,
    '--key-file',
    foreign.keyFile,
    'list-units',
  ]);
  failsWithOneLine(
    t,
    refused,
    /client certificate --cert-file=.*client\.crt .*--tls-client-ca-file/,
    "another CA's certificate",
  );
});

test('flotctl with --ca-file against a plaintext API says it does not speak TLS', async (t) => {
  const api = await tlsScheduler(t, []);
  const r = await flotctl([
    '--endpoint',
    api.endpoint,
    '--ca-file',
    etcdPki().caFile,
    'list-units',
  ]);
  failsWithOneLine(
    t,
    r,
    /does not speak TLS \(.+\): leave out --ca-file, --cert-file and --key-file/,
    'TLS to plaintext',
  );
});

test('gRPC reflection lists the services over mutual TLS', async (t) => {
  const pki = etcdPki();
  const api = await tlsScheduler(t, [...apiCert(pki), `--tls-client-ca-file=${pki.caFile}`]);
  const names = await reflectedServices(api.endpoint, channelCredentials(clientTls(pki)));
  for (const name of API_SERVICES) t.true(names.includes(name), `${name} in ${names.join(',')}`);
});

test('journal reads through the API from an agent serving Logs over mutual TLS', async (t) => {
  const pki = etcdPki();
  const prefix = uniquePrefix('cli-tls-journal');
  const api = await tlsScheduler(t, [...apiCert(pki), `--agent-ca-file=${pki.caFile}`], prefix);
  const agent = await inProcessAgent(t, {
    endpoint: server().endpoint,
    prefix,
    driver: 'process',
    args: [
      `--etcd-cafile=${pki.caFile}`,
      `--etcd-certfile=${pki.client.certFile}`,
      `--etcd-keyfile=${pki.client.keyFile}`,
      `--tls-cert-file=${pki.client.certFile}`,
      `--tls-key-file=${pki.client.keyFile}`,
      `--tls-client-ca-file=${pki.caFile}`,
    ],
  });
  await agent.registered();
  const ca = ['--endpoint', api.endpoint, '--ca-file', pki.caFile];
  const start = await flotctl([...ca, 'start', `${EXAMPLES}hello.service`]);
  t.is(start.code, 0, start.stderr);
  const journal = await assertEventually(
    async () => {
      const r = await flotctl([...ca, 'journal', '-n', '2', 'hello']);
      if (r.code !== 0) throw new Error(r.stderr);
      return r.stdout.split('\n').filter((l) => l.startsWith('hello from')).length === 2 && r;
    },
    { message: 'journal shows two lines of hello.service' },
  );
  t.regex(journal.stdout, /^hello from /);

  // The agent itself refuses a caller without a client certificate.
  const direct = new LogsClient(
    agent.logsAddress,
    channelCredentials({ ca: pki.read(pki.caFile) }),
  );
  t.teardown(() => direct.close());
  const refused = await new Promise<Error>((resolve, reject) => {
    const s = direct.tail({ unit: 'hello.service', lines: 1, follow: false, machine: '' });
    s.on('data', (l: LogLine) => reject(new Error(`read ${l.text}`)));
    s.once('error', resolve);
  });
  t.regex(refused.message, /certificate required/);

  // Replicas that cannot reach the agents say which of their flags to fix.
  const noAgentCa = await tlsScheduler(t, apiCert(pki), prefix);
  const plain = await flotctl([
    '--endpoint',
    noAgentCa.endpoint,
    '--ca-file',
    pki.caFile,
    'journal',
    'hello',
  ]);
  failsWithOneLine(
    t,
    plain,
    /^the agent of machine \S+ at 127\.0\.0\.1:\d+ closed a plaintext connection: if the agents serve TLS, give the scheduler --agent-ca-file$/m,
    'a replica without --agent-ca-file',
  );
  const noCert = await tlsScheduler(t, [`--agent-ca-file=${pki.caFile}`], prefix);
  const anonymous = await flotctl(['--endpoint', noCert.endpoint, 'journal', 'hello']);
  failsWithOneLine(
    t,
    anonymous,
    /requires a client certificate \(.*\): give the scheduler --tls-cert-file and --tls-key-file signed by the agents' --tls-client-ca-file$/m,
    'a replica without a certificate of its own',
  );
});
