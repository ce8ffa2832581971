/**
 * What `down` removes after the processes are gone, machine by machine: runc containers whose
 * id carries the machine id, unit shims still running (with their process groups), cgroups
 * under `/flotilla/<machine>`, and mounts under the cluster directory. The agents normally
 * leave none of these (they stop their units on SIGTERM); this is for an agent that was
 * SIGKILLed or hung. {@link findLeftovers} lists what remains, so `down` can say so.
 */
import { readdir, readFile, rmdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { MachineLayout } from '../../agent/runtime/layout.js';
import { mountsUnder } from '../../agent/runtime/mounts.js';
import { SHIM_MARKER } from '../../agent/runtime/shim.js';
import { listNetns, linkExists } from './network.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { isRunning, runTool, which } from './proc.js';
import type { AgentRecord, ClusterRecord } from './state.js';

const CGROUP_ROOT = '/sys/fs/cgroup';
/** runc's default state directory (root's), where each container has a directory. */
const RUNC_ROOT = '/run/runc';

function layoutOf(agent: AgentRecord): MachineLayout {
  return new MachineLayout(agent.stateDir, agent.machineId);
}

/** Ids of runc containers that belong to `agent`'s machine ([] without runc). */
export async function runcContainers(agent: AgentRecord): Promise<string[]> {
  if ((await which('runc')) === undefined) return [];
  // runc 1.1's list fails as a whole when a container is deleted while it lists (the agents
  // stopping their units): try again, or `down` would leave containers behind.
  let res = await runTool('runc', ['list', '--format', 'json']);
  for (let i = 0; res.code !== 0 && i < 9; i++) {
    await sleep(100);
    res = await runTool('runc', ['list', '--format', 'json']);
  }
  const prefix = layoutOf(agent).containerPrefix();
  if (res.code !== 0) {
    // Still failing: runc's state directory (the agents use the default root) names them too.
    const ids = await readdir(RUNC_ROOT).catch(() => [] as string[]);
    return ids.filter((id) => id.startsWith(prefix));
  }
  const parsed = JSON.parse(res.stdout.trim() === '' ? 'null' : res.stdout) as
    { id: string }[] | null;
  return (parsed ?? []).map((c) => c.id).filter((id) => id.startsWith(prefix));
}

/** Pids of the unit shims of `agent`'s machine that still run (checked by command line). */
async function liveShims(agent: AgentRecord): Promise<number[]> {
  const unitsDir = layoutOf(agent).unitsDir;
  let units: string[];
  try {
    units = await readdir(unitsDir);
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const unit of units) {
    const dir = join(unitsDir, unit);
    const text = await readFile(join(dir, 'shim.pid'), 'utf8').catch(() => '');
    const pid = Number(text.trim());
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (argv[2]?.startsWith(SHIM_MARKER) === true && argv[3] === dir) pids.push(pid);
  }
  return pids;
}

/** The cgroup hierarchies' mount points: each v1 controller, or the v2 root. */
async function cgroupBases(): Promise<string[]> {
  const v2 = await stat(join(CGROUP_ROOT, 'cgroup.controllers')).then(
    () => true,
    () => false,
  );
  if (v2) return [CGROUP_ROOT];
  const entries = await readdir(CGROUP_ROOT, { withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isDirectory()).map((e) => join(CGROUP_ROOT, e.name));
}

/** Existing cgroup directories of `agent`'s machine, deepest first. */
async function machineCgroups(agent: AgentRecord): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => undefined);
    if (entries === undefined) return;
    for (const e of entries) if (e.isDirectory()) await walk(join(dir, e.name));
    found.push(dir);
  };
  for (const base of await cgroupBases()) await walk(join(base, layoutOf(agent).machineCgroup()));
  return found;
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/**
 * Removes everything `agent`'s machine may have left on the host. Call only once its agent
 * no longer runs. Best effort: {@link findLeftovers} reports what could not be removed.
 */
export async function cleanMachine(agent: AgentRecord): Promise<void> {
  for (const id of await runcContainers(agent)) {
    await runTool('runc', ['kill', id, 'KILL']);
    await runTool('runc', ['delete', '--force', id]);
  }
  // A detached shim leads its own process group: the group holds the unit's processes (process
  // driver) or `runc run` (runc driver).
  for (const pid of await liveShims(agent)) kill(-pid, 'SIGKILL');
  for (let attempt = 0; attempt < 20; attempt++) {
    const dirs = await machineCgroups(agent);
    if (dirs.length === 0) break;
    for (const dir of dirs) {
      const procs = await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
      for (const pid of procs.split('\n').filter((p) => p !== '')) kill(Number(pid), 'SIGKILL');
      await rmdir(dir).catch(() => undefined);
    }
    await sleep(100);
  }
}

/**
 * Everything of the cluster still on the host, one line each: running processes, network
 * namespaces, interfaces, runc containers, cgroups, mounts. Empty after a clean `down`.
 */
export async function findLeftovers(record: ClusterRecord): Promise<string[]> {
  const out: string[] = [];
  for (const proc of record.processes) {
    if (await isRunning(proc)) out.push(`process ${proc.name} (pid ${String(proc.pid)})`);
  }
  const namespaces = await listNetns();
  for (const agent of record.agents) {
    if (agent.netns !== undefined && namespaces.includes(agent.netns)) {
      out.push(`network namespace ${agent.netns}`);
    }
    if (agent.veth !== undefined && (await linkExists(agent.veth))) {
      out.push(`interface ${agent.veth}`);
    }
    for (const id of await runcContainers(agent)) out.push(`runc container ${id}`);
    for (const pid of await liveShims(agent)) out.push(`unit shim pid ${pid}`);
    for (const dir of await machineCgroups(agent)) out.push(`cgroup ${dir}`);
  }
  if (record.network !== undefined && (await linkExists(record.network.bridge))) {
    out.push(`bridge ${record.network.bridge}`);
  }
  for (const point of await mountsUnder(record.dir)) out.push(`mount ${point}`);
  return out;
}
