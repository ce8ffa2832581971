/**
 * The faults the chaos suite injects, each with its undo: an agent's link to etcd down (its
 * host-side veth), a process stopped or killed, a scheduler cut off from etcd by iptables
 * while its API keeps serving, etcd members killed and started again, etcd's space quota
 * filled. Every undo is also registered with {@link Faults.healAll}, which the kit runs after
 * each file, so a failed test leaves no rule, link or stopped process behind.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { etcdEndpoints, etcdUrlOf, type ProcessRecord } from '../../deploy/cluster/index.js';
import { launch, waitEtcd } from '../../deploy/cluster/launch.js';
import { isRunning, runTool, signalRecorded, waitGone } from '../../deploy/cluster/proc.js';
import { writeRecord } from '../../deploy/cluster/state.js';
import { clusterStoreOptions } from '../../deploy/cluster/credentials.js';
import type { E2ECluster } from '../e2e/e2e-kit.js';

/**
 * The cgroup v2 root, where a scheduler is moved to be matched by iptables (`-m cgroup
 * --path`): /sys/fs/cgroup on a v2-only host, /sys/fs/cgroup/unified on a hybrid one.
 */
const CGROUP2_ROOT = existsSync('/sys/fs/cgroup/cgroup.controllers')
  ? '/sys/fs/cgroup'
  : '/sys/fs/cgroup/unified';

async function must(program: string, args: readonly string[]): Promise<string> {
  const res = await runTool(program, args);
  if (res.code !== 0) throw new Error(`${program} ${args.join(' ')}: ${res.stderr.trim()}`);
  return res.stdout;
}

/** etcdctl's ETCDCTL_USER for root when the cluster's etcd has auth on (env, not argv). */
function rootUser(c: E2ECluster): Record<string, string> {
  const auth = clusterStoreOptions(c.record).auth;
  return auth === undefined ? {} : { ETCDCTL_USER: `${auth.username}:${auth.password}` };
}

/** etcdctl against the cluster's members, with a deadline; never rejects. */
export function etcdctl(
  c: E2ECluster,
  args: readonly string[],
  input?: Buffer,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      'etcdctl',
      [`--endpoints=${etcdEndpoints(c.record).join(',')}`, '--command-timeout=10s', ...args],
      {
        env: { ...process.env, ETCDCTL_API: '3', ...rootUser(c) },
        timeout: 60_000,
        maxBuffer: 16 << 20,
      },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
        resolve({ code, stdout, stderr });
      },
    );
    child.stdin?.end(input);
  });
}

/** Injects faults into one cluster and remembers how to undo each. */
export class Faults {
  private readonly undo = new Map<string, () => Promise<void>>();

  constructor(private readonly c: E2ECluster) {}

  /** Undoes every fault still in place (links up, processes resumed, rules removed). */
  async healAll(): Promise<void> {
    for (const [key, fn] of [...this.undo.entries()].reverse()) {
      await fn().catch(() => undefined);
      this.undo.delete(key);
    }
  }

  private async heal(key: string): Promise<void> {
    const fn = this.undo.get(key);
    this.undo.delete(key);
    await fn?.();
  }

  /** Agent n's link to the bridge (and so to etcd and the schedulers) goes down. */
  async cutAgent(n: number): Promise<void> {
    const veth = this.c.record.agents.find((a) => a.index === n)?.veth;
    if (veth === undefined) throw new Error(`agent-${n} has no veth`);
    this.undo.set(`link:${n}`, () => must('ip', ['link', 'set', veth, 'up']).then(() => undefined));
    await must('ip', ['link', 'set', veth, 'down']);
  }

  /** Agent n's link comes back. */
  healAgent(n: number): Promise<void> {
    return this.heal(`link:${n}`);
  }

  /** SIGSTOPs the recorded process; {@link resume} continues it. */
  async pause(name: string): Promise<void> {
    const proc = this.c.process(name);
    this.undo.set(`stop:${name}`, async () => void signalRecorded(proc, 'SIGCONT'));
    if (!signalRecorded(proc, 'SIGSTOP')) throw new Error(`${name} is not running`);
  }

  resume(name: string): Promise<void> {
    return this.heal(`stop:${name}`);
  }

  /** SIGKILLs the recorded process and waits until it is gone. */
  async kill(name: string): Promise<void> {
    const proc = this.c.process(name);
    if (!signalRecorded(proc, 'SIGKILL')) throw new Error(`${name} is not running`);
    if (!(await waitGone(proc, 10_000))) throw new Error(`${name} outlived SIGKILL`);
  }

