/**
 * flotctl start-up benchmark: how long `flotctl --help` and `flotctl list-machines` take as a
 * user runs them (a new node process each), side by side with `node -e 0`, the floor any
 * node program pays. The cluster is small and real: one etcd, one scheduler replica
 * (`dist/scheduler/main.js`) and 3 simulated machines registered under their own leases.
 *
 * The commands run interleaved, one of each per round in a rotated order, so drift of the
 * shared machine's load cancels; the figures are medians over the rounds, and each command's
 * overhead is the median of its per-round difference to `node -e 0`. Targets (issue 24):
 * `--help` within 40 ms of node's start, `list-machines` within 80 ms.
 *
 * FLOTILLA_BENCH_CLI_BEFORE=/path/to/other/bin/flotctl adds that build's two commands to the
 * same rounds (a before/after comparison in one run); FLOTILLA_BENCH_CLI_ROUNDS sets the
 * rounds (default 40). `npm run bench:cli`. Prints a table, then one JSON line; everything it
 * starts is ended at the end, also on failure.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LeasePool, openStore, type Store } from '../store/index.js';
import { freePort, startEtcd, uniquePrefix, type EtcdServer } from '../testkit/index.js';
import {
  machineLeasePool,
  makeMachines,
  registerMachines,
  startLogsStandIn,
  type LogsStandIn,
} from './sim-machines.js';
import { median, Processes, startReplica } from './scale-procs.js';

const FLOTCTL = fileURLToPath(new URL('../../bin/flotctl', import.meta.url));
const ROUNDS = Number(process.env['FLOTILLA_BENCH_CLI_ROUNDS'] ?? 40);
const BEFORE = process.env['FLOTILLA_BENCH_CLI_BEFORE'];
/** One command run is killed after this long (a hung flotctl fails the benchmark). */
const RUN_TIMEOUT_MS = 30_000;
const MACHINES = 3;
/** Targets: ms over `node -e 0`. */
const TARGETS: Readonly<Record<string, number>> = { '--help': 40, 'list-machines': 80 };

/** One command of the benchmark: what it is called in the report and its argv. */
interface Command {
  readonly label: string;
  /** The target's key in TARGETS, for flotctl commands of the build under test. */
  readonly target?: string;
  readonly argv: readonly string[];
  /** Lines its stdout must have (a run that printed less did not do the work). */
  readonly minLines: number;
}

/** Runs `argv` with node; its wall time in ms (spawn to exit), or throws on failure. */
function timeRun(procs: Processes, cmd: Command, env: NodeJS.ProcessEnv): Promise<number> {
  const started = process.hrtime.bigint();
  const child = procs.track(
    spawn(process.execPath, [...cmd.argv], { env, stdio: ['ignore', 'pipe', 'pipe'] }),
  );
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (c: string) => (out = (out + c).slice(-16_384)));
  child.stderr?.setEncoding('utf8').on('data', (c: string) => (err = (err + c).slice(-2_048)));
  const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
  return new Promise((resolve, reject) => {
    child.once('close', (code) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      clearTimeout(timer);
      const lines = out.split('\n').filter((l) => l !== '').length;
      if (code !== 0 || lines < cmd.minLines) {
        reject(new Error(`${cmd.label}: exit ${code}, ${lines} lines; ${err.trim().slice(-300)}`));
      } else resolve(ms);
    });
  });
}

function flotctlCommands(bin: string, api: string, suffix: string, ofBuild: boolean): Command[] {
  const target = (key: string): { target?: string } => (ofBuild ? { target: key } : {});
  return [
    { label: `flotctl --help${suffix}`, ...target('--help'), argv: [bin, '--help'], minLines: 20 },
    {
      label: `flotctl list-machines${suffix}`,
      ...target('list-machines'),
      argv: [bin, '--endpoint', api, 'list-machines'],
      minLines: 1 + MACHINES,
    },
  ];
}

const fmt = (ms: number | undefined): string => (ms === undefined ? '-' : ms.toFixed(1));

