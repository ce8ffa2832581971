/**
 * End to end: services on a netns cluster of three runc agents. Six instances of one
 * template (Port=http dynamic, two per machine) answer through the routing mesh on every
 * machine; each machine's DNS answers match the endpoint records; a stopped or crashed
 * instance leaves the mesh and DNS within a second of its record going; a rolling update
 * under a steady 20 requests/s fails at most 2 of them; a SIGKILLed agent takes its endpoints with its
 * lease. Endpoint records are written by the agents (issue 20, svccore's side).
 */
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { request } from 'node:http';
import type { Endpoint } from '../../proto/flotilla/v1/records.js';
import { codecs } from '../../store/index.js';
import { assertEventually } from '../../testkit/index.js';
import { hexOfAddress } from '../../agent/dns/names.js';
import { aRecords, dnsQuery, srvRecords } from '../services/services-kit.js';
import { clusterForFile, isRunningView, SETTLE_MS, type UnitView } from './e2e-kit.js';

const { serial, cluster: c } = clusterForFile(anyTest as TestFn, { name: 'e2esvc', net: 240 });

const PUBLISH = 18080;
const API = Array.from({ length: 6 }, (_, i) => `api@${i + 1}.service`);

function apiFile(version: string): string {
  return `[Unit]
Description=api ${version}

[Service]
ExecStartPre=/bin/sh -c 'echo %i-${version} > /tmp/index.html'
ExecStart=busybox httpd -f -p \${PORT} -h /tmp
Restart=on-failure
RestartSec=1

[X-Service]
Port=http
Publish=${PUBLISH}
Tags=${version}
DrainSec=1s

[X-Fleet]
MaxPerMachine=2
`;
}

/** GET http://host:port/ on a new connection; the body, trimmed (at most 3 s). */
function get(host: string, port = PUBLISH): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path: '/', agent: false, timeout: 3_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d.slice(0, 1_000)));
      res.on('end', () =>
        res.statusCode === 200 ? resolve(body.trim()) : reject(new Error(`HTTP ${res.statusCode}`)),
      );
      // A response cut off mid-body ends with 'close' alone: a failed request, not a hang.
      res.on('close', () => {
        if (!res.complete) reject(new Error('the connection closed before the response ended'));
      });
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** The endpoint records of `api`, read from etcd. */
async function endpoints(): Promise<Endpoint[]> {
  const store = c().openStore();
  try {
    const { items } = await store.list(store.keys.dir('endpoint'));
    return items
      .filter((kv) => store.keys.parse(kv.key)?.service === 'api')
      .map((kv) => codecs.endpoint.decode(kv.key, kv.value));
  } finally {
    store.close();
  }
}

const ips = (): string[] => c().record.agents.map((a) => a.ip);
const apis = (u: Map<string, UnitView>): UnitView[] =>
  API.map((n) => u.get(n)).filter((v): v is UnitView => v !== undefined);

serial('6 instances, two per machine, all answer through the mesh on every machine', async (t) => {
  await c().ok(['submit', await c().unitFile('api@.service', apiFile('v1'))]);
  await c().ok(['scale', '--timeout', '90s', 'api@.service=6']);
  const units = await c().waitUnits('6 running', (u) => apis(u).filter(isRunningView).length === 6);
  const perMachine = new Map<string, number>();
  for (const v of apis(units)) perMachine.set(v.machine, (perMachine.get(v.machine) ?? 0) + 1);
  t.deepEqual([...perMachine.values()], [2, 2, 2]);
  const eps = await assertEventually(async () => {
    const e = await endpoints();
    return e.length === 6 ? e : false;
  });
  t.deepEqual(eps.map((e) => e.unit).sort(), API);
  for (const ip of ips()) {
    await assertEventually(
      async () => {
        const seen = new Set<string>();
        for (let i = 0; i < 12; i++) seen.add(await get(ip));
        return seen.size === 6 || (t.log(ip, [...seen]), false);
      },
      { timeoutMs: 20_000, message: `every instance answers through ${ip}:${PUBLISH}` },
    );
  }
  t.pass();
});

serial("every machine's DNS answers A and SRV as the endpoint records say", async (t) => {
  const eps = await endpoints();
  const addresses = [...new Set(eps.map((e) => e.address))].sort();
  const targets = eps.map((e) => `${hexOfAddress(e.address)}.addr.flotilla:${e.port}`).sort();
  for (const ip of ips()) {
    t.deepEqual(aRecords(await dnsQuery(ip, 53, 'api.service.flotilla', 'A')), addresses);
    t.deepEqual(srvRecords(await dnsQuery(ip, 53, 'api.service.flotilla', 'SRV')), targets);
    t.deepEqual(aRecords(await dnsQuery(ip, 53, 'v1.api.service.flotilla', 'A')), addresses);
    t.deepEqual(aRecords(await dnsQuery(ip, 53, 'v2.api.service.flotilla', 'A')), []);
  }
});

/** Waits until `unit` has no endpoint record; when that was seen (ms since the epoch). */
async function recordGone(unit: string): Promise<number> {
  await assertEventually(async () => !(await endpoints()).some((e) => e.unit === unit), {
    timeoutMs: 20_000,
    intervalMs: 20,
    message: `${unit}'s endpoint is withdrawn`,
  });
  return Date.now();
}

