/**
 * Stand-ins for the processes flotctl waits on but does not talk to: the scheduler leader
 * (which writes placements/ and unscheduled/) and the agents (which write unit-states/ and serve
 * each unit's logs). They write the same records, through the same store, to the same real
 * etcd the real API server reads, one step behind each other as the real ones are: the
 * "leader" places in one tick, the "agent" reports in a later one. They are a simulation of
 * OTHER processes for CLI tests, not a mock of etcd or of the API.
 */
import { EventEmitter } from 'node:events';
import { Server, ServerCredentials, type ServerWritableStream } from '@grpc/grpc-js';
import type { ExecutionContext } from 'ava';
import {
  LogsService,
  type LogLine,
  type LogsServer,
  type TailRequest,
} from '../../proto/flotilla/v1/logs.js';
import type { Machine, Placement, Unit, UnitState } from '../../proto/flotilla/v1/records.js';
import { codecs, type Store } from '../../store/index.js';
import { parseUnit, parseUnitName } from '../../unit/index.js';
import { storedUnit, storedUnits } from '../../testkit/index.js';

/** How the simulated cluster treats units. */
export interface SimOptions {
  /** The machines units go to (registered already), in order of preference. */
  readonly machines: readonly Machine[];
  /** When it returns a summary, the "leader" cannot place that unit and says why. */
  readonly unplaceable?: (name: string) => string | undefined;
  /** When it returns a message, the "agent" reports that unit failed with it. */
  readonly failing?: (name: string) => string | undefined;
  /** Tick interval. Default 100 ms. */
  readonly intervalMs?: number;
  /**
   * Whether to play the leader too (default; it places every unit on one machine, Global ones
   * too). With false only the agents are played, for tests that run the real scheduler: they
   * report on the placements the leader wrote, a Global unit's copies each on its machine.
   */
  readonly leader?: boolean;
}

/**
 * Starts the simulated leader and agents on `store`; they stop at the test's teardown. Per
 * tick: wanted units (loaded, launched) get a placement on the least loaded machine, or an
 * unscheduled record; placed units get an agent state (active/running when launched,
 * inactive/dead when loaded, failed when `failing` says so); units no longer wanted or
 * destroyed lose placement and state.
 */
export function simulateCluster(t: ExecutionContext, store: Store, opts: SimOptions): void {
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    const step = opts.leader === false ? agentTick : tick;
    running = running.then(() => (stopped ? undefined : step(store, opts).catch(() => undefined)));
  }, opts.intervalMs ?? 100);
  t.teardown(async () => {
    stopped = true;
    clearInterval(timer);
    await running;
  });
}

