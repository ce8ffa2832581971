/**
 * Issue 30's "logs on port 4701, unauthenticated" bullet, closed: an agent with
 * `--logs-token-file` serves a unit's log only to requests signed with that secret (a
 * scheduler's link), so a client with no credential, a wrong one, or one signed for another
 * unit reads nothing; a scheduler relays `journal` through it; follows are bounded per client
 * and in total. Real etcd, a real agent (process driver) and the real API server.
 */
import test from 'ava';
import {
  credentials,
  Metadata,
  status,
  type ClientReadableStream,
  type ServiceError,
} from '@grpc/grpc-js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { LogStore } from '../../agent/index.js';
import { clientOf, FollowLimits } from '../../agent/logs/follow-limits.js';
import { startTailServer } from '../../agent/logs/tail-server.js';
import { AGENT_AUTH_HEADER, signLogsRequest } from '../../daemon/agent-token.js';
import { LogsClient, type LogLine, type TailRequest } from '../../proto/flotilla/v1/logs.js';
import { AgentLink } from '../../scheduler/api/agent-link.js';
import { startApiServer } from '../../scheduler/api/server.js';
import { openStore } from '../../store/index.js';
import {
  clientTls,
  startEtcd,
  testPki,
  uniquePrefix,
  type EtcdServer,
} from '../../testkit/index.js';
import { inProcessAgent, place, service, waitRunning } from './daemon-harness.js';

const SECRET = 'f'.repeat(16) + '0123456789abcdef0123456789abcdef';
const quiet = pino({ level: 'silent' });

let etcd: EtcdServer;
test.before(async () => {
  etcd = await startEtcd();
});
test.after.always(async () => {
  await etcd?.stop();
});

function readAll(stream: ClientReadableStream<LogLine>): Promise<LogLine[]> {
  return new Promise((resolve, reject) => {
    const lines: LogLine[] = [];
    stream.on('data', (l: LogLine) => lines.push(l));
    stream.once('end', () => resolve(lines));
    stream.once('error', reject);
  });
}

/** The error a stream ends with; fails when it yields a single line. */
function refusal(stream: ClientReadableStream<LogLine>): Promise<ServiceError> {
  return new Promise((resolve, reject) => {
    stream.on('data', (l: LogLine) => reject(new Error(`a line leaked: ${l.text}`)));
    stream.once('error', (err: ServiceError) => resolve(err));
    stream.once('end', () => reject(new Error('ended without an error')));
  });
}

async function tokenFile(t: import('ava').ExecutionContext, secret = SECRET): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-token-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'agent-token');
  await writeFile(file, `${secret}\n`, { mode: 0o600 });
  return file;
}

/** An agent with a token running `db.service`, which prints its password. */
async function agentWithDb(t: import('ava').ExecutionContext) {
  const prefix = uniquePrefix('logs-auth');
  const store = openStore({ endpoints: etcd.endpoint, prefix });
  t.teardown(() => store.close());
  const args = [`--logs-token-file=${await tokenFile(t)}`];
  const agent = await inProcessAgent(t, {
    endpoint: etcd.endpoint,
    prefix,
    driver: 'process',
    args,
  });
  await place(
    store,
    agent.machineId,
    'db.service',
    service(
      `ExecStart=/bin/sh -c 'echo db starting with password s3cr3t-db-pass; exec sleep 1000'`,
    ),
  );
  await waitRunning(store, 'db.service');
  return { agent, store };
}

const REQ: TailRequest = { unit: 'db.service', lines: 100, follow: false, machine: '' };

test.serial(
  'a client without the secret is refused and reads no line of another unit; a signed request reads it',
  async (t) => {
    const { agent } = await agentWithDb(t);
    const client = new LogsClient(agent.logsAddress, credentials.createInsecure());
    t.teardown(() => client.close());

    const anonymous = await refusal(client.tail(REQ));
    t.is(anonymous.code, status.UNAUTHENTICATED);
    t.regex(anonymous.details, /only the schedulers \(with --agent-token-file\) may read logs/);
    const followAnon = await refusal(client.tail({ ...REQ, follow: true }));
    t.is(followAnon.code, status.UNAUTHENTICATED);

    const signed = (secret: string, unit: string): Metadata => {
      const md = new Metadata();
      md.set(AGENT_AUTH_HEADER, signLogsRequest(Buffer.from(secret), unit, Date.now()));
      return md;
    };
    const wrong = await refusal(client.tail(REQ, signed('x'.repeat(48), 'db.service')));
    t.is(wrong.code, status.UNAUTHENTICATED);
    t.regex(wrong.details, /does not match/);
    // A signature sniffed for one unit does not open another's log.
    const replayed = await refusal(client.tail(REQ, signed(SECRET, 'web.service')));
    t.is(replayed.code, status.UNAUTHENTICATED);
    const stale = new Metadata();
    stale.set(
      AGENT_AUTH_HEADER,
      signLogsRequest(Buffer.from(SECRET), 'db.service', Date.now() - 10 * 60_000),
    );
    t.is((await refusal(client.tail(REQ, stale))).code, status.UNAUTHENTICATED);

    const lines = await readAll(
      client.tail(REQ, new AgentLink(undefined, Buffer.from(SECRET)).metadata('db.service')),
    );
    t.true(lines.some((l) => l.text === 'db starting with password s3cr3t-db-pass'));
  },
);

