/**
 * Test harness for the scheduler daemon: simulated machines (machine records kept alive under
 * leases with store's Presence, no agents), unit submission straight into etcd, scheduler
 * replicas in-process or as child processes, and a monitor that checks at every etcd revision
 * that no unit is placed on two machines. Everything started is stopped by t.teardown.
 */
import type { ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import type { Machine, Placement, Unit, Unscheduled } from '../../proto/flotilla/v1/records.js';
import { startScheduler, type Scheduler } from '../../scheduler/main.js';
import type { SchedulerOptions } from '../../scheduler/options.js';
import { SCHEDULER_DEFAULTS } from '../../scheduler/options.js';
import { codecs, openStore, Presence, WatchCache, type Store } from '../../store/index.js';
import { parseUnit } from '../../unit/index.js';
import {
  assertEventually,
  makeMachine,
  uniquePrefix,
  unitText,
  type EtcdServer,
  type MachineOverrides,
  type UnitTextOptions,
} from '../../testkit/index.js';

/** A store on `prefix`, closed at teardown. */
export function testStore(t: ExecutionContext, etcd: EtcdServer, prefix: string): Store {
  const store = openStore({ endpoints: etcd.endpoint, prefix });
  t.teardown(() => store.close());
  return store;
}

/** A fresh prefix named after the test. */
export function prefixFor(t: ExecutionContext): string {
  return uniquePrefix(t.title.slice(0, 30));
}

/** A simulated machine: its record under a lease, renewed until killed. */
export interface SimMachine {
  readonly id: string;
  readonly record: Machine;
  /** Stops renewing without revoking: etcd deletes the record after the TTL, as on a crash. */
  kill(): Promise<void>;
}

/** Registers a machine record under a lease of `ttlSeconds` (default 2). */
export async function startMachine(
  t: ExecutionContext,
  store: Store,
  overrides: MachineOverrides = {},
  ttlSeconds = 2,
): Promise<SimMachine> {
  const record = makeMachine(overrides);
  const presence = new Presence(store, {
    key: store.keys.machine(record.id),
    value: codecs.machine.encode(record),
    ttlSeconds,
  });
  t.teardown(() => presence.close({ revoke: true }));
  await presence.start();
  return { id: record.id, record, kill: () => presence.close({ revoke: false }) };
}

/** Writes units/<name> as the API would: the file, its real hash, the desired state. */
export async function submit(
  store: Store,
  name: string,
  text: string | UnitTextOptions = {},
  desiredState = 'launched',
): Promise<Unit> {
  const file = typeof text === 'string' ? text : unitText(text);
  const unit: Unit = { name, file, hash: parseUnit(name, file).hash, desiredState };
  await store.putRecord(codecs.unit, store.keys.unit(name), unit);
  return unit;
}

/** Changes a stored unit's desired state. */
export async function setDesired(store: Store, name: string, desiredState: string): Promise<void> {
  const current = await store.getRecord(codecs.unit, store.keys.unit(name));
  if (current === undefined) throw new Error(`no unit ${name}`);
  await store.putRecord(codecs.unit, store.keys.unit(name), { ...current.value, desiredState });
}

/** Every placement now: unit name -> its placements. */
export async function placements(store: Store): Promise<Map<string, Placement[]>> {
  const out = new Map<string, Placement[]>();
  const listing = await store.listRecords(codecs.placement, store.keys.dir('placement'));
  for (const { key, value } of listing.items) {
    const parsed = store.keys.parse(key);
    if (parsed?.kind !== 'placement' || parsed.machine === undefined) continue;
    const list = out.get(parsed.name) ?? [];
    list.push({ ...value, machine: parsed.machine });
    out.set(parsed.name, list);
  }
  return out;
}

/** The unscheduled record of `name`, if any. */
export async function unscheduledOf(store: Store, name: string): Promise<Unscheduled | undefined> {
  return (await store.getRecord(codecs.unscheduled, store.keys.unscheduled(name)))?.value;
}

/** Waits until every unit in `names` has exactly one placement that `ok` accepts. */
export async function eventuallyPlaced(
  store: Store,
  names: readonly string[],
  ok: (p: Placement) => boolean = () => true,
  message = 'units placed',
  timeoutMs = 30_000,
): Promise<Map<string, Placement[]>> {
  return assertEventually(
    async () => {
      const all = await placements(store);
      for (const name of names) {
        const list = all.get(name) ?? [];
        if (list.length !== 1 || !ok(list[0] as Placement)) {
          throw new Error(`${name}: ${JSON.stringify(list.map((p) => p.machine))}`);
        }
      }
      return all;
    },
    { timeoutMs, message },
  );
}

/** Options for an in-process replica: the test's etcd and prefix, fast defaults. */
export function replicaOptions(
  etcd: EtcdServer,
  prefix: string,
  overrides: Partial<SchedulerOptions> = {},
): SchedulerOptions {
  return {
    endpoints: [etcd.endpoint],
    prefix,
    listen: undefined,
    electionTtlSeconds: 2,
    logLevel: 'silent',
    name: `replica-${Math.random().toString(36).slice(2, 8)}`,
    rescheduleRate: SCHEDULER_DEFAULTS.rescheduleRate,
    lossWindowMs: SCHEDULER_DEFAULTS.lossWindowMs,
    pauseTimeoutMs: SCHEDULER_DEFAULTS.pauseTimeoutMs,
    lossSettleMs: SCHEDULER_DEFAULTS.lossSettleMs,
    tickMs: 500,
    maxInstances: SCHEDULER_DEFAULTS.maxInstances,
    etcdQuotaBytes: SCHEDULER_DEFAULTS.etcdQuotaBytes,
    etcdQuotaShare: SCHEDULER_DEFAULTS.etcdQuotaShare,
    ...overrides,
  };
}

/** Starts an in-process replica; teardown closes it. Logs go to stderr when FLOTILLA_TEST_LOG is set. */
export async function startReplica(
  t: ExecutionContext,
  opts: SchedulerOptions,
): Promise<Scheduler> {
  const level = process.env['FLOTILLA_TEST_LOG'] ?? 'silent';
  const scheduler = await startScheduler(opts, pino({ level }, pino.destination(2)));
  t.teardown(() => scheduler.close());
  return scheduler;
}

/** Waits until `scheduler` leads and returns its epoch. */
export async function eventuallyLeads(scheduler: Scheduler, timeoutMs = 30_000): Promise<bigint> {
  return assertEventually(
    () => {
      const epoch = scheduler.status().epoch;
      if (epoch === undefined) throw new Error(`${scheduler.name} does not lead`);
      return epoch;
    },
    { timeoutMs, message: `${scheduler.name} leads` },
  );
}

/** A scheduler replica running as a child process (`node dist/scheduler/main.js`). */
export interface ReplicaProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** Its stderr so far (pino JSON lines), for failure messages. */
  output(): string;
  /** Resolves with the exit code (or signal) once it has exited. */
  readonly exited: Promise<number | NodeJS.Signals>;
}

