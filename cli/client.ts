/**
 * flotctl's connection to a scheduler's API: one gRPC channel shared by the generated Units,
 * Machines, Events and Logs clients, promise-returning calls that each carry the request
 * deadline, listings that fetch every page, and streams as async iterables. Every failure
 * leaves here as a CliError (see errors.ts), translated once.
 */
import type {
  CreateSecretRequest,
  DeleteSecretRequest,
  DeleteSecretResponse,
  ListSecretsResponse,
  SecretInfo,
} from '../proto/flotilla/v1/secrets.js';
import {
  credentials,
  Metadata,
  status,
  type CallOptions,
  type ClientReadableStream,
  type ClientUnaryCall,
  type ServiceError,
} from '@grpc/grpc-js';
import type { Event, WatchRequest } from '../proto/flotilla/v1/events.js';
import type { LogLine, TailRequest } from '../proto/flotilla/v1/logs.js';
import type {
  ListMachinesResponse,
  ListSchedulersResponse,
  MachineStatus,
  ResumeReschedulingResponse,
} from '../proto/flotilla/v1/machines.js';
import {
  ListEndpointsRequest,
  type ListEndpointsResponse,
  type ListServicesResponse,
} from '../proto/flotilla/v1/services.js';
import {
  ListUnitsRequest,
  type DestroyUnitsResponse,
  type InstanceSummary,
  type ListUnitsResponse,
  type PlanRequest,
  type PlanResponse,
  type RolloutStatus,
  type ScaleResponse,
  type SetDesiredStateResponse,
  type SubmitUnitsRequest,
  type SubmitUnitsResponse,
  type SummarizeInstancesRequest,
  type UnitStatus,
  type UpdateUnitRequest,
} from '../proto/flotilla/v1/units.js';
// The light files of unit/, not its index: the index loads the whole unit parser (about 8 ms
// of every flotctl start; docs/benchmarks.md).
import { MAX_PROBLEMS } from '../unit/errors.js';
import { parseUnitName } from '../unit/names.js';
import { pool } from '../lib/pool.js';
import { clientCredentials } from './client-tls.js';
import {
  CliError,
  formatSeconds,
  isServiceError,
  toCliError,
  unreachableMessage,
} from './errors.js';
import { checkUnitFileSizes } from './file-limits.js';
import { ReplicaSet, type Replica } from './replicas.js';
import { machineAddresses, type MachineAddresses } from './table.js';
import type { GlobalOptions } from './verb.js';

/** The most units one write request may carry: etcd's default transaction size. */
export const REQUEST_UNITS = 128;

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

/** A unary method of one replica's clients. */
type Pick<Req, Res> = (replica: Replica) => UnaryMethod<Req, Res>;

/**
 * Whether a call may be sent again to another replica after the first may have reached a
 * server: 'idempotent' (a read, or a write whose second application changes nothing; see
 * docs/architecture.md), or 'once' (retried only when the first attempt never connected).
 */
type Retry = 'idempotent' | 'once';

/** Units as ListUnits returns them, all pages, read at one revision. */
export interface UnitListing {
  readonly units: UnitStatus[];
  readonly revision: bigint;
  /** The first page's warnings (records the API skipped). */
  readonly warnings: readonly string[];
}

/** One unit asked for by name: its status when the cluster has it, and when it was read. */
export interface NamedUnit {
  readonly status: UnitStatus | undefined;
  readonly revision: bigint;
}

/** Names per ListUnits request of {@link ApiClient.unitsNamed}. */
const NAMES_PER_REQUEST = 1_000;

/** How a stream is opened. */
export interface StreamOptions {
  /**
   * A stream that follows (watch, journal -f) has no deadline: it runs until `signal` aborts.
   * It still fails within the request timeout when the API cannot be reached.
   */
  readonly follow: boolean;
  readonly signal?: AbortSignal | undefined;
}

/**
 * A connection to the API through one of the replicas named (see replicas.ts): a call that
 * cannot reach the current replica goes to the next, each at most once, all within the
 * request timeout. Close it when done, or the process stays alive.
 */
export class ApiClient {
  readonly requestTimeoutMs: number;
  /**
   * Rows per page of a listing: 5,000 by default, few round trips, and a page of statuses
   * without files stays near 1 MB.
   */
  private readonly pageSize: number;
  private readonly tls: GlobalOptions['tls'];
  private readonly replicas: ReplicaSet;
  private readonly token: string | undefined;

