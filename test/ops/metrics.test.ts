/**
 * Metrics and health of real daemons: a scheduler replica (leader) and an agent running a
 * unit as a plain process, both with `--metrics-listen`, scraped over HTTP as Prometheus
 * would; `/readyz` and gRPC health before and after the cluster cache syncs, with etcd cut off
 * by a proxy first.
 */
import { credentials, Metadata } from '@grpc/grpc-js';
import test, { type ExecutionContext } from 'ava';
import { pino } from 'pino';
import { HealthService, ServingStatus } from '../../daemon/grpc-health.js';
import { HealthClient, healthOf } from '../../testkit/health.js';
import { UnitsClient } from '../../proto/flotilla/v1/units.js';
import { startScheduler, type Scheduler } from '../../scheduler/main.js';
import { parseSchedulerArgs } from '../../scheduler/options.js';
import { inProcessAgent, service, serviceWithFleet } from '../agent/daemon-harness.js';
import { assertEventually, etcdForFile, startProxy, uniquePrefix } from '../../testkit/index.js';
import { CALL_TIMEOUT_MS } from '../api/api-kit.js';

const etcd = etcdForFile(test);

async function scheduler(
  t: ExecutionContext,
  endpoint: string,
  prefix: string,
  more: string[] = [],
): Promise<Scheduler> {
  const parsed = parseSchedulerArgs([
    `--etcd-endpoints=${endpoint}`,
    `--prefix=${prefix}`,
    '--listen=127.0.0.1:0',
    '--metrics-listen=127.0.0.1:0',
    '--election-ttl=2s',
    ...more,
  ]);
  if (parsed.help) throw new Error('unreachable');
  const s = await startScheduler(parsed.options, pino({ level: 'silent' }));
  t.teardown(() => s.close({ resign: true }));
  return s;
}

async function get(
  address: string | undefined,
  path: string,
): Promise<{ code: number; body: string }> {
  const res = await fetch(`http://${address ?? ''}${path}`, {
    signal: AbortSignal.timeout(10_000),
  });
  return { code: res.status, body: await res.text() };
}