async function main(): Promise<void> {
  const workDir = await mkdtemp(join(tmpdir(), 'flotilla-bench-cli-'));
  const procs = new Processes(workDir);
  let etcd: EtcdServer | undefined;
  let store: Store | undefined;
  let pool: LeasePool | undefined;
  let logs: LogsStandIn | undefined;
  try {
    etcd = await startEtcd();
    store = openStore({ endpoints: etcd.endpoint, prefix: uniquePrefix('bench-cli') });
    logs = await startLogsStandIn();
    pool = machineLeasePool(store, MACHINES, 30);
    await registerMachines(store, pool, makeMachines(MACHINES, logs.endpoint));
    const replica = await startReplica(procs, {
      etcdEndpoint: etcd.endpoint,
      prefix: store.keys.prefix,
      name: 'sched-a',
      port: await freePort(),
      electionTtlS: 5,
      rescheduleRate: undefined,
      maxInstances: 10_000,
    });
    const commands: Command[] = [
      { label: 'node -e 0', argv: ['-e', '0'], minLines: 0 },
      ...flotctlCommands(FLOTCTL, replica.api, '', true),
      ...(BEFORE === undefined ? [] : flotctlCommands(BEFORE, replica.api, ' (before)', false)),
    ];
    const env = { ...process.env, FLOTCTL_ENDPOINT: '', FLOTCTL_TOKEN: '', NODE_OPTIONS: '' };
    // One unmeasured round: the first runs read files the page cache does not hold yet.
    for (const cmd of commands) await timeRun(procs, cmd, env);
    const times = commands.map((): number[] => []);
    for (let round = 0; round < ROUNDS; round++) {
      for (let k = 0; k < commands.length; k++) {
        const i = (round + k) % commands.length;
        (times[i] as number[]).push(await timeRun(procs, commands[i] as Command, env));
      }
    }
    report(commands, times);
  } finally {
    await pool?.close().catch(() => undefined);
    logs?.close();
    await procs.stopAll();
    store?.close();
    await etcd?.stop().catch(() => undefined);
    await rm(workDir, { recursive: true, force: true });
    procs.dismissWatchdog();
  }
}

/** The table (median, p10-p90, median overhead over node -e 0 and the target), then JSON. */
function report(commands: readonly Command[], times: readonly number[][]): void {
  const base = times[0] ?? [];
  const pct = (xs: readonly number[], p: number): number | undefined =>
    [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) * p)];
  const rows = commands.map((cmd, i) => {
    const xs = times[i] ?? [];
    const over = i === 0 ? undefined : median(xs.map((x, r) => x - (base[r] ?? 0)));
    const limit = cmd.target === undefined ? undefined : TARGETS[cmd.target];
    let verdict = '';
    if (limit !== undefined && over !== undefined) {
      verdict =
        over <= limit
          ? `met (<= ${limit})`
          : `MISSED by ${(over - limit).toFixed(1)} ms (<= ${limit})`;
    }
    return {
      label: cmd.label,
      median: median(xs),
      p10: pct(xs, 0.1),
      p90: pct(xs, 0.9),
      over,
      verdict,
    };
  });
  const cpu = cpus();
  process.stdout.write(
    `${cpu.length} x ${cpu[0]?.model ?? 'cpu'}, node ${process.version}, load ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}, ${ROUNDS} rounds\n\n`,
  );
  const width = Math.max(...rows.map((r) => r.label.length));
  process.stdout.write(`${'command'.padEnd(width)}  median ms  p10-p90 ms     over node  target\n`);
  for (const r of rows) {
    process.stdout.write(
      `${r.label.padEnd(width)}  ${fmt(r.median).padStart(9)}  ${`${fmt(r.p10)}-${fmt(r.p90)}`.padEnd(13)}  ${fmt(r.over).padStart(9)}  ${r.verdict}\n`,
    );
  }
  process.stdout.write(`\n${JSON.stringify({ rounds: ROUNDS, rows })}\n`);
}

await main();