  /** Throws CliError `file` when a TLS file cannot be used. */
  constructor(globals: GlobalOptions) {
    this.requestTimeoutMs = globals.requestTimeoutMs;
    this.pageSize = globals.pageSize;
    this.tls = globals.tls;
    this.token = globals.token;
    const creds =
      globals.tls === undefined ? credentials.createInsecure() : clientCredentials(globals.tls);
    const endpoints = globals.endpoints ?? [globals.endpoint];
    this.replicas = new ReplicaSet(endpoints, creds, globals.requestTimeoutMs);
  }

  /** How many replicas calls may go to. */
  get replicaCount(): number {
    return this.replicas.size;
  }

  /** The endpoint calls go to now (the next replica's after a failover). */
  get endpoint(): string {
    return this.replicas.currentEndpoint;
  }

  // The API takes at most REQUEST_UNITS units per write (one etcd transaction); more are sent
  // as several requests, each all-or-nothing, up to REQUESTS_IN_FLIGHT at once (so their
  // writes reach the leader together), and their answers merged in order.

  async submitUnits(req: SubmitUnitsRequest): Promise<SubmitUnitsResponse> {
    checkUnitFileSizes(chunks(req.files));
    // Several requests cannot be all or nothing on their own: check every file before the first.
    if (req.files.length > REQUEST_UNITS) {
      const { validateUnitFile } = await import('../unit/index.js');
      const problems = req.files.flatMap((f) =>
        validateUnitFile(f.name, f.contents).map((e) =>
          e.line > 0 ? `${f.name}:${e.line}: ${e.message}` : `${f.name}: ${e.message}`,
        ),
      );
      if (problems.length > 0) {
        throw new CliError('refused', problems.slice(0, MAX_PROBLEMS).join('\n'));
      }
    }
    // Idempotent: the same files again are 'unchanged' (so a retried submit may report as
    // unchanged what its first attempt created).
    const call: Pick<SubmitUnitsRequest, SubmitUnitsResponse> = (r) =>
      r.units.submitUnits.bind(r.units);
    const answers = await inFlight(chunks(req.files), (files) =>
      this.unary(call, { ...req, files }, 'idempotent'),
    );
    return {
      created: answers.flatMap((a) => a.created),
      updated: answers.flatMap((a) => a.updated),
      unchanged: answers.flatMap((a) => a.unchanged),
      revision: maxRevision(answers),
    };
  }

  async setDesiredState(
    names: string[],
    desiredState: string,
    allowPending = false,
  ): Promise<SetDesiredStateResponse> {
    if (names.length > REQUEST_UNITS) await this.checkKnown(names, true);
    const answers = await inFlight(chunks(names), (part) =>
      this.unary(
        (r) => r.units.setDesiredState.bind(r.units),
        { names: part, desiredState, allowPending },
        'idempotent',
      ),
    );
    return {
      changed: answers.flatMap((a) => a.changed),
      unchanged: answers.flatMap((a) => a.unchanged),
      revision: maxRevision(answers),
      warnings: [...new Set(answers.flatMap((a) => a.warnings))],
    };
  }

  async destroyUnits(names: string[]): Promise<DestroyUnitsResponse> {
    // Not idempotent: a second DestroyUnits of a destroyed name is NOT_FOUND.
    const call: Pick<{ names: string[] }, DestroyUnitsResponse> = (r) =>
      r.units.destroyUnits.bind(r.units);
    if (names.length <= REQUEST_UNITS) return this.unary(call, { names }, 'once');
    await this.checkKnown(names, false);
    // Templates after everything else: the API refuses a template while instances that its
    // own request does not name exist, and those may be in another request of this one.
    const isTemplate = (n: string): boolean => n.includes('@.');
    const answers: DestroyUnitsResponse[] = [];
    for (const part of [names.filter((n) => !isTemplate(n)), names.filter(isTemplate)]) {
      if (part.length === 0) continue;
      answers.push(
        ...(await inFlight(chunks(part), (c) => this.unary(call, { names: c }, 'once'))),
      );
    }
    return {
      destroyed: answers.flatMap((a) => a.destroyed),
      revision: maxRevision(answers),
      warnings: [...new Set(answers.flatMap((a) => a.warnings))],
    };
  }

