/**
 * The scheduler replicas flotctl may talk to: every replica serves the whole API, so a call
 * that cannot reach one goes to the next. `--endpoint a:4700,b:4700` (or FLOTCTL_ENDPOINT)
 * names them; a host name with several addresses counts as one replica per address, resolved
 * once per invocation. One replica is current at a time; a failure moves to the next, and the
 * calls after it stay there (no call goes back to a replica that just failed).
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import {
  Channel,
  connectivityState,
  type ChannelCredentials,
  type ChannelOptions,
} from '@grpc/grpc-js';
import { EventsClient } from '../proto/flotilla/v1/events.js';
import { LogsClient } from '../proto/flotilla/v1/logs.js';
import { SecretsClient } from '../proto/flotilla/v1/secrets.js';
import { MachinesClient } from '../proto/flotilla/v1/machines.js';
import { ServicesClient } from '../proto/flotilla/v1/services.js';
import { UnitsClient } from '../proto/flotilla/v1/units.js';

/** The most addresses one host name may add: a round-robin name of a few replicas. */
export const MAX_ADDRESSES_PER_NAME = 16;
/**
 * How long the lookup of a name may delay the first call (at most a quarter of the request
 * timeout); a name not resolved by then is left to gRPC, which resolves it itself.
 */
const LOOKUP_MS = 2_000;

/** One replica's API: one channel shared by the generated clients. */
export class Replica {
  readonly channel: Channel;
  readonly units: UnitsClient;
  readonly machines: MachinesClient;
  readonly events: EventsClient;
  readonly logs: LogsClient;
  readonly services: ServicesClient;
  readonly secrets: SecretsClient;
  /** Whether this replica has answered (a call succeeded, or a stream sent headers). */
  connected = false;

  constructor(
    readonly endpoint: string,
    creds: ChannelCredentials,
    /** The host name the endpoint's address came from: TLS checks the certificate for it. */
    hostName?: string,
  ) {
    // No cap on answers (grpc-js's default is 4 MiB): a page of units carries their files, and
    // a RESOURCE_EXHAUSTED can then only be the server refusing a request (see errors.ts).
    const options: ChannelOptions = {
      'grpc.max_receive_message_length': -1,
      ...(hostName === undefined
        ? {}
        : { 'grpc.ssl_target_name_override': hostName, 'grpc.default_authority': hostName }),
    };
    this.channel = new Channel(endpoint, creds, options);
    const shared = { channelOverride: this.channel };
    this.units = new UnitsClient(endpoint, creds, shared);
    this.machines = new MachinesClient(endpoint, creds, shared);
    this.events = new EventsClient(endpoint, creds, shared);
    this.logs = new LogsClient(endpoint, creds, shared);
    this.services = new ServicesClient(endpoint, creds, shared);
    this.secrets = new SecretsClient(endpoint, creds, shared);
  }

  /** Connected, or its channel is. */
  get ready(): boolean {
    return this.connected || this.channel.getConnectivityState(false) === connectivityState.READY;
  }

  /**
   * Waits until the channel is READY ('ready'), fails to connect ('failed': a call now fails
   * at once with the reason), or `deadline` passes ('silent': nothing answered).
   */
  connect(deadline: number): Promise<'ready' | 'failed' | 'silent'> {
    return new Promise((resolve) => {
      const check = (): void => {
        const state = this.channel.getConnectivityState(true);
        if (state === connectivityState.READY) return resolve('ready');
        if (state === connectivityState.TRANSIENT_FAILURE) return resolve('failed');
        if (state === connectivityState.SHUTDOWN) return resolve('failed');
        if (Date.now() >= deadline) return resolve('silent');
        this.channel.watchConnectivityState(state, deadline, (err) => {
          if (err !== undefined) resolve('silent');
          else check();
        });
      };
      check();
    });
  }

  close(): void {
    this.units.close();
    this.machines.close();
    this.events.close();
    this.logs.close();
    this.services.close();
    this.channel.close();
  }
}

/** The replicas of one invocation; opened lazily, closed together. */
export class ReplicaSet {
  private endpoints: readonly { endpoint: string; hostName?: string }[];
  private readonly opened = new Map<number, Replica>();
  private index = 0;
  private resolved: Promise<void> | undefined;

  constructor(
    endpoints: readonly string[],
    private readonly creds: ChannelCredentials,
    private readonly requestTimeoutMs: number,
  ) {
    this.endpoints = endpoints.map((endpoint) => ({ endpoint }));
  }

  /** How many replicas there are (after {@link resolve}: counting every address of a name). */
  get size(): number {
    return this.endpoints.length;
  }

  /** The endpoint calls go to now. */
  get currentEndpoint(): string {
    return this.endpoints[this.index]?.endpoint ?? '';
  }

  /**
   * Turns a host name with several addresses into one replica per address, once per
   * invocation (TLS still checks each certificate for the name). A name with one address, an
   * IP address, `localhost` and gRPC target forms are left to gRPC.
   */
  resolve(): Promise<void> {
    this.resolved ??= this.expand();
    return this.resolved;
  }

  private async expand(): Promise<void> {
    const out: { endpoint: string; hostName?: string }[] = [];
    for (const { endpoint } of this.endpoints) {
      const m = /^([^:[\]/]+):(\d+)$/.exec(endpoint);
      const host = m?.[1];
      if (m === null || host === undefined || isIP(host) !== 0 || host === 'localhost') {
        out.push({ endpoint });
        continue;
      }
      const addresses = await lookupWithin(host, Math.min(LOOKUP_MS, this.requestTimeoutMs / 4));
      if (addresses.length <= 1) {
        out.push({ endpoint }); // gRPC resolves it, and says so when it cannot
        continue;
      }
      for (const a of addresses.slice(0, MAX_ADDRESSES_PER_NAME)) {
        const address = a.family === 6 ? `[${a.address}]` : a.address;
        out.push({ endpoint: `${address}:${m[2] ?? ''}`, hostName: host });
      }
    }
    this.endpoints = out;
  }

  /** The replica calls go to now. */
  current(): Replica {
    let replica = this.opened.get(this.index);
    if (replica === undefined) {
      const e = this.endpoints[this.index] ?? { endpoint: '' };
      replica = new Replica(e.endpoint, this.creds, e.hostName);
      this.opened.set(this.index, replica);
    }
    return replica;
  }

  /**
   * After `failed` failed: the next replica becomes current (unless a call that failed at the
   * same time moved on already), and is returned.
   */
  next(failed: Replica): Replica {
    if (this.opened.get(this.index) === failed) this.index = (this.index + 1) % this.size;
    return this.current();
  }

  close(): void {
    for (const replica of this.opened.values()) replica.close();
    this.opened.clear();
  }
}

/** The addresses of `host`, or none when the lookup fails or takes longer than `ms`. */
async function lookupWithin(
  host: string,
  ms: number,
): Promise<{ address: string; family: number }[]> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<[]>((resolve) => {
    timer = setTimeout(() => resolve([]), ms);
  });
  try {
    return await Promise.race([lookup(host, { all: true }).catch(() => []), late]);
  } finally {
    clearTimeout(timer);
  }
}