async function tick(store: Store, opts: SimOptions): Promise<void> {
  const k = store.keys;
  const [unitByName, placementKvs, states, pending] = await Promise.all([
    storedUnits(store),
    store.list(k.dir('placement')),
    store.listRecords(codecs.state, k.dir('state')),
    store.listRecords(codecs.unscheduled, k.dir('unscheduled')),
  ]);
  const placements = new Map<string, Placement>();
  const load = new Map<string, number>(opts.machines.map((m) => [m.id, 0]));
  for (const kv of placementKvs.items) {
    const parsed = k.parse(kv.key);
    if (parsed?.kind !== 'placement' || parsed.machine === undefined) continue;
    const p = { ...codecs.placement.decode(kv.key, kv.value), machine: parsed.machine };
    placements.set(parsed.name, p);
    load.set(p.machine, (load.get(p.machine) ?? 0) + 1);
  }
  const stateByName = new Map(states.items.map((s) => [s.value.name, s.value]));
  const pendingByName = new Map(pending.items.map((u) => [u.value.unit, u.value]));

  for (const unit of unitByName.values()) {
    if (parseUnitName(unit.name).isTemplate) continue;
    const name = unit.name;
    const placed = placements.get(name);
    const wanted = unit.desiredState === 'loaded' || unit.desiredState === 'launched';
    const reason = wanted ? opts.unplaceable?.(name) : undefined;
    if (!wanted || reason !== undefined) {
      if (placed !== undefined) await store.delete(k.placement(placed.machine, name));
      else if (stateByName.has(name)) await dropState(store, name, stateByName.get(name)); // the agent stopped it
    }
    if (!wanted) {
      if (pendingByName.has(name)) await store.delete(k.unscheduled(name));
      continue;
    }
    if (reason !== undefined) {
      if (pendingByName.get(name)?.summary !== reason) {
        const n = opts.machines.length;
        await store.putRecord(codecs.unscheduled, k.unscheduled(name), {
          unit: name,
          machines: n,
          reasons: [{ reason: reason.replace(/^[^:]*: \d+ /, ''), machines: n }],
          summary: reason,
          epoch: 1n,
          waiting: 0,
          waitingRanges: [],
        });
      }
      continue;
    }
    if (pendingByName.has(name)) await store.delete(k.unscheduled(name));
    if (
      placed === undefined ||
      placed.hash !== unit.hash ||
      placed.desiredState !== unit.desiredState
    ) {
      const machine = placed?.machine ?? leastLoaded(load);
      if (machine === undefined) continue;
      load.set(machine, (load.get(machine) ?? 0) + 1);
      const placement = {
        unit: name,
        machine,
        hash: unit.hash,
        epoch: 1n,
        desiredState: unit.desiredState,
      };
      await store.putRecord(codecs.placement, k.placement(machine, name), placement);
      continue; // the agent reacts in a later tick, as the real one does
    }
    const want = agentState(name, placed, unit.desiredState, opts.failing?.(name));
    const have = stateByName.get(name);
    if (
      have === undefined ||
      have.activeState !== want.activeState ||
      have.machine !== want.machine ||
      have.hash !== want.hash
    ) {
      await store.putRecord(codecs.state, k.state(want.machine, name), want);
      // Each machine reports under its own key: the old machine's record goes on a move.
      if (have !== undefined && have.machine !== want.machine) await dropState(store, name, have);
    }
  }
  // Destroyed units: the leader removes the placement, then the agent the state.
  for (const [name, p] of placements) {
    if (!unitByName.has(name)) await store.delete(k.placement(p.machine, name));
  }
  for (const [name, s] of stateByName) {
    if (!unitByName.has(name) && !placements.has(name)) await dropState(store, name, s);
  }
}

/** Deletes the state record `s` of `name` (keyed by the machine it names). */
async function dropState(store: Store, name: string, s: UnitState | undefined): Promise<void> {
  if (s !== undefined && s.machine !== '') await store.delete(store.keys.state(s.machine, name));
}

/**
 * The agents alone: report each placement's unit in the state it asks for, a Global unit's
 * copy under its machine's own key (unit-states/<machine>/<name>/global); forget the rest.
 */
async function agentTick(store: Store, opts: SimOptions): Promise<void> {
  const k = store.keys;
  const [placementKvs, states] = await Promise.all([
    store.list(k.dir('placement')),
    store.listRecords(codecs.state, k.dir('state')),
  ]);
  // Only the placed units' records, as an agent reads only its own units: a cluster with
  // 100,000 pending instances costs a tick what its placements cost.
  const placed = new Set<string>();
  for (const kv of placementKvs.items) {
    const parsed = k.parse(kv.key);
    if (parsed?.kind === 'placement') placed.add(parsed.name);
  }
  const units = await Promise.all([...placed].map((name) => storedUnit(store, name)));
  const records = units.flatMap((u) => (u === undefined ? [] : [u]));
  const known = new Set(records.map((u) => u.name));
  const globals = new Set(records.filter((u) => isGlobal(u)).map((u) => u.name));
  const want = new Map<string, UnitState>(); // state key -> what its agent reports
  for (const kv of placementKvs.items) {
    const parsed = k.parse(kv.key);
    if (parsed?.kind !== 'placement' || parsed.machine === undefined) continue;
    // A unit destroyed since the placements were read: whether it was Global is unknown, so
    // report nothing (its state would land under the wrong key); the placement goes next.
    if (!known.has(parsed.name)) continue;
    const p = { ...codecs.placement.decode(kv.key, kv.value), machine: parsed.machine };
    const key = globals.has(parsed.name)
      ? k.globalState(parsed.name, parsed.machine)
      : k.state(parsed.machine, parsed.name);
    const failure = opts.failing?.(parsed.name);
    want.set(key, agentState(parsed.name, p, p.desiredState || 'launched', failure));
  }
  const have = new Map(states.items.map((s) => [s.key, s.value]));
  for (const [key, s] of want) {
    const now = have.get(key);
    if (now?.activeState !== s.activeState || now.machine !== s.machine || now.hash !== s.hash) {
      await store.putRecord(codecs.state, key, s);
    }
  }
  for (const key of have.keys()) if (!want.has(key)) await store.delete(key);
}

