/**
 * flotctl's connection to a scheduler's API: one gRPC channel shared by the generated Units,
 * Machines, Events and Logs clients, promise-returning calls that each carry the request
 * deadline, listings that fetch every page, and streams as async iterables. Every failure
 * leaves here as a CliError (see errors.ts), translated once.
 */
import {
  Channel,
  connectivityState,
  credentials,
  Metadata,
  status,
  type CallOptions,
  type ClientReadableStream,
  type ClientUnaryCall,
  type ServiceError,
} from '@grpc/grpc-js';
import { EventsClient, type Event, type WatchRequest } from '../proto/flotilla/v1/events.js';
import { LogsClient, type LogLine, type TailRequest } from '../proto/flotilla/v1/logs.js';
import {
  MachinesClient,
  type ListMachinesResponse,
  type ListSchedulersResponse,
  type MachineStatus,
  type ResumeReschedulingResponse,
} from '../proto/flotilla/v1/machines.js';
import {
  ListUnitsRequest,
  UnitsClient,
  type DestroyUnitsResponse,
  type ListUnitsResponse,
  type PlanRequest,
  type PlanResponse,
  type RolloutStatus,
  type ScaleResponse,
  type SetDesiredStateResponse,
  type SubmitUnitsRequest,
  type SubmitUnitsResponse,
  type UnitStatus,
  type UpdateUnitRequest,
} from '../proto/flotilla/v1/units.js';
// The light files of unit/, not its index: the index loads the whole unit parser (about 8 ms
// of every flotctl start; docs/benchmarks.md).
import { MAX_PROBLEMS } from '../unit/errors.js';
import { parseUnitName } from '../unit/names.js';
import { pool } from '../lib/pool.js';
import { clientCredentials } from './client-tls.js';
import { CliError, isServiceError, toCliError, unreachableMessage } from './errors.js';
import { checkUnitFileSizes } from './file-limits.js';
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

/** A connection to one API endpoint. Close it when done, or the process stays alive. */
export class ApiClient {
  readonly endpoint: string;
  readonly requestTimeoutMs: number;
  /**
   * Rows per page of a listing: 5,000 by default, few round trips, and a page of statuses
   * without files stays near 1 MB.
   */
  private readonly pageSize: number;
  private readonly tls: GlobalOptions['tls'];
  private readonly channel: Channel;
  private readonly units: UnitsClient;
  private readonly machines: MachinesClient;
  private readonly events: EventsClient;
  private readonly logs: LogsClient;
  private connected = false;
  private readonly token: string | undefined;