  /**
   * The names of `template`'s instances (any instance, numbered or not), listed a page at a
   * time in brief.
   */
  async instancesOf(template: string): Promise<string[]> {
    const at = template.indexOf('@.');
    const glob = `${template.slice(0, at)}@*${template.slice(at + 1)}`;
    const names: string[] = [];
    for await (const page of this.unitPages({ nameGlob: glob, brief: true })) {
      for (const u of page.units) {
        const name = u.unit?.name ?? '';
        if (name !== template && name.startsWith(template.slice(0, at + 1))) names.push(name);
      }
    }
    return names;
  }

  /**
   * Before a write split into several requests: every name must be a submitted unit (or, with
   * `instances`, an instance of a submitted template), as the API checks for one request, so
   * an unknown name among many still writes nothing (bar a unit destroyed meanwhile).
   */
  private async checkKnown(names: readonly string[], instances: boolean): Promise<void> {
    const templateOf = (name: string): string | undefined => {
      try {
        const parsed = parseUnitName(name);
        return parsed.isInstance ? parsed.template : undefined;
      } catch {
        return undefined; // the API says what is wrong with the name
      }
    };
    const templates = instances ? names.flatMap((n) => templateOf(n) ?? []) : [];
    const found = await this.unitsNamed([...names, ...templates]);
    const known = (name: string | undefined): boolean =>
      name !== undefined && found.get(name)?.status !== undefined;
    const missing = names.filter((name) => !known(name) && !(instances && known(templateOf(name))));
    if (missing.length === 0) return;
    const what = missing.length === 1 ? 'is not a submitted unit' : 'are not submitted units';
    const hint = instances ? ' (nor instances of a submitted template)' : '';
    throw new CliError('refused', `${missing.join(', ')} ${what}${hint}`);
  }

  /** A template's instances counted by how they are doing (what a large scale's wait polls). */
  summarizeInstances(req: SummarizeInstancesRequest): Promise<InstanceSummary> {
    return this.unary((r) => r.units.summarizeInstances.bind(r.units), req, 'idempotent');
  }

  getUnit(name: string): Promise<UnitStatus> {
    return this.unary((r) => r.units.getUnit.bind(r.units), { name }, 'idempotent');
  }

  updateUnit(req: UpdateUnitRequest): Promise<RolloutStatus> {
    if (req.file !== undefined) checkUnitFileSizes([[req.file]]);
    // Not idempotent: a second UpdateUnit may start a second rollout.
    return this.unary((r) => r.units.updateUnit.bind(r.units), req, 'once');
  }

  rollback(name: string): Promise<RolloutStatus> {
    return this.unary((r) => r.units.rollback.bind(r.units), { name }, 'once');
  }

  getRollout(name: string): Promise<RolloutStatus> {
    return this.unary((r) => r.units.getRollout.bind(r.units), { name }, 'idempotent');
  }

  /** Scale; `allowPending` and `dryRun` as in ScaleRequest (units.proto). */
  scale(
    template: string,
    count: number,
    opts: { allowPending?: boolean; dryRun?: boolean } = {},
  ): Promise<ScaleResponse> {
    const req = {
      template,
      count,
      allowPending: opts.allowPending ?? false,
      dryRun: opts.dryRun ?? false,
    };
    // Idempotent: scaling to a count twice leaves that count.
    return this.unary((r) => r.units.scale.bind(r.units), req, 'idempotent');
  }

  plan(req: PlanRequest): Promise<PlanResponse> {
    checkUnitFileSizes([req.files]);
    return this.unary((r) => r.units.plan.bind(r.units), req, 'idempotent');
  }

  /** Every live machine, all pages; the scheduler status of the first. */
  async listMachines(): Promise<ListMachinesResponse> {
    const first = await this.listMachinesPage(this.pageSize);
    const machines = [...first.machines];
    for (let token = first.nextPageToken; token !== '';) {
      const page = await this.listMachinesPage(this.pageSize, token);
      machines.push(...page.machines);
      token = page.nextPageToken;
    }
    return { ...first, machines, nextPageToken: '' };
  }

