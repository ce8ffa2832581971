/**
 * Chaos: overload. etcd, two scheduler replicas and 1,000 simulated machines with their agents'
 * state reports, each process at half a core (a host about twice as slow), while a scale
 * places 20,000 instances. Flotilla promises a big scale on a slow host slows down but never
 * costs a lease or a leader: no machine lease and no election lease lost, no change of
 * leader, and every instance placed. It runs `bench:scale --scale-only` (bench/scale.ts) and
 * reads its figures; `npm run bench:scale -- --cpu-quota 0.5` is the same at full size.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BENCH = fileURLToPath(new URL('../../bench/scale.js', import.meta.url));
const MACHINES = 1_000;
const COUNT = 20_000;
/** The whole run at most: about 40 s at half a core on a quiet 2-core machine. */
const RUN_TIMEOUT_MS = 6 * 60_000;

interface BenchFigures {
  readonly scalePlacedMs: number | null;
  readonly scaleMachineLeasesLost: number | null;
  readonly scaleElectionKeysLost: number | null;
  readonly scaleLeaderChanges: number | null;
  readonly scaleLoopP99LeaderMs: number | null;
  readonly scaleLoopP99FollowerMs: number | null;
  readonly unplannedLeaseLosses: number | null;
}

/** Runs the scale step of the benchmark; its figures, and its stderr's tail for failures. */
function runBench(args: readonly string[]): Promise<{ figures: BenchFigures; log: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [BENCH, ...args],
      { timeout: RUN_TIMEOUT_MS, killSignal: 'SIGTERM', maxBuffer: 8 << 20 },
      (err, stdout, stderr) => {
        const log = stderr.slice(-4000);
        const last = stdout.trim().split('\n').at(-1) ?? '';
        let parsed: { figures?: BenchFigures } | undefined;
        try {
          parsed = JSON.parse(last) as { figures?: BenchFigures };
        } catch {
          parsed = undefined;
        }
        if (parsed?.figures === undefined) {
          reject(new Error(`bench:scale gave no figures (${err?.message ?? 'no error'}):\n${log}`));
          return;
        }
        resolve({ figures: parsed.figures, log });
      },
    );
  });
}

test('a 20,000-instance scale with etcd, schedulers and machines at half a core costs no lease and no leader', async (t) => {
  const args = ['--machines', String(MACHINES), '--count', String(COUNT), '--cpu-quota', '0.5'];
  const { figures: f, log } = await runBench([...args, '--scale-only']);
  t.log(
    `placed in ${((f.scalePlacedMs ?? NaN) / 1000).toFixed(1)} s; event-loop delay p99: leader ` +
      `<= ${f.scaleLoopP99LeaderMs} ms, follower <= ${f.scaleLoopP99FollowerMs} ms`,
  );
  const why = `bench log:\n${log}`;
  t.not(f.scalePlacedMs, null, `every instance placed; ${why}`);
  t.is(f.scaleMachineLeasesLost, 0, `no machine lease lost; ${why}`);
  t.is(f.unplannedLeaseLosses, 0, `no machine lease expired; ${why}`);
  t.is(f.scaleElectionKeysLost, 0, `no election lease lost; ${why}`);
  t.is(f.scaleLeaderChanges, 0, `no change of leader; ${why}`);
});