const MAIN = fileURLToPath(new URL('../../scheduler/main.js', import.meta.url));

/** Spawns a replica; teardown SIGKILLs it if it still runs. */
export function spawnReplica(
  t: ExecutionContext,
  etcd: EtcdServer,
  prefix: string,
  name: string,
  extra: readonly string[] = [],
): ReplicaProcess {
  const args = [
    MAIN,
    `--etcd-endpoints=${etcd.endpoint}`,
    `--prefix=${prefix}`,
    '--listen=none',
    '--election-ttl=2s',
    `--name=${name}`,
    '--tick=500ms',
    '--log-level=info',
    ...extra,
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let output = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    output = (output + chunk).slice(-200_000);
  });
  const exited = new Promise<number | NodeJS.Signals>((resolve) => {
    child.once('exit', (code, signal) => resolve(signal ?? code ?? -1));
  });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { name, child, output: () => output, exited };
}

/**
 * Watches placements/ from before the first placement and checks, at every revision, that no
 * unit is placed on more than one machine. Also records every placement write.
 */
export class PlacementMonitor {
  readonly violations: string[] = [];
  /** Every put, in revision order: unit, machine, epoch, revision. */
  readonly writes: {
    unit: string;
    machine: string;
    epoch: bigint;
    revision: bigint;
    at: number;
  }[] = [];
  private readonly state = new Map<string, Set<string>>();
  private revision = 0n;
  private constructor(
    private readonly store: Store,
    private readonly cache: WatchCache<Placement>,
  ) {}

  /** Starts watching; teardown stops. Start it before any scheduler. */
  static async start(t: ExecutionContext, store: Store): Promise<PlacementMonitor> {
    const cache = new WatchCache(store, {
      prefix: store.keys.dir('placement'),
      codec: codecs.placement,
    });
    const monitor = new PlacementMonitor(store, cache);
    cache.on((e) => {
      if (e.type === 'resync')
        e.changes.forEach((c) =>
          monitor.apply(c.type, c.key, c.revision, c.type === 'put' ? c.value : undefined),
        );
      else monitor.apply(e.type, e.key, e.revision, e.type === 'put' ? e.value : undefined);
    });
    t.teardown(() => cache.close());
    await cache.ready();
    return monitor;
  }

  /**
   * Waits until the monitor has seen every write etcd holds now: a test that saw something
   * in etcd (all placed) must not read `writes` before the watch has delivered them.
   */
  async caughtUp(): Promise<void> {
    await this.cache.waitFor(await this.store.revision(), 30_000);
  }

  /** Catches up, checks the last revision too, and returns the violations seen so far. */
  async check(): Promise<string[]> {
    await this.caughtUp();
    this.verify(this.revision);
    return this.violations;
  }

  private apply(
    type: 'put' | 'delete',
    key: string,
    revision: bigint,
    value: Placement | undefined,
  ): void {
    if (revision !== this.revision) {
      this.verify(this.revision);
      this.revision = revision;
    }
    const parsed = this.store.keys.parse(key);
    if (parsed?.kind !== 'placement' || parsed.machine === undefined) return;
    const set = this.state.get(parsed.name) ?? new Set<string>();
    if (type === 'put') {
      set.add(parsed.machine);
      this.writes.push({
        unit: parsed.name,
        machine: parsed.machine,
        epoch: value?.epoch ?? 0n,
        revision,
        at: Date.now(),
      });
    } else set.delete(parsed.machine);
    this.state.set(parsed.name, set);
  }

  private verify(revision: bigint): void {
    for (const [unit, machines] of this.state) {
      if (machines.size > 1) {
        const v = `revision ${revision}: ${unit} on ${[...machines].sort().join(', ')}`;
        if (!this.violations.includes(v)) this.violations.push(v);
      }
    }
  }
}