  /** One page of machines from `pageToken` ('' for the first). */
  listMachinesPage(pageSize: number, pageToken = ''): Promise<ListMachinesResponse> {
    const list: Pick<{ pageSize: number; pageToken: string }, ListMachinesResponse> = (r) =>
      r.machines.listMachines.bind(r.machines);
    return this.unary(list, { pageSize, pageToken }, 'idempotent');
  }

  resumeRescheduling(): Promise<ResumeReschedulingResponse> {
    return this.unary((r) => r.machines.resumeRescheduling.bind(r.machines), {}, 'idempotent');
  }

  createSecret(req: CreateSecretRequest): Promise<SecretInfo> {
    // Idempotent with replace (the same value again); without, a retry is ALREADY_EXISTS.
    return this.unary(
      (r) => r.secrets.createSecret.bind(r.secrets),
      req,
      req.replace ? 'idempotent' : 'once',
    );
  }

  listSecrets(): Promise<ListSecretsResponse> {
    return this.unary((r) => r.secrets.listSecrets.bind(r.secrets), {}, 'idempotent');
  }

  deleteSecret(req: DeleteSecretRequest): Promise<DeleteSecretResponse> {
    return this.unary((r) => r.secrets.deleteSecret.bind(r.secrets), req, 'idempotent');
  }

  listSchedulers(): Promise<ListSchedulersResponse> {
    return this.unary((r) => r.machines.listSchedulers.bind(r.machines), {}, 'idempotent');
  }

  /** Machine ids to public addresses, for `1a2b3c4d.../10.0.0.1` legends; empty on failure. */
  async addresses(): Promise<MachineAddresses> {
    try {
      return machineAddresses((await this.listMachines()).machines);
    } catch {
      return new Map();
    }
  }

  /** DrainMachine (drained true) or UndrainMachine. */
  drain(machine: string, drained: boolean): Promise<MachineStatus> {
    // Idempotent: draining a drained machine changes nothing.
    const call: Pick<{ machine: string }, MachineStatus> = ({ machines: m }) =>
      (drained ? m.drainMachine : m.undrainMachine).bind(m);
    return this.unary(call, { machine }, 'idempotent');
  }

  /** One page of units matching the filter, from `pageToken` ('' for the first). */
  listUnitsPage(filter: Partial<ListUnitsRequest>, pageToken = ''): Promise<ListUnitsResponse> {
    const req: ListUnitsRequest = {
      ...ListUnitsRequest.create(),
      pageSize: this.pageSize,
      ...filter,
      pageToken,
    };
    return this.unary((r) => r.units.listUnits.bind(r.units), req, 'idempotent');
  }

  /** Every unit matching the filter, all pages; `revision` is the first page's. */
  async listAllUnits(filter: Partial<ListUnitsRequest> = {}): Promise<UnitListing> {
    const units: UnitStatus[] = [];
    let revision = 0n;
    let warnings: readonly string[] | undefined;
    for await (const page of this.unitPages(filter)) {
      if (revision === 0n) revision = page.revision;
      warnings ??= page.warnings;
      units.push(...page.units);
    }
    return { units, revision, warnings: warnings ?? [] };
  }

  /**
   * Every unit of `names`, looked up by name (ListUnits' `names`, a thousand names a request):
   * an entry for each name, its status undefined when the cluster has no such unit.
   */
  async unitsNamed(
    names: readonly string[],
    opts: { withFiles?: boolean } = {},
  ): Promise<Map<string, NamedUnit>> {
    const found = new Map<string, NamedUnit>();
    const unique = [...new Set(names)];
    for (let i = 0; i < unique.length; i += NAMES_PER_REQUEST) {
      const part = unique.slice(i, i + NAMES_PER_REQUEST);
      const { units, revision } = await this.listAllUnits({
        names: part,
        withFiles: opts.withFiles ?? false,
      });
      const byName = new Map(units.map((u) => [u.unit?.name ?? '', u]));
      for (const name of part) found.set(name, { status: byName.get(name), revision });
    }
    return found;
  }

