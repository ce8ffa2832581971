/**
 * The agent's presence in the cluster: `machines/<id>` under a lease the agent renews every
 * TTL/3 (store/presence.ts), re-registered whenever the lease is lost. The same lease carries
 * the agent's `unit-states/<machine>/...` records, so a lost machine's states vanish with it;
 * an earlier version's records of this machine (store/legacy-records.ts) are deleted at the
 * first registration, under the lease the machine record had until then. It also
 * tells the reconciler how long the agent has been cut off, for `StopOnDisconnect=`.
 */
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Machine } from '../../proto/flotilla/v1/records.js';
import {
  codecs,
  deleteLegacyRecords,
  leaseOfKey,
  Presence,
  type PresenceEvent,
  type Store,
} from '../../store/index.js';
import type { Connection } from './reconcile-tasks.js';

/** The version the machine record advertises: package.json's, read once. */
export const AGENT_VERSION: string = readVersion();

function readVersion(): string {
  for (const rel of ['../../../package.json', '../../package.json']) {
    try {
      const pkg: unknown = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8'));
      const version = (pkg as { name?: unknown; version?: unknown } | null) ?? {};
      if (version.name === 'flotilla' && typeof version.version === 'string') {
        return version.version;
      }
    } catch {
      // try the next location (dist/agent/sync/ or agent/sync/)
    }
  }
  return 'unknown';
}

/** The host's pid limit: the task capacity advertised (0 when unknown). */
function pidMax(): bigint {
  try {
    return BigInt(readFileSync('/proc/sys/kernel/pid_max', 'utf8').trim());
  } catch {
    return 0n;
  }
}

/**
 * The Logs endpoint others dial: the listen address, with a wildcard host replaced by the
 * advertised address.
 */
export function advertisedEndpoint(listenAddress: string, publicIp: string): string {
  const colon = listenAddress.lastIndexOf(':');
  const host = listenAddress.slice(0, colon);
  const port = listenAddress.slice(colon + 1);
  const wildcard = host === '' || host === '0.0.0.0' || host === '::' || host === '[::]';
  if (!wildcard) return listenAddress;
  return publicIp.includes(':') ? `[${publicIp}]:${port}` : `${publicIp}:${port}`;
}

/** What the machine record says of this machine (the agent's options hold it). */
export interface MachineFacts {
  readonly machineId: string;
  readonly publicIp: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly cpuMillicores: number;
  readonly memoryBytes: number;
  /** `--port-range`; absent: the default 20000-32767. */
  readonly portRange?: { readonly first: number; readonly last: number };
}

/** The machine record of this agent. */
export function machineRecord(
  opts: MachineFacts,
  driver: string,
  agentEndpoint: string,
  startedAt: number,
): Machine {
  return {
    id: opts.machineId,
    addresses: [opts.publicIp],
    metadata: { ...opts.metadata },
    capacity: {
      cpuMillicores: BigInt(opts.cpuMillicores),
      memoryBytes: BigInt(opts.memoryBytes),
      tasks: pidMax(),
    },
    driver,
    version: AGENT_VERSION,
    agentEndpoint,
    portRangeFirst: opts.portRange?.first ?? 20000,
    portRangeLast: opts.portRange?.last ?? 32767,
    dnsEndpoint: '',
    startedAt: BigInt(startedAt),
    meshProblems: [],
  };
}

/** Options of {@link Registration}. */
export interface RegistrationOptions {
  readonly machine: Machine;
  readonly ttlSeconds: number;
  /** Default TTL/3 (the presence's default); tests shorten it. */
  readonly renewIntervalMs?: number;
}