/** The value of one sample (`name{labels}`) in a Prometheus text page, or undefined. */
function sample(page: string, series: string): number | undefined {
  for (const line of page.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

async function metricIs(address: string | undefined, series: string, want: number) {
  let last: number | undefined;
  await assertEventually(
    async () => {
      last = sample((await get(address, '/metrics')).body, series);
      return last === want;
    },
    { timeoutMs: 30_000, message: `${series} becomes ${want}` },
  ).catch((err: unknown) => {
    throw new Error(`${String(err)} (last: ${String(last)})`);
  });
}

/** Health.Watch on `address`: the statuses it sends, as they come (cancelled at teardown). */
function watchHealth(t: ExecutionContext, address: string): ServingStatus[] {
  const client = new HealthClient(address, credentials.createInsecure());
  const seen: ServingStatus[] = [];
  const call = client.makeServerStreamRequest(
    HealthService.watch.path,
    HealthService.watch.requestSerialize,
    HealthService.watch.responseDeserialize,
    { service: '' },
    new Metadata(),
    {},
  );
  call.on('data', (res: { status: ServingStatus }) => seen.push(res.status));
  call.on('error', () => undefined);
  t.teardown(() => {
    call.cancel();
    client.close();
  });
  return seen;
}

test('metrics scraped over HTTP follow a unit as it starts and stops', async (t) => {
  const prefix = uniquePrefix(t.title);
  const s = await scheduler(t, etcd().endpoint, prefix);
  const agent = await inProcessAgent(t, {
    endpoint: etcd().endpoint,
    prefix,
    driver: 'process',
    args: ['--metrics-listen=127.0.0.1:0'],
  });
  await metricIs(s.metricsAddress, 'flotilla_scheduler_leader', 1);
  await metricIs(s.metricsAddress, 'flotilla_scheduler_machines', 1);

  const units = new UnitsClient(s.apiAddress ?? '', credentials.createInsecure());
  t.teardown(() => units.close());
  const call = <Req>(method: 'submitUnits' | 'setDesiredState', req: Req) =>
    new Promise<void>((resolve, reject) =>
      (units[method] as (r: Req, m: Metadata, o: object, cb: (e: Error | null) => void) => void)(
        req,
        new Metadata(),
        { deadline: Date.now() + CALL_TIMEOUT_MS },
        (e) => (e === null ? resolve() : reject(e)),
      ),
    );
  await call('submitUnits', {
    files: [{ name: 'sleeper.service', contents: service('ExecStart=/bin/sleep 600') }],
    replace: false,
    desiredState: 'launched',
  });

  await metricIs(s.metricsAddress, 'flotilla_scheduler_units{desired_state="launched"}', 1);
  await metricIs(s.metricsAddress, 'flotilla_scheduler_units_current{current_state="launched"}', 1);
  await metricIs(s.metricsAddress, 'flotilla_scheduler_placements_committed_total', 1);
  await metricIs(agent.metricsAddress, 'flotilla_agent_units{state="active"}', 1);
  const page = (await get(s.metricsAddress, '/metrics')).body;
  t.is(
    sample(page, 'flotilla_scheduler_api_requests_total{method="Units.SubmitUnits",code="OK"}'),
    1,
  );
  t.true((sample(page, 'flotilla_scheduler_plan_pass_duration_seconds_count') ?? 0) >= 1);
  t.true(
    (sample(page, 'flotilla_scheduler_etcd_request_duration_seconds_count{operation="txn"}') ??
      0) >= 1,
  );
  const agentPage = (await get(agent.metricsAddress, '/metrics')).body;
  t.is(sample(agentPage, 'flotilla_agent_unit_start_duration_seconds_count'), 1);
  t.true((sample(agentPage, 'flotilla_agent_log_bytes') ?? -1) >= 0);

  // A unit no machine fits is pending, counted under the kind of its reason.
  await call('submitUnits', {
    files: [
      {
        name: 'martian.service',
        contents: serviceWithFleet(['MachineMetadata=region=mars'], 'ExecStart=/bin/sleep 600'),
      },
    ],
    replace: false,
    desiredState: 'launched',
  });
  await metricIs(s.metricsAddress, 'flotilla_scheduler_units_pending{reason="metadata"}', 1);
  await call('setDesiredState', { names: ['martian.service'], desiredState: 'inactive' });
  await metricIs(s.metricsAddress, 'flotilla_scheduler_units_pending{reason="metadata"}', 0);

  await call('setDesiredState', { names: ['sleeper.service'], desiredState: 'inactive' });
  await metricIs(s.metricsAddress, 'flotilla_scheduler_units{desired_state="inactive"}', 2);
  await metricIs(s.metricsAddress, 'flotilla_scheduler_units_current{current_state="inactive"}', 2);
  await metricIs(s.metricsAddress, 'flotilla_scheduler_units_current{current_state="launched"}', 0);
  await metricIs(s.metricsAddress, 'flotilla_scheduler_placements_removed_total', 1);
  await metricIs(agent.metricsAddress, 'flotilla_agent_units{state="active"}', 0);

  // A unit that keeps failing is restarted by its agent, and each restart is counted.
  await call('submitUnits', {
    files: [
      {
        name: 'crasher.service',
        contents: service('ExecStart=/bin/sh -c "exit 3"', 'Restart=always', 'RestartSec=100ms'),
      },
    ],
    replace: false,
    desiredState: 'launched',
  });
  await assertEventually(
    async () =>
      (sample(
        (await get(agent.metricsAddress, '/metrics')).body,
        'flotilla_agent_unit_restarts_total',
      ) ?? 0) >= 2,
    { timeoutMs: 30_000, message: 'restarts counted' },
  );
  await call('setDesiredState', { names: ['crasher.service'], desiredState: 'inactive' });

  t.is((await get(s.metricsAddress, '/healthz')).code, 200);
  t.is((await get(agent.metricsAddress, '/readyz')).code, 200);
  t.is(await healthOf(agent.logsAddress, 'flotilla.v1.Logs'), ServingStatus.SERVING);
});

test('/readyz and gRPC health say not ready until the cache syncs with etcd, then ready', async (t) => {
  const proxy = await startProxy(etcd().clientPort);
  t.teardown(() => proxy.close());
  proxy.block('reset');
  const s = await scheduler(t, proxy.endpoint, uniquePrefix(t.title));
  const before = await get(s.metricsAddress, '/readyz');
  t.is(before.code, 503);
  t.regex(before.body, /cluster cache not synced/);
  t.is((await get(s.metricsAddress, '/healthz')).code, 200, 'alive all the same');
  t.is(await healthOf(s.apiAddress ?? ''), ServingStatus.NOT_SERVING);
  t.is(await healthOf(s.apiAddress ?? '', 'flotilla.v1.Units'), ServingStatus.NOT_SERVING);

  const watched = watchHealth(t, s.apiAddress ?? '');
  await assertEventually(() => watched.length > 0, {
    timeoutMs: 10_000,
    message: 'a first status',
  });
  t.deepEqual(watched, [ServingStatus.NOT_SERVING]);

  proxy.unblock();
  await assertEventually(() => watched.includes(ServingStatus.SERVING), {
    timeoutMs: 30_000,
    message: 'Health.Watch says SERVING once ready',
  });
  t.deepEqual(watched, [ServingStatus.NOT_SERVING, ServingStatus.SERVING], 'each change once');
  await assertEventually(async () => (await get(s.metricsAddress, '/readyz')).code === 200, {
    timeoutMs: 30_000,
    message: '/readyz becomes ready',
  });
  t.is((await get(s.metricsAddress, '/readyz')).body, 'ready\n');
  t.is(await healthOf(s.apiAddress ?? ''), ServingStatus.SERVING);
  await t.throwsAsync(healthOf(s.apiAddress ?? '', 'no.such.Service'), {
    message: /NOT_FOUND|unknown service/,
  });
});

test('both daemons export their event-loop delay and how late their lease renewals ran', async (t) => {
  const prefix = uniquePrefix(t.title);
  const s = await scheduler(t, etcd().endpoint, prefix);
  const agent = await inProcessAgent(t, {
    endpoint: etcd().endpoint,
    prefix,
    driver: 'process',
    args: ['--metrics-listen=127.0.0.1:0', '--lease-ttl=3s'],
  });
  for (const [address, daemon] of [
    [s.metricsAddress, 'scheduler'],
    [agent.metricsAddress, 'agent'],
  ] as const) {
    const renewals = `flotilla_${daemon}_lease_renewal_lateness_seconds_count`;
    const page = await assertEventually(
      async () => {
        const body = (await get(address, '/metrics')).body;
        return (sample(body, renewals) ?? 0) >= 2 ? body : false;
      },
      { timeoutMs: 30_000, message: `${daemon}: lease renewals are counted` },
    );
    const count = sample(page, renewals) ?? 0;
    // Renewals run in the lease worker, on time: none of them half a second late.
    t.is(sample(page, `flotilla_${daemon}_lease_renewal_lateness_seconds_bucket{le="0.5"}`), count);
    t.true((sample(page, `flotilla_${daemon}_lease_renewal_round_trip_seconds_count`) ?? 0) >= 2);
    const delays = sample(page, `flotilla_${daemon}_event_loop_delay_seconds_count`) ?? 0;
    t.true(delays >= 10, `${daemon}: ${delays} event-loop delay samples`);
    t.true(sample(page, `flotilla_${daemon}_nodejs_eventloop_lag_p99_seconds`) !== undefined);
  }
});
