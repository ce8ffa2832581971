/**
 * Test harness for the agent daemon: agents in-process ({@link inProcessAgent}) or as real
 * child processes running dist/agent/main.js ({@link spawnAgent}, where kill and restart
 * matter), placements written straight to etcd (no scheduler), and waits on what etcd says.
 * Every agent, unit process, container, cgroup and temp dir is removed at teardown, even
 * when the test failed half-way.
 */
import type { ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { startAgent, type Agent, type AgentTuning } from '../../agent/main.js';
import { parseAgentArgs, type AgentOptions } from '../../agent/options.js';
import type { PortAssignment, UnitState } from '../../proto/flotilla/v1/records.js';
import { codecs, openStore, type Store } from '../../store/index.js';
import { parseUnit } from '../../unit/index.js';
import { assertEventually, freePort, type EtcdServer } from '../../testkit/index.js';
import { cleanup, machineId } from './harness.js';

export { machineId } from './harness.js';

/** dist/agent/main.js, which runs runAgent(argv) when executed. */
const MAIN = fileURLToPath(new URL('../../agent/main.js', import.meta.url));

/** Where an agent under test keeps its state, and how to reach it. */
export interface AgentSetup {
  readonly endpoint: string;
  readonly prefix: string;
  readonly driver: 'runc' | 'process';
  /** Default: a fresh id. Reuse one (with `stateDir`) to play a restarted agent. */
  readonly machineId?: string;
  /** Default: a fresh temp dir, cleaned (with the machine's containers) at teardown. */
  readonly stateDir?: string;
  /** More flags. */
  readonly args?: readonly string[];
  /**
   * Default true: `--allow-insecure-clients` (the Logs service unchecked, as tests dial it)
   * unless `args` give `--logs-token-file` or `--tls-cert-file`.
   */
  readonly insecureLogs?: boolean;
}

/** A store on `etcd` under `prefix`, closed at teardown. */
export function storeFor(t: ExecutionContext, etcd: EtcdServer, prefix: string): Store {
  const store = openStore({ endpoints: etcd.endpoint, prefix });
  t.teardown(() => store.close());
  return store;
}

/** A fresh temp state dir whose units, containers and cgroups of `id` go at teardown. */
export async function stateDirFor(t: ExecutionContext, id: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-daemon-'));
  t.teardown(() => cleanup(dir, id));
  return dir;
}

async function argvFor(t: ExecutionContext, setup: AgentSetup) {
  const id = setup.machineId ?? machineId();
  const stateDir = setup.stateDir ?? (await stateDirFor(t, id));
  const logsPort = await freePort();
  const argv = [
    `--machine-id=${id}`,
    `--etcd-endpoints=${setup.endpoint}`,
    `--prefix=${setup.prefix}`,
    `--driver=${setup.driver}`,
    `--state-dir=${stateDir}`,
    `--logs-listen=127.0.0.1:${logsPort}`,
    '--lease-ttl=3s',
    '--tick=1s',
    '--public-ip=127.0.0.1',
    ...(setup.args ?? []),
  ];
  const checked = argv.some((a) => /^--(logs-token-file|tls-cert-file)\b/.test(a));
  if (setup.insecureLogs !== false && !checked) argv.push('--allow-insecure-clients');
  return { id, stateDir, logsAddress: `127.0.0.1:${logsPort}`, argv };
}

/** An agent running in the test process; closed (units stopped) at teardown. */
export async function inProcessAgent(
  t: ExecutionContext,
  setup: AgentSetup,
  tuning: AgentTuning = { timings: { restartCapMs: 2_000, startTimeoutMs: 30_000 } },
): Promise<Agent & { readonly options: AgentOptions }> {
  const { argv } = await argvFor(t, setup);
  const parsed = parseAgentArgs(argv, {
    env: {},
    readFile: (path) => readFileSync(path, 'utf8'), // TLS files in `args`; nothing else is read
    cpuMillicores: () => 4000,
    memoryBytes: () => 8 * 1024 ** 3,
    publicIp: () => '127.0.0.1',
  });
  if (parsed.help) throw new Error('unreachable');
  const agent = await startAgent(parsed.options, pino({ level: 'silent' }), tuning);
  t.teardown(() => agent.close({ keepUnits: false }));
  return Object.assign(agent, { options: parsed.options });
}

/** An agent in a child process. */
export interface AgentProcess {
  readonly machineId: string;
  readonly stateDir: string;
  readonly logsAddress: string;
  readonly child: ChildProcess;
  /** Resolves with the exit code (or signal name) once the process ended. */
  readonly exited: Promise<string>;
  /** Its stderr so far (JSON log lines), for failure messages. */
  output(): string;
  /** Sends `signal` and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<string>;
}

/** Starts `node dist/agent/main.js` with the setup's flags; SIGKILLed at teardown if alive. */
export async function spawnAgent(t: ExecutionContext, setup: AgentSetup): Promise<AgentProcess> {
  const { id, stateDir, logsAddress, argv } = await argvFor(t, setup);
  const child = spawn(process.execPath, [MAIN, ...argv, '--log-level=debug'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-200_000);
  });
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => resolve(signal ?? String(code)));
  });
  // Runs before the state dir's cleanup (teardowns run in reverse order of registration).
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  return {
    machineId: id,
    stateDir,
    logsAddress,
    child,
    exited,
    output: () => stderr,
    kill: async (signal = 'SIGTERM') => {
      child.kill(signal);
      return exited;
    },
  };
}