test.serial(
  "a scheduler's link with the secret relays journal; one without says what to set",
  async (t) => {
    const { store } = await agentWithDb(t);
    const withToken = await startApiServer({
      store,
      listen: '127.0.0.1:0',
      logger: quiet,
      agentToken: Buffer.from(SECRET),
    });
    const without = await startApiServer({ store, listen: '127.0.0.1:0', logger: quiet });
    t.teardown(async () => {
      await withToken.close();
      await without.close();
    });
    const viaToken = new LogsClient(withToken.address, credentials.createInsecure());
    const viaPlain = new LogsClient(without.address, credentials.createInsecure());
    t.teardown(() => {
      viaToken.close();
      viaPlain.close();
    });
    const lines = await readAll(viaToken.tail(REQ));
    t.true(lines.some((l) => l.text === 'db starting with password s3cr3t-db-pass'));
    const err = await refusal(viaPlain.tail(REQ));
    t.is(err.code, status.FAILED_PRECONDITION);
    t.regex(err.details, /refused the scheduler .*give the schedulers --agent-token-file/);
  },
);

test('follows are bounded per client and in total; an ended follow frees its slot', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-follows-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const logs = new LogStore({ dir });
  await logs.note('a.service', 'hello');
  const server = await startTailServer({
    listen: '127.0.0.1:0',
    logs,
    hasUnit: () => Promise.resolve(true),
    logger: quiet,
    maxFollows: 3,
    maxFollowsPerClient: 2,
  });
  t.teardown(() => server.close());
  const client = new LogsClient(server.address, credentials.createInsecure());
  t.teardown(() => client.close());
  const follow = (): ClientReadableStream<LogLine> => {
    const s = client.tail({ unit: 'a.service', lines: 1, follow: true, machine: '' });
    s.on('error', () => undefined);
    return s;
  };
  const started = (s: ClientReadableStream<LogLine>) =>
    new Promise<void>((resolve) => s.once('data', () => resolve()));
  const first = follow();
  const second = follow();
  await Promise.all([started(first), started(second)]);
  const third = await refusal(follow());
  t.is(third.code, status.RESOURCE_EXHAUSTED);
  t.regex(third.details, /already follows 2 logs on this agent, the most one client may/);
  first.cancel();
  // The server sees the cancel asynchronously: the slot comes back soon after.
  const again = await (async () => {
    for (let i = 0; i < 100; i++) {
      const s = client.tail({ unit: 'a.service', lines: 1, follow: true, machine: '' });
      const outcome = await Promise.race([
        started(s).then(() => 'following'),
        new Promise<string>((resolve) => s.once('error', () => resolve('refused'))),
      ]);
      if (outcome === 'following') return s;
      await new Promise((r) => setTimeout(r, 50));
    }
    return undefined;
  })();
  t.truthy(again, 'a follow is served again once one ended');
  again?.cancel();
  second.cancel();
});

test('the total bound holds across clients, and a slot given back twice counts once', (t) => {
  const limits = new FollowLimits(2, 2);
  const a = limits.take('ipv4:10.0.0.1:5000');
  const b = limits.take('ipv4:10.0.0.2:5000');
  t.is(typeof a, 'function');
  t.is(typeof b, 'function');
  t.regex(
    String(limits.take('ipv4:10.0.0.3:5000')),
    /already serves 2 follows, the most it serves at once/,
  );
  if (typeof a === 'function') {
    a();
    a();
  }
  t.is(limits.active, 1);
  t.is(typeof limits.take('ipv4:10.0.0.3:5001'), 'function');
  t.is(clientOf('ipv6:[::1]:4701'), 'ipv6:[::1]');
});

test.serial(
  'with --tls-client-names only a certificate naming a scheduler reads logs, not any of the CA',
  async (t) => {
    const pki = await testPki(t);
    const other = await pki.issue('unit-team', '/CN=webteam');
    const prefix = uniquePrefix('logs-mtls');
    const store = openStore({ endpoints: etcd.endpoint, prefix });
    t.teardown(() => store.close());
    const args = [
      `--tls-cert-file=${pki.server.certFile}`,
      `--tls-key-file=${pki.server.keyFile}`,
      `--tls-client-ca-file=${pki.caFile}`,
      '--tls-client-names=flotilla-test-client',
    ];
    const agent = await inProcessAgent(t, {
      endpoint: etcd.endpoint,
      prefix,
      driver: 'process',
      args,
    });
    await place(
      store,
      agent.machineId,
      'db.service',
      service(`ExecStart=/bin/sh -c 'echo s3cr3t; exec sleep 1000'`),
    );
    await waitRunning(store, 'db.service');
    const dial = (files: typeof pki.client): LogsClient => {
      const tls = clientTls(pki, files);
      const c = new LogsClient(agent.logsAddress, credentials.createSsl(tls.ca, tls.key, tls.cert));
      t.teardown(() => c.close());
      return c;
    };
    const denied = await refusal(dial(other).tail(REQ));
    t.is(denied.code, status.PERMISSION_DENIED);
    t.regex(
      denied.details,
      /a certificate for webteam, .*; only flotilla-test-client \(--tls-client-names\)/,
    );
    const lines = await readAll(dial(pki.client).tail(REQ));
    t.true(lines.some((l) => l.text === 's3cr3t'));
  },
);
