/**
 * A real 3-member etcd for tests of what losing a member does: the `etcd` binary on PATH, on
 * free loopback ports, each member with its own temporary data dir, a fast raft (heartbeat
 * 50 ms, election timeout {@link CLUSTER_ELECTION_TIMEOUT_MS}) so elections show quickly. One
 * per test file ({@link etcdClusterForFile}); members are killed and started by index.
 *
 * @example
 *   const cluster = etcdClusterForFile(test);
 *   test('...', async (t) => {
 *     const leader = await cluster().leader();
 *     await cluster().kill(leader);
 *   });
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TestFn } from 'ava';
import { openStore, type Store } from '../store/index.js';
import { freePorts } from './ports.js';

/** The members' `--election-timeout`. */
export const CLUSTER_ELECTION_TIMEOUT_MS = 500;
const MEMBERS = 3;
const READY_TIMEOUT_MS = 30_000;

interface Member {
  readonly name: string;
  readonly endpoint: string;
  readonly peerUrl: string;
  child?: ChildProcess | undefined;
  exited?: Promise<void>;
  /** A store on this member alone, for asking it who leads. */
  store?: Store;
}

/** A running 3-member etcd; every member index is 0, 1 or 2. */
export class EtcdCluster {
  private watchdog: ChildProcess | undefined;

  private constructor(
    private readonly dir: string,
    private readonly members: Member[],
  ) {}

  /** Starts all three members and resolves once they agree on a leader. */
  static async start(): Promise<EtcdCluster> {
    const ports = await freePorts(MEMBERS * 2);
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-etcd3-'));
    const members = Array.from({ length: MEMBERS }, (_, i) => ({
      name: `m${i}`,
      endpoint: `http://127.0.0.1:${ports[i] ?? 0}`,
      peerUrl: `http://127.0.0.1:${ports[MEMBERS + i] ?? 0}`,
    }));
    const cluster = new EtcdCluster(dir, members);
    try {
      for (let i = 0; i < MEMBERS; i++) cluster.launch(i);
      await cluster.healthy();
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** Every member's client URL, for a store that uses them all. */
  get endpoints(): string[] {
    return this.members.map((m) => m.endpoint);
  }

  /** The index of the member that leads raft now. */
  async leader(): Promise<number> {
    for (let i = 0; i < MEMBERS; i++) {
      const status = await this.status(i);
      if (status !== undefined && status.self === status.leader) return i;
    }
    throw new Error('no etcd member leads');
  }

  /** SIGKILLs member `i` and waits until it is gone. */
  async kill(i: number): Promise<void> {
    const m = this.member(i);
    m.child?.ref(); // unref'd so a forgotten stop() never holds the test process open
    m.child?.kill('SIGKILL');
    await m.exited;
    m.child = undefined;
  }

  /** Starts member `i` again (same data, same ports) and waits until all agree on a leader. */
  async restart(i: number): Promise<void> {
    if (this.member(i).child === undefined) this.launch(i);
    await this.healthy();
  }

  /** Resolves once every member answers and all name the same leader. */
  async healthy(): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      const statuses = await Promise.all(this.members.map((_, i) => this.status(i)));
      const leaders = new Set(statuses.map((s) => s?.leader));
      if (leaders.size === 1 && !leaders.has(undefined) && !leaders.has(0n)) return;
      if (Date.now() > deadline) throw new Error(`etcd members not healthy: see ${this.dir}`);
      await sleep(50);
    }
  }

  /** Kills every member and removes the data. */
  async stop(): Promise<void> {
    for (const m of this.members) m.store?.close();
    await Promise.all(this.members.map((_, i) => this.kill(i)));
    this.watchdog?.kill('SIGKILL');
    await rm(this.dir, { recursive: true, force: true });
  }

  private member(i: number): Member {
    const m = this.members[i];
    if (m === undefined) throw new Error(`no etcd member ${i}`);
    return m;
  }

  private async status(i: number): Promise<{ self: bigint; leader: bigint } | undefined> {
    const m = this.member(i);
    if (m.child === undefined) return undefined;
    m.store ??= openStore({ endpoints: m.endpoint, callTimeoutMs: 1_000 });
    const res = await m.store.client.maintenance.status().catch(() => undefined);
    if (res === undefined) return undefined;
    return { self: BigInt(res.header.member_id), leader: BigInt(res.leader) };
  }

  private launch(i: number): void {
    const m = this.member(i);
    const initial = this.members.map((x) => `${x.name}=${x.peerUrl}`).join(',');
    const log = openSync(join(this.dir, `${m.name}.log`), 'a');
    const child = spawn(
      'etcd',
      [
        `--name=${m.name}`,
        `--data-dir=${join(this.dir, m.name)}`,
        `--listen-client-urls=${m.endpoint}`,
        `--advertise-client-urls=${m.endpoint}`,
        `--listen-peer-urls=${m.peerUrl}`,
        `--initial-advertise-peer-urls=${m.peerUrl}`,
        `--initial-cluster=${initial}`,
        '--initial-cluster-state=new',
        '--heartbeat-interval=50',
        `--election-timeout=${CLUSTER_ELECTION_TIMEOUT_MS}`,
        '--logger=zap',
      ],
      { stdio: ['ignore', log, log] },
    );
    closeSync(log);
    child.unref();
    m.child = child;
    m.exited = new Promise((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', () => resolve());
    });
    this.guard();
  }

  /**
   * A shell that SIGKILLs every member and removes the data when its stdin closes, i.e. when
   * this test process dies in any way, even by SIGKILL.
   */
  private guard(): void {
    this.watchdog?.kill('SIGKILL');
    const pids = this.members.flatMap((m) => (m.child?.pid === undefined ? [] : [m.child.pid]));
    const script = `read _ignored; kill -9 ${pids.join(' ')}; sleep 1; rm -rf '${this.dir}'`;
    const dog = spawn('sh', ['-c', script], { stdio: ['pipe', 'ignore', 'ignore'] });
    dog.unref();
    if (dog.stdin instanceof Socket) dog.stdin.unref();
    dog.on('error', () => undefined);
    this.watchdog = dog;
  }
}

/** One 3-member etcd for the calling test file, started before its tests, stopped after. */
export function etcdClusterForFile(test: TestFn): () => EtcdCluster {
  let cluster: EtcdCluster | undefined;
  test.before(async () => {
    cluster = await EtcdCluster.start();
  });
  test.after.always(async () => {
    await cluster?.stop();
  });
  return () => {
    if (cluster === undefined) throw new Error('etcd cluster not started');
    return cluster;
  };
}