  /**
   * Cuts a scheduler off from etcd while its API keeps serving: the process moves into a
   * cgroup of its own whose packets to etcd's client ports iptables drops, and its
   * connections already open are dropped by their source ports.
   */
  async cutFromEtcd(name: string): Promise<void> {
    const proc = this.c.process(name);
    const pid = proc.pid ?? 0;
    const group = `flotchaos-${this.c.record.name}-${name}`;
    const ports = etcdEndpoints(this.c.record).map((u) => new URL(u).port);
    const rules: string[][] = [
      ['-p', 'tcp', '-d', '127.0.0.1', '-m', 'multiport', '--dports', ports.join(',')],
    ];
    rules[0]?.push('-m', 'cgroup', '--path', group, '-j', 'DROP');
    const ss = await must('ss', ['-tnpH', 'state', 'established']);
    for (const line of ss.split('\n')) {
      if (!line.includes(`pid=${pid},`)) continue;
      const [local, peer] = line.trim().split(/\s+/).slice(2, 4);
      const lport = local?.split(':').pop() ?? '';
      const pport = peer?.split(':').pop() ?? '';
      if (!ports.includes(pport)) continue;
      rules.push([
        '-p',
        'tcp',
        '-d',
        '127.0.0.1',
        '--sport',
        lport,
        '--dport',
        pport,
        '-j',
        'DROP',
      ]);
    }
    // Where it was (its cgroup v2 path, `0::<path>`), to put it back there when healed.
    const own = await readFile(`/proc/${pid}/cgroup`, 'utf8');
    const home = (/^0::(.*)$/m.exec(own)?.[1] ?? '/').replace(/\/$/, '');
    this.undo.set(`cut:${name}`, async () => {
      for (const r of rules) await runTool('iptables', ['-D', 'OUTPUT', ...r]);
      if (await isRunning(proc)) {
        await writeFile(`${CGROUP2_ROOT}${home}/cgroup.procs`, String(pid)).catch(() => undefined);
      }
      await rmdir(`${CGROUP2_ROOT}/${group}`).catch(() => undefined);
    });
    await mkdir(`${CGROUP2_ROOT}/${group}`, { recursive: true });
    await writeFile(`${CGROUP2_ROOT}/${group}/cgroup.procs`, String(pid));
    for (const r of rules) await must('iptables', ['-I', 'OUTPUT', ...r]);
  }

  healFromEtcd(name: string): Promise<void> {
    return this.heal(`cut:${name}`);
  }

  /** The etcd process that leads etcd's raft now. */
  async etcdLeader(): Promise<ProcessRecord> {
    const res = await etcdctl(this.c, ['endpoint', 'status', '-w', 'json']);
    // Member ids are 64-bit: quoted before parsing, so none loses digits as a number.
    const text = (res.stdout || '[]').replace(/"(member_id|leader)":(\d+)/g, '"$1":"$2"');
    const statuses = JSON.parse(text) as {
      Endpoint: string;
      Status: { header: { member_id: string }; leader: string };
    }[];
    const leader = statuses.find((s) => s.Status.header.member_id === s.Status.leader);
    const proc = this.c.record.processes.find(
      (p) => p.role === 'etcd' && leader !== undefined && etcdUrlOf(p) === leader.Endpoint,
    );
    if (proc === undefined) throw new Error(`no etcd leader in ${res.stdout}${res.stderr}`);
    return proc;
  }

  /** Starts the named etcd members (all at once: a member needs its quorum to be healthy). */
  async startEtcd(names: readonly string[]): Promise<void> {
    const procs = names.map((n) => this.c.process(n));
    for (const proc of procs) if (!(await isRunning(proc))) await launch(this.c.record, proc);
    await writeRecord(this.c.record);
    for (const proc of procs) await waitEtcd(proc, 60_000);
  }

  /** etcd member names, in order. */
  etcdNames(): string[] {
    return this.c.record.processes.filter((p) => p.role === 'etcd').map((p) => p.name);
  }

  /**
   * Writes 1 MiB values outside the cluster prefix until etcd refuses with its space quota
   * (the NOSPACE alarm); resolves with the number written. {@link clearNoSpace} undoes it.
   */
  async fillQuota(maxMiB: number): Promise<number> {
    this.undo.set('nospace', () => this.clearNoSpace());
    const value = Buffer.alloc(1 << 20, 'x');
    for (let i = 0; i < maxMiB; i++) {
      const res = await etcdctl(this.c, ['put', `/chaos-fill/${i}`], value);
      if (res.code !== 0) {
        if (/database space exceeded/.test(res.stderr)) return i;
        throw new Error(`etcdctl put: ${res.stderr}`);
      }
    }
    throw new Error(`${maxMiB} MiB written and no NOSPACE alarm`);
  }

  /** Deletes the fill, compacts, defragments every member and disarms the alarm. */
  async clearNoSpace(): Promise<void> {
    this.undo.delete('nospace');
    await etcdctl(this.c, ['del', '--prefix', '/chaos-fill/']);
    const status = await etcdctl(this.c, ['endpoint', 'status', '-w', 'json']);
    const rev = (
      JSON.parse(status.stdout || '[]') as { Status: { header: { revision: number } } }[]
    )
      .map((s) => s.Status.header.revision)
      .reduce((a, b) => Math.max(a, b), 0);
    await etcdctl(this.c, ['compact', String(rev), '--physical']);
    await etcdctl(this.c, ['defrag']);
    const disarm = await etcdctl(this.c, ['alarm', 'disarm']);
    if (disarm.code !== 0) throw new Error(`etcdctl alarm disarm: ${disarm.stderr}`);
  }
}