/** Within 1 s of `since`, no machine's mesh or DNS sends anyone to `port` on `address`. */
async function leftWithin1s(t: ExecutionContext, gone: Endpoint, since: number) {
  const target = `${hexOfAddress(gone.address)}.addr.flotilla:${gone.port}`;
  await assertEventually(
    async () => {
      for (const ip of ips()) {
        if (srvRecords(await dnsQuery(ip, 53, 'api.service.flotilla', 'SRV')).includes(target)) {
          return false;
        }
      }
      return true;
    },
    { timeoutMs: 5_000, intervalMs: 20 },
  );
  const took = Date.now() - since;
  t.log(`${gone.unit} left every machine's DNS ${took} ms after its record went`);
  t.true(took <= 1_000, `took ${took} ms`);
  // The mesh: 18 requests over the machines, none answered by it.
  for (let i = 0; i < 18; i++) {
    const who = await get(ips()[i % 3] ?? '');
    t.false(who.startsWith(`${gone.unit.replace(/^api@(\d+)\.service$/, '$1')}-`), who);
  }
}

serial('a stopped instance, then a crashed one, leave the mesh and DNS within 1 s', async (t) => {
  const before = await endpoints();
  const stopped = before.find((e) => e.unit === 'api@1.service');
  if (stopped === undefined) return t.fail('no endpoint of api@1');
  const stopping = c().ok(['stop', 'api@1.service']);
  await leftWithin1s(t, stopped, await recordGone('api@1.service'));
  await stopping;

  const crashed = before.find((e) => e.unit === 'api@2.service');
  const pid = (await c().units()).get('api@2.service')?.pid ?? 0;
  if (crashed === undefined || pid <= 0) return t.fail('no running api@2');
  const killedAt = Date.now();
  process.kill(pid, 'SIGKILL');
  const goneAt = await recordGone('api@2.service');
  t.log(
    `the agent withdrew the crashed instance's endpoint ${goneAt - killedAt} ms after the kill`,
  );
  await leftWithin1s(t, crashed, goneAt);
  await c().ok(['start', '--timeout', '60s', 'api@1.service']);
  await assertEventually(async () => (await endpoints()).length === 6, { timeoutMs: SETTLE_MS });
});

serial(
  'a rolling update of the 6 instances under 20 requests/s fails at most 2 (HAProxy, the default data plane)',
  async (t) => {
    let sent = 0;
    const failures: string[] = [];
    const answers = new Map<string, number>();
    const inflight = new Set<Promise<void>>();
    // 20 requests/s on the clock: a tick late under load sends what is due, so the rate holds.
    const started = Date.now();
    const timer = setInterval(() => {
      const due = Math.floor((Date.now() - started) / 50);
      for (let k = 0; sent < due && k < 50; k++) {
        const ip = ips()[sent++ % 3] ?? '';
        const p = get(ip).then(
          (body) => void answers.set(body, (answers.get(body) ?? 0) + 1),
          (err: Error) => void failures.push(`${ip}: ${err.message}`),
        );
        inflight.add(p);
        void p.finally(() => inflight.delete(p));
      }
    }, 5);
    try {
      const run = await c().flotctl([
        'update',
        '--parallelism',
        '1',
        '--monitor',
        '1s',
        '--timeout',
        '240s',
        await c().unitFile('api@.service', apiFile('v2')),
      ]);
      t.is(run.code, 0, run.stdout + run.stderr);
      await new Promise((r) => setTimeout(r, 2_000));
    } finally {
      clearInterval(timer);
      await Promise.all(inflight);
    }
    const v2 = [...answers].filter(([b]) => b.endsWith('-v2')).reduce((a, [, n]) => a + n, 0);
    const rate = (sent * 1000) / (Date.now() - started);
    t.log(
      `${sent} requests (${rate.toFixed(0)}/s), ${failures.length} failed, ${v2} answered by v2`,
    );
    t.true(rate >= 18, 'the load held about 20 requests/s');
    // HAProxy (the default where installed, as here) retries a failed connect on another
    // server and waits 1.5 s for each (one retransmitted SYN). What it cannot hide is a
    // backend too slow to accept: busybox httpd queues 9 connections. On a 2-core host twice
    // as slow as usual, at 200 requests/s alone, the machines' namespaces counted 2,000+
    // dropped SYNs during the update and 2 to 2,792 of about 6,300 requests failed (385-9,658
    // with the 300 ms connect timeout of before); at 100 requests/s none did alone, but 3,361
    // of 6,948 timed out in the full suite, beside another cluster's tests. So 20 requests/s,
    // and at most 2 may fail: a mesh that lost the requests of each instance it withdraws
    // would fail a few per instance, dozens in all.
    for (const f of failures.slice(0, 10)) t.log(`failed: ${f}`);
    t.true(failures.length <= 2, `${failures.length} of ${sent} failed`);
    t.true(v2 > 0, 'the new version answers');
  },
);

serial('an agent SIGKILLed takes its endpoints with its lease', async (t) => {
  const victim = c().record.agents[2];
  if (victim === undefined) return t.fail('no third agent');
  const before = (await endpoints()).filter((e) => e.machine === victim.machineId);
  t.true(before.length > 0);
  process.kill(c().process(`agent-${victim.index}`).pid ?? 0, 'SIGKILL');
  await assertEventually(
    async () => !(await endpoints()).some((e) => e.machine === victim.machineId),
    { timeoutMs: 30_000, message: "the lost machine's endpoints go with its lease" },
  );
  const others = ips().filter((ip) => ip !== victim.ip);
  for (const ip of others) {
    t.false(aRecords(await dnsQuery(ip, 53, 'api.service.flotilla', 'A')).includes(victim.ip));
  }
  // The mesh on the living machines keeps answering.
  for (let i = 0; i < 10; i++) t.truthy(await get(others[i % 2] ?? ''));
});