/**
 * Writes `units/<name>` with `text` and places it on `machine` (holding `ports`, as the
 * leader assigns them for [X-Service] Port=); returns the unit's hash.
 */
export async function place(
  store: Store,
  machine: string,
  name: string,
  text: string,
  desiredState: 'loaded' | 'launched' = 'launched',
  ports: readonly PortAssignment[] = [],
): Promise<string> {
  const hash = parseUnit(name, text).hash;
  await store.putRecord(codecs.unit, store.keys.unit(name), {
    name,
    file: text,
    hash,
    desiredState,
  });
  await store.putRecord(codecs.placement, store.keys.placement(machine, name), {
    unit: name,
    machine,
    hash,
    epoch: 1n,
    desiredState,
    ports: [...ports],
  });
  return hash;
}

/** Places a unit whose file does not parse (the API would refuse it; an agent must cope). */
export async function placeRaw(
  store: Store,
  machine: string,
  name: string,
  text: string,
  hash: string,
): Promise<void> {
  await store.putRecord(codecs.unit, store.keys.unit(name), {
    name,
    file: text,
    hash,
    desiredState: 'launched',
  });
  await store.putRecord(codecs.placement, store.keys.placement(machine, name), {
    unit: name,
    machine,
    hash,
    epoch: 1n,
    desiredState: 'launched',
    ports: [],
  });
}

/** Deletes the placement of `name` on `machine`. */
export async function unplace(store: Store, machine: string, name: string): Promise<void> {
  await store.delete(store.keys.placement(machine, name));
}

/**
 * The state record of `name` (not Global) in etcd, whichever machine reports it (the latest
 * written, should two), or undefined.
 */
export async function stateRecord(store: Store, name: string): Promise<UnitState | undefined> {
  const { items } = await store.list(store.keys.dir('state'));
  const mine = items.filter((kv) => {
    const parsed = store.keys.parse(kv.key);
    return parsed?.name === name && parsed.global !== true;
  });
  const latest = mine.sort((a, b) => (a.modRevision < b.modRevision ? 1 : -1))[0];
  return latest === undefined ? undefined : codecs.state.decode(latest.key, latest.value);
}

/** The state record of `machine`'s copy of the Global unit `name` in etcd, or undefined. */
export async function copyRecord(
  store: Store,
  name: string,
  machine: string,
): Promise<UnitState | undefined> {
  return (await store.getRecord(codecs.state, store.keys.globalState(name, machine)))?.value;
}

/** Waits until etcd's state record of `name` satisfies `pred`; returns it. */
export function waitState(
  store: Store,
  name: string,
  pred: (s: UnitState) => boolean,
  what: string,
  timeoutMs = 30_000,
): Promise<UnitState> {
  return waitRecord(() => stateRecord(store, name), pred, `${name}: ${what}`, timeoutMs);
}

/** Waits until the state record of `machine`'s copy of `name` satisfies `pred`; returns it. */
export function waitCopy(
  store: Store,
  name: string,
  machine: string,
  pred: (s: UnitState) => boolean,
  what: string,
  timeoutMs = 30_000,
): Promise<UnitState> {
  const read = () => copyRecord(store, name, machine);
  return waitRecord(read, pred, `${name} on ${machine}: ${what}`, timeoutMs);
}

function waitRecord(
  read: () => Promise<UnitState | undefined>,
  pred: (s: UnitState) => boolean,
  message: string,
  timeoutMs: number,
): Promise<UnitState> {
  return assertEventually(
    async () => {
      const s = await read();
      if (s === undefined || !pred(s)) {
        const now = s === undefined ? 'no record' : `${s.activeState}/${s.subState} ${s.message}`;
        throw new Error(`state is ${now}`);
      }
      return s;
    },
    { timeoutMs, intervalMs: 50, message },
  );
}

/** Waits until `name` runs (per etcd) with a pid; returns its state. */
export function waitRunning(store: Store, name: string, timeoutMs = 30_000): Promise<UnitState> {
  return waitState(
    store,
    name,
    (s) => s.activeState === 'active' && s.subState === 'running' && s.pid > 0,
    'active/running',
    timeoutMs,
  );
}

/** Waits until `machines/<id>` exists (the agent registered). */
export function waitRegistered(store: Store, id: string, timeoutMs = 30_000): Promise<void> {
  return assertEventually(async () => (await store.get(store.keys.machine(id))) !== undefined, {
    timeoutMs,
    message: `machine ${id} registers`,
  }).then(() => undefined);
}

/** A unit file: `[Service]` with these lines (ExecStart= included by the caller). */
export function service(...lines: string[]): string {
  return `[Unit]\nDescription=daemon test\n\n[Service]\n${lines.join('\n')}\n`;
}

/** A unit file with `[X-Fleet]` lines too. */
export function serviceWithFleet(fleet: readonly string[], ...lines: string[]): string {
  return `${service(...lines)}\n[X-Fleet]\n${fleet.join('\n')}\n`;
}