  /** Throws CliError `file` when a TLS file cannot be used. */
  constructor(globals: GlobalOptions) {
    this.endpoint = globals.endpoint;
    this.requestTimeoutMs = globals.requestTimeoutMs;
    this.pageSize = globals.pageSize;
    this.tls = globals.tls;
    this.token = globals.token;
    const creds =
      globals.tls === undefined ? credentials.createInsecure() : clientCredentials(globals.tls);
    // No cap on answers (grpc-js's default is 4 MiB): a page of units carries their files, and
    // a RESOURCE_EXHAUSTED can then only be the server refusing a request (see errors.ts).
    this.channel = new Channel(this.endpoint, creds, { 'grpc.max_receive_message_length': -1 });
    const options = { channelOverride: this.channel };
    this.units = new UnitsClient(this.endpoint, creds, options);
    this.machines = new MachinesClient(this.endpoint, creds, options);
    this.events = new EventsClient(this.endpoint, creds, options);
    this.logs = new LogsClient(this.endpoint, creds, options);
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
    const call = this.units.submitUnits.bind(this.units);
    const answers = await inFlight(chunks(req.files), (files) =>
      this.unary(call, { ...req, files }),
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
    const call = this.units.setDesiredState.bind(this.units);
    const answers = await inFlight(chunks(names), (part) =>
      this.unary(call, { names: part, desiredState, allowPending }),
    );
    return {
      changed: answers.flatMap((a) => a.changed),
      unchanged: answers.flatMap((a) => a.unchanged),
      revision: maxRevision(answers),
      warnings: [...new Set(answers.flatMap((a) => a.warnings))],
    };
  }

  async destroyUnits(names: string[]): Promise<DestroyUnitsResponse> {
    const call = this.units.destroyUnits.bind(this.units);
    if (names.length <= REQUEST_UNITS) return this.unary(call, { names });
    await this.checkKnown(names, false);
    // Templates after everything else: the API refuses a template while instances that its
    // own request does not name exist, and those may be in another request of this one.
    const isTemplate = (n: string): boolean => n.includes('@.');
    const answers: DestroyUnitsResponse[] = [];
    for (const part of [names.filter((n) => !isTemplate(n)), names.filter(isTemplate)]) {
      if (part.length === 0) continue;
      answers.push(...(await inFlight(chunks(part), (c) => this.unary(call, { names: c }))));
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

  getUnit(name: string): Promise<UnitStatus> {
    return this.unary(this.units.getUnit.bind(this.units), { name });
  }

  updateUnit(req: UpdateUnitRequest): Promise<RolloutStatus> {
    if (req.file !== undefined) checkUnitFileSizes([[req.file]]);
    return this.unary(this.units.updateUnit.bind(this.units), req);
  }

  rollback(name: string): Promise<RolloutStatus> {
    return this.unary(this.units.rollback.bind(this.units), { name });
  }

  getRollout(name: string): Promise<RolloutStatus> {
    return this.unary(this.units.getRollout.bind(this.units), { name });
  }

  /** Scale; `allowPending` and `dryRun` as in ScaleRequest (units.proto). */
  scale(
    template: string,
    count: number,
    opts: { allowPending?: boolean; dryRun?: boolean } = {},
  ): Promise<ScaleResponse> {
    return this.unary(this.units.scale.bind(this.units), {
      template,
      count,
      allowPending: opts.allowPending ?? false,
      dryRun: opts.dryRun ?? false,
    });
  }

  plan(req: PlanRequest): Promise<PlanResponse> {
    checkUnitFileSizes([req.files]);
    return this.unary(this.units.plan.bind(this.units), req);
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
    const list = this.machines.listMachines.bind(this.machines);
    return this.unary(list, { pageSize, pageToken });
  }

  resumeRescheduling(): Promise<ResumeReschedulingResponse> {
    const m = this.machines;
    return this.unary(m.resumeRescheduling.bind(m), {});
  }

  listSchedulers(): Promise<ListSchedulersResponse> {
    const m = this.machines;
    return this.unary(m.listSchedulers.bind(m), {});
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
    const m = this.machines;
    return this.unary((drained ? m.drainMachine : m.undrainMachine).bind(m), { machine });
  }

  /** One page of units matching the filter, from `pageToken` ('' for the first). */
  listUnitsPage(filter: Partial<ListUnitsRequest>, pageToken = ''): Promise<ListUnitsResponse> {
    const req: ListUnitsRequest = {
      ...ListUnitsRequest.create(),
      pageSize: this.pageSize,
      ...filter,
      pageToken,
    };
    return this.unary(this.units.listUnits.bind(this.units), req);
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

  /** The cluster's events (Events.WatchBatches, flattened) as an async iterable; ends when `signal` aborts. */
  async *watch(req: WatchRequest, opts: StreamOptions): AsyncGenerator<Event> {
    // WatchBatches: the same events, many to a gRPC message (a scale's wait follows 300,000).
    const batches = this.stream((o) => this.events.watchBatches(req, this.metadata(), o), opts);
    for await (const batch of batches) yield* batch.events;
  }

  /** Logs.Tail as an async iterable; without follow it ends after the last lines. */
  tail(req: TailRequest, opts: StreamOptions): AsyncGenerator<LogLine> {
    return this.stream((o) => this.logs.tail(req, this.metadata(), o), opts);
  }

  /** Translates any failure of this connection into a CliError. */
  error(err: unknown): CliError {
    const ready = this.channel.getConnectivityState(false) === connectivityState.READY;
    return toCliError(err, {
      endpoint: this.endpoint,
      requestTimeoutMs: this.requestTimeoutMs,
      connected: this.connected || ready,
      tls: this.tls,
    });
  }

  close(): void {
    this.units.close();
    this.machines.close();
    this.events.close();
    this.logs.close();
    this.channel.close();
  }

  /** Each call's metadata: the bearer token, when there is one. */
  private metadata(): Metadata {
    const md = new Metadata();
    if (this.token !== undefined) md.set('authorization', `Bearer ${this.token}`);
    return md;
  }

  private unary<Req, Res>(method: UnaryMethod<Req, Res>, request: Req): Promise<Res> {
    return new Promise((resolve, reject) => {
      const options = { deadline: Date.now() + this.requestTimeoutMs };
      method(request, this.metadata(), options, (err, res) => {
        if (err === null) {
          this.connected = true;
          resolve(res);
        } else {
          reject(this.error(err));
        }
      });
    });
  }

  private async *stream<T>(
    open: (options: Partial<CallOptions>) => ClientReadableStream<T>,
    opts: StreamOptions,
  ): AsyncGenerator<T> {
    if (opts.signal?.aborted === true) return;
    const call = open(opts.follow ? {} : { deadline: Date.now() + this.requestTimeoutMs });
    let aborted = false;
    let unreachable = false;
    const onAbort = (): void => {
      aborted = true;
      call.cancel();
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    call.on('metadata', () => (this.connected = true));
    // A following stream has no deadline; this guard still fails it when no connection to
    // the API comes up within the request timeout.
    const guard = opts.follow
      ? setTimeout(() => {
          const state = this.channel.getConnectivityState(false);
          if (!this.connected && state !== connectivityState.READY) {
            unreachable = true;
            call.cancel();
          }
        }, this.requestTimeoutMs)
      : undefined;
    try {
      for await (const item of call as AsyncIterable<T>) {
        this.connected = true;
        yield item;
      }
    } catch (err) {
      if (unreachable) throw new CliError('unreachable', unreachableMessage(this.endpoint));
      if (aborted && isServiceError(err) && err.code === status.CANCELLED) return;
      throw this.error(err);
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