  /**
   * The units matching the filter a page at a time, in name order, each page read at its own
   * revision. The next page is asked for as soon as a page arrives, so the API composes it
   * while the caller prints this one.
   */
  async *unitPages(filter: Partial<ListUnitsRequest> = {}): AsyncGenerator<ListUnitsResponse> {
    const ask = (pageToken: string): Promise<ListUnitsResponse> => {
      const page = this.listUnitsPage(filter, pageToken);
      page.catch(() => undefined); // the caller may stop before it wants this page
      return page;
    };
    let next: Promise<ListUnitsResponse> | undefined = ask('');
    while (next !== undefined) {
      const page: ListUnitsResponse = await next;
      next = page.nextPageToken === '' ? undefined : ask(page.nextPageToken);
      yield page;
    }
  }

  /** Every service (Services.ListServices), all pages; `revision` is the first page's. */
  async listServices(): Promise<ListServicesResponse> {
    const page = (pageToken: string): Promise<ListServicesResponse> =>
      this.unary(
        (r) => r.services.listServices.bind(r.services),
        { pageSize: this.pageSize, pageToken },
        'idempotent',
      );
    const first = await page('');
    const services = [...first.services];
    for (let token = first.nextPageToken; token !== '';) {
      const next = await page(token);
      services.push(...next.services);
      token = next.nextPageToken;
    }
    return { ...first, services, nextPageToken: '' };
  }

  /** The endpoints of a service, or of one unit (`service` ''), all pages. */
  async listEndpoints(filter: Partial<ListEndpointsRequest>): Promise<ListEndpointsResponse> {
    const page = (pageToken: string): Promise<ListEndpointsResponse> =>
      this.unary(
        (r) => r.services.listEndpoints.bind(r.services),
        { ...ListEndpointsRequest.create(), pageSize: this.pageSize, ...filter, pageToken },
        'idempotent',
      );
    const first = await page('');
    const endpoints = [...first.endpoints];
    for (let token = first.nextPageToken; token !== '';) {
      const next = await page(token);
      endpoints.push(...next.endpoints);
      token = next.nextPageToken;
    }
    return { ...first, endpoints, nextPageToken: '' };
  }

  /** The cluster's events (Events.WatchBatches, flattened) as an async iterable; ends when `signal` aborts. */
  async *watch(req: WatchRequest, opts: StreamOptions): AsyncGenerator<Event> {
    // WatchBatches: the same events, many to a gRPC message (a scale's wait follows 300,000).
    const batches = this.stream((r, o) => r.events.watchBatches(req, this.metadata(), o), opts);
    for await (const batch of batches) yield* batch.events;
  }

  /** Logs.Tail as an async iterable; without follow it ends after the last lines. */
  tail(req: TailRequest, opts: StreamOptions): AsyncGenerator<LogLine> {
    return this.stream((r, o) => r.logs.tail(req, this.metadata(), o), opts);
  }

  /** Translates any failure of a call to `replica` (default: the current one) into a CliError. */
  error(err: unknown, replica: Replica = this.replicas.current()): CliError {
    return toCliError(err, {
      endpoint: replica.endpoint,
      requestTimeoutMs: this.requestTimeoutMs,
      connected: replica.ready,
      tls: this.tls,
    });
  }

  close(): void {
    this.replicas.close();
  }

  /** Each call's metadata: the bearer token, when there is one. */
  private metadata(): Metadata {
    const md = new Metadata();
    if (this.token !== undefined) md.set('authorization', `Bearer ${this.token}`);
    return md;
  }

  /**
   * One call, failing over: to each replica at most once, all within the request timeout. A
   * replica that is not connected yet gets its share of the time left to connect before the
   * next is tried (the last gets all of it). After a failure the next replica is tried when
   * the call cannot have reached the failed one (it never connected), or when `retry` is
   * 'idempotent' and the replica broke off or said UNAVAILABLE; any other failure is final.
   */
  private async unary<Req, Res>(pick: Pick<Req, Res>, request: Req, retry: Retry): Promise<Res> {
    await this.replicas.resolve();
    const deadline = Date.now() + this.requestTimeoutMs;
    let replica = this.replicas.current();
    for (let left = this.replicas.size - 1; ; left--) {
      try {
        if (left > 0 && !replica.ready) {
          const share = (deadline - Date.now()) / (left + 1);
          if ((await replica.connect(Date.now() + share)) === 'silent') {
            const secs = formatSeconds(Math.round(share));
            throw new CliError(
              'unreachable',
              `${unreachableMessage(replica.endpoint)} (no answer within ${secs})`,
              status.DEADLINE_EXCEEDED,
            );
          }
        }
        return await this.unaryOn(replica, pick(replica), request, deadline);
      } catch (err) {
        const e = this.error(err, replica);
        const again =
          e.code === 'unreachable' || (retry === 'idempotent' && e.code === 'unavailable');
        if (left <= 0 || !again || Date.now() >= deadline) throw e;
        replica = this.replicas.next(replica);
      }
    }
  }