/** Registers the machine and keeps it registered; knows when the agent is cut off. */
export class Registration {
  readonly presence: Presence;
  private readonly renewIntervalMs: number;
  private readonly startedAt = Date.now();
  private readonly ttlSeconds: number;
  private lost = false;
  private readonly machineId: string;
  /** Renewals are failing (logged once until one succeeds). */
  private failing = false;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    opts: RegistrationOptions,
  ) {
    this.renewIntervalMs = renewInterval(opts.ttlSeconds, opts.renewIntervalMs);
    this.machineId = opts.machine.id;
    this.ttlSeconds = opts.ttlSeconds;
    this.presence = new Presence(store, {
      key: store.keys.machine(opts.machine.id),
      value: codecs.machine.encode(opts.machine),
      ttlSeconds: opts.ttlSeconds,
      renewIntervalMs: this.renewIntervalMs,
    });
    this.presence.on((event) => this.onEvent(event));
  }

  /**
   * Starts registering; resolves after the first registration (retrying until etcd answers).
   * Then deletes, in the background, what an earlier version's agent of this machine wrote
   * in the old layout under its lease.
   */
  async start(): Promise<void> {
    const key = this.store.keys.machine(this.machineId);
    const previous = await leaseOfKey(this.store, key).catch(() => 0n);
    await this.presence.start();
    if (previous === 0n || previous === this.presence.leaseId) return;
    deleteLegacyRecords(this.store, previous).then(
      (n) =>
        n > 0 && this.log.info({ records: n }, "deleted the earlier agent's old-layout records"),
      (err: unknown) =>
        this.log.info({ err }, 'old-layout records of the earlier agent are left to its lease'),
    );
  }

  /** The current lease, or undefined while unregistered. */
  get leaseId(): bigint | undefined {
    return this.presence.leaseId;
  }

  /**
   * Cut off means: the lease is known lost, or no renewal succeeded for a renewal interval
   * plus half of one (so a renewal merely in flight does not count). `lastContactAt` is the
   * last renewal sent that etcd confirmed (or the agent's start, before the first).
   */
  connection(now: number = Date.now()): Connection {
    const lastContactAt = this.presence.lastRenewedAt ?? this.startedAt;
    const overdue = now - lastContactAt > this.renewIntervalMs * 1.5;
    return { disconnected: this.lost || overdue, lastContactAt, now };
  }

  /**
   * The longest StopOnDisconnect= that still stops a unit before the lease can expire: the
   * TTL less the time it takes to notice the cut ({@link connection}'s threshold).
   */
  stopOnDisconnectLimitMs(ttlSeconds: number): number {
    return Math.max(0, ttlSeconds * 1000 - this.renewIntervalMs * 1.5);
  }

  /** Re-registers now if the lease is gone (a write said so before the keepalive did). */
  checkLease(machine: Machine): void {
    this.presence.update(codecs.machine.encode(machine)).catch(() => undefined);
  }

  /** Rewrites the machine record (under the same lease) with what changed in it. */
  update(machine: Machine): void {
    this.presence.update(codecs.machine.encode(machine)).catch(() => undefined);
  }

  /** Stops renewing; with `revoke` the machine and its states vanish now, else at TTL. */
  close(revoke: boolean): Promise<void> {
    return this.presence.close({ revoke });
  }

  private onEvent(event: PresenceEvent): void {
    switch (event.type) {
      case 'registered':
        if (this.lost) this.log.info({ lease: event.leaseId.toString() }, 'registered again');
        else this.log.info({ lease: event.leaseId.toString() }, 'machine registered');
        this.lost = false;
        this.failing = false;
        return;
      case 'lost':
        this.lost = true;
        this.log.warn({ lease: event.leaseId.toString() }, 'lease lost: re-registering');
        return;
      case 'error':
        // The first failure says so; the rest (one per retry while etcd is away) are debug.
        if (!this.failing) {
          this.log.info(
            { err: event.error, attemptMs: event.attemptMs },
            'lease renewal failed; retrying',
          );
        } else this.log.debug({ err: event.error }, 'lease renewal failed; retrying');
        this.failing = true;
        return;
      case 'renewed':
        this.failing = false;
        // How long the lease went unconfirmed, when a renewal failed or came late (a busy
        // event loop, a slow etcd): the chaos suite reads this line.
        if (event.failedAttempts > 0 || event.sinceLastMs > this.renewIntervalMs * 1.5) {
          const late = event.sinceLastMs > (this.ttlSeconds * 1000) / 2;
          this.log[late ? 'warn' : 'info'](
            {
              sinceLastMs: event.sinceLastMs,
              failedAttempts: event.failedAttempts,
              ttlMs: this.ttlSeconds * 1000,
            },
            'lease renewed again',
          );
        }
        return;
    }
  }
}

/**
 * How long after the last confirmed lease renewal the shim of a `StopOnDisconnect=` unit kills
 * it by itself (agent/runtime/shim.ts): the TTL less half a renewal interval, so later than
 * the agent's own stop ({@link Registration.stopOnDisconnectLimitMs}) and before etcd can
 * expire the lease and the leader start the unit elsewhere.
 */
export function contactLimitMs(ttlSeconds: number, renewIntervalMs?: number): number {
  return Math.max(0, ttlSeconds * 1000 - renewInterval(ttlSeconds, renewIntervalMs) * 0.5);
}

/** How often the lease is renewed: as given, else three times per TTL. */
function renewInterval(ttlSeconds: number, given: number | undefined): number {
  return given ?? (ttlSeconds * 1000) / 3;
}