/** Whether a unit's file says Global=true (false when it does not parse). */
function isGlobal(unit: Unit): boolean {
  try {
    return parseUnit(unit.name, unit.file).fleet.global;
  } catch {
    return false;
  }
}

function leastLoaded(load: ReadonlyMap<string, number>): string | undefined {
  let best: string | undefined;
  for (const [id, n] of load) if (best === undefined || n < (load.get(best) ?? 0)) best = id;
  return best;
}

function agentState(
  name: string,
  p: Placement,
  desired: string,
  failure: string | undefined,
): UnitState {
  const base = {
    name,
    machine: p.machine,
    hash: p.hash,
    loadState: 'loaded',
    containerId: `flotilla-${p.machine.slice(0, 8)}-${name}`,
    exitSignal: '',
    image: '',
    restarts: 0,
    since: BigInt(Date.now()),
    message: '',
    health: '',
    healthFailures: 0,
    healthChecks: [],
    restartReason: '',
  };
  if (desired === 'launched' && failure !== undefined) {
    return {
      ...base,
      activeState: 'failed',
      subState: 'failed',
      pid: 0,
      exitStatus: 1,
      message: failure,
    };
  }
  if (desired === 'launched') {
    return { ...base, activeState: 'active', subState: 'running', pid: 4242, exitStatus: -1 };
  }
  return { ...base, activeState: 'inactive', subState: 'dead', pid: 0, exitStatus: 0 };
}

/** A stand-in agent Logs service: lines pushed by the test, served like an agent's Tail. */
export interface AgentLogs {
  /** host:port; put it in the machine record's `agentEndpoint`. */
  readonly endpoint: string;
  /** Appends a line to `unit`'s log; followers get it at once. */
  push(unit: string, text: string): void;
}

/** Starts the stand-in agent Logs service on a free port; stopped at teardown. */
export async function startAgentLogs(t: ExecutionContext): Promise<AgentLogs> {
  const logs = new Map<string, LogLine[]>();
  const appended = new EventEmitter();
  const tail = (call: ServerWritableStream<TailRequest, LogLine>): void => {
    const { unit, follow } = call.request;
    const lines = logs.get(unit) ?? [];
    const n = call.request.lines ?? 10;
    for (const line of n === 0 ? [] : lines.slice(-n)) call.write(line);
    if (!follow) {
      call.end();
      return;
    }
    const onLine = (u: string, line: LogLine): void => {
      if (u === unit) call.write(line);
    };
    appended.on('line', onLine);
    call.on('cancelled', () => appended.off('line', onLine));
    call.on('close', () => appended.off('line', onLine));
  };
  const server = new Server();
  const impl: LogsServer = { tail };
  server.addService(LogsService, impl);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) =>
      err === null ? resolve(p) : reject(err),
    ),
  );
  t.teardown(() => {
    appended.removeAllListeners();
    server.forceShutdown();
  });
  return {
    endpoint: `127.0.0.1:${port}`,
    push: (unit, text) => {
      const line: LogLine = { time: BigInt(Date.now()), stream: 'stdout', text };
      const list = logs.get(unit) ?? [];
      list.push(line);
      logs.set(unit, list);
      appended.emit('line', unit, line);
    },
  };
}