  private unaryOn<Req, Res>(
    replica: Replica,
    method: UnaryMethod<Req, Res>,
    request: Req,
    deadline: number,
  ): Promise<Res> {
    return new Promise((resolve, reject) => {
      method(request, this.metadata(), { deadline }, (err, res) => {
        if (err === null) {
          replica.connected = true;
          resolve(res);
        } else {
          reject(this.error(err, replica));
        }
      });
    });
  }

  /**
   * A stream from the current replica. When it fails for want of that replica (unreachable,
   * or UNAVAILABLE: it went away or lost its etcd), the next replica becomes current, so the
   * caller's resumption (from the last revision it saw) goes there.
   */
  private async *stream<T>(
    open: (replica: Replica, options: Partial<CallOptions>) => ClientReadableStream<T>,
    opts: StreamOptions,
  ): AsyncGenerator<T> {
    if (opts.signal?.aborted === true) return;
    await this.replicas.resolve();
    const replica = this.replicas.current();
    try {
      yield* this.streamOn(replica, open, opts);
    } catch (err) {
      if (err instanceof CliError && ['unreachable', 'unavailable'].includes(err.code)) {
        this.replicas.next(replica);
      }
      throw err;
    }
  }

  private async *streamOn<T>(
    replica: Replica,
    open: (replica: Replica, options: Partial<CallOptions>) => ClientReadableStream<T>,
    opts: StreamOptions,
  ): AsyncGenerator<T> {
    const call = open(replica, opts.follow ? {} : { deadline: Date.now() + this.requestTimeoutMs });
    let aborted = false;
    let unreachable = false;
    const onAbort = (): void => {
      aborted = true;
      call.cancel();
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    call.on('metadata', () => (replica.connected = true));
    // A following stream has no deadline; this guard still fails it when no connection to
    // the API comes up within the request timeout.
    const guard = opts.follow
      ? setTimeout(() => {
          if (!replica.ready) {
            unreachable = true;
            call.cancel();
          }
        }, this.requestTimeoutMs)
      : undefined;
    try {
      for await (const item of call as AsyncIterable<T>) {
        replica.connected = true;
        yield item;
      }
    } catch (err) {
      if (unreachable) throw new CliError('unreachable', unreachableMessage(replica.endpoint));
      if (aborted && isServiceError(err) && err.code === status.CANCELLED) return;
      throw this.error(err, replica);
    } finally {
      clearTimeout(guard);
      opts.signal?.removeEventListener('abort', onAbort);
      call.cancel();
    }
  }
}

/** `items` in runs of at most REQUEST_UNITS; one empty run for an empty list. */
function chunks<T>(items: readonly T[]): T[][] {
  if (items.length === 0) return [[]];
  const runs: T[][] = [];
  for (let i = 0; i < items.length; i += REQUEST_UNITS)
    runs.push(items.slice(i, i + REQUEST_UNITS));
  return runs;
}

/** Requests of one split write sent at once. */
const REQUESTS_IN_FLIGHT = 8;

/** `send` for every part, at most {@link REQUESTS_IN_FLIGHT} at a time; answers in order. */
/** Sends each part with at most {@link REQUESTS_IN_FLIGHT} requests at once; answers in order. */
function inFlight<T, R>(parts: readonly T[], send: (part: T) => Promise<R>): Promise<R[]> {
  return pool(parts.length, REQUESTS_IN_FLIGHT, (i) => send(parts[i] as T));
}

function maxRevision(answers: readonly { revision: bigint }[]): bigint {
  return answers.reduce((max, a) => maxBigint(max, a.revision), 0n);
}

function maxBigint(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

/** Runs `fn` with a client for `globals`, and closes the client afterwards, whatever happens. */
export async function withClient<T>(
  globals: GlobalOptions,
  fn: (api: ApiClient) => Promise<T>,
): Promise<T> {
  const api = new ApiClient(globals);
  try {
    return await fn(api);
  } finally {
    api.close();
  }
}
