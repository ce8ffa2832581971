/**
 * Readiness follows a frozen etcd: a scheduler replica and an agent, each on its own etcd,
 * are sampled every 200 ms (`/readyz` and gRPC health) while etcd is stopped with SIGSTOP for
 * 30 s. A load balancer reading them must see "not ready" within 5 s, not one "ready" until
 * etcd runs again, and "ready" within 1 s of it answering. Before the fix the scheduler said
 * ready for 17 of 30 frozen seconds: each reopened keepalive stream counted as an answer.
 */
import test, { type ExecutionContext } from 'ava';
import { pino } from 'pino';
import { ServingStatus } from '../../daemon/grpc-health.js';
import { startScheduler } from '../../scheduler/main.js';
import { parseSchedulerArgs } from '../../scheduler/options.js';
import { inProcessAgent } from '../agent/daemon-harness.js';
import { assertEventually, sleep, startEtcd, uniquePrefix } from '../../testkit/index.js';
import { healthOf } from '../../testkit/health.js';

const FROZEN_MS = 30_000;
const SAMPLE_MS = 200;

/** One way to ask a daemon whether it is ready. */
interface Probe {
  readonly name: string;
  ready(): Promise<boolean>;
}

function readyz(name: string, address: string | undefined): Probe {
  return {
    name,
    ready: async () => {
      const res = await fetch(`http://${address ?? ''}/readyz`, {
        signal: AbortSignal.timeout(2_000),
      });
      await res.text();
      return res.status === 200;
    },
  };
}

function grpcHealth(name: string, address: string): Probe {
  return {
    name,
    ready: async () => (await healthOf(address, '', 2_000)) === ServingStatus.SERVING,
  };
}

/** A sample: when (ms after SIGSTOP) and what each probe said. */
interface Sample {
  readonly at: number;
  readonly ready: boolean;
}

async function sampleUntil(probe: Probe, start: number, until: () => boolean): Promise<Sample[]> {
  const samples: Sample[] = [];
  while (!until()) {
    const at = performance.now() - start;
    const ready = await probe.ready().catch(() => false);
    samples.push({ at, ready });
    await sleep(SAMPLE_MS);
  }
  return samples;
}

async function frozenEtcd(t: ExecutionContext) {
  const etcd = await startEtcd();
  t.teardown(() => etcd.stop());
  t.teardown(() => etcd.kill('SIGCONT')); // runs first: a failed test never leaves it stopped
  return etcd;
}

test('a scheduler and an agent are not ready while etcd is frozen, and ready within 1 s of it running', async (t) => {
  t.timeout(120_000);
  const etcd = await frozenEtcd(t);
  const prefix = uniquePrefix(t.title);
  const parsed = parseSchedulerArgs([
    `--etcd-endpoints=${etcd.endpoint}`,
    `--prefix=${prefix}`,
    '--listen=127.0.0.1:0',
    '--metrics-listen=127.0.0.1:0',
  ]);
  if (parsed.help) throw new Error('unreachable');
  const scheduler = await startScheduler(parsed.options, pino({ level: 'silent' }));
  t.teardown(() => scheduler.close({ resign: false }));
  // A lease longer than the freeze: the agent stays registered, so its readiness follows etcd
  // alone, not a registration anew after its lease expired.
  const agent = await inProcessAgent(t, {
    endpoint: etcd.endpoint,
    prefix,
    driver: 'process',
    args: ['--metrics-listen=127.0.0.1:0', '--lease-ttl=90s'],
  });
  const probes = [
    readyz('scheduler /readyz', scheduler.metricsAddress),
    grpcHealth('scheduler gRPC health', scheduler.apiAddress ?? ''),
    readyz('agent /readyz', agent.metricsAddress),
    grpcHealth('agent gRPC health', agent.logsAddress),
  ];
  for (const p of probes) {
    await assertEventually(() => p.ready(), { timeoutMs: 30_000, message: `${p.name} ready` });
  }
  // As in the report: one scrape before the freeze.
  await fetch(`http://${scheduler.metricsAddress ?? ''}/metrics`).then((r) => r.text());

  await etcd.kill('SIGSTOP');
  const stopped = performance.now();
  const freeze = { over: false };
  const sampling = probes.map((p) => sampleUntil(p, stopped, () => freeze.over));
  await sleep(FROZEN_MS);
  await etcd.kill('SIGCONT');
  freeze.over = true;
  const frozen = await Promise.all(sampling);

  for (const [i, p] of probes.entries()) {
    const samples = frozen[i] ?? [];
    const firstDown = samples.findIndex((s) => !s.ready);
    t.true(firstDown >= 0, `${p.name}: never said not ready while etcd was frozen`);
    const downAt = samples[firstDown]?.at ?? Infinity;
    t.true(downAt <= 5_000, `${p.name}: not ready only ${Math.round(downAt)} ms after SIGSTOP`);
    const readyAgain = samples.slice(firstDown).filter((s) => s.ready);
    t.deepEqual(
      readyAgain.map((s) => Math.round(s.at)),
      [],
      `${p.name}: said ready while etcd was frozen (ms after SIGSTOP)`,
    );
  }

  const resumedAt = performance.now();
  await Promise.all(
    probes.map(async (p) => {
      await assertEventually(() => p.ready(), {
        timeoutMs: 10_000,
        intervalMs: 50,
        message: `${p.name} ready after SIGCONT`,
      });
      const took = performance.now() - resumedAt;
      t.true(took <= 1_000, `${p.name}: ready ${Math.round(took)} ms after SIGCONT`);
    }),
  );
});
