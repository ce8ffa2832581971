/**
 * The API tests' kit: a real API server on a free port over a real etcd (one per test file,
 * from testkit), its generated clients with promise wrappers, and a fingerprint of a
 * prefix's keys to prove that a refused request wrote nothing.
 */
import type { RegistryOptions } from '../../registry/skopeo.js';
import { instanceNames } from '../../cli/verbs/scale.js';
import {
  credentials,
  Metadata,
  type CallOptions,
  type ClientReadableStream,
  type ClientUnaryCall,
  type ServiceError,
} from '@grpc/grpc-js';
import type { ExecutionContext } from 'ava';
import { pino } from 'pino';
import { EventsClient, WatchRequest, type Event } from '../../proto/flotilla/v1/events.js';
import {
  DrainMachineRequest,
  ListMachinesRequest,
  MachinesClient,
  SetMachineMetadataRequest,
} from '../../proto/flotilla/v1/machines.js';
import {
  DestroyUnitsRequest,
  GetUnitRequest,
  ListUnitsRequest,
  PlanRequest,
  ScaleRequest,
  SetDesiredStateRequest,
  SubmitUnitsRequest,
  UnitsClient,
  type UnitStatus,
} from '../../proto/flotilla/v1/units.js';
import { startApiServer, type ApiServer } from '../../scheduler/api/index.js';
import type { QuotaOptions } from '../../scheduler/api/quota.js';
import { openStore, type Store } from '../../store/index.js';
import { storedUnits, uniquePrefix, type EtcdServer } from '../../testkit/index.js';

export { storedUnit } from '../../testkit/index.js';

/** Every call a test makes carries this deadline: generous, a loaded box never flakes. */
export const CALL_TIMEOUT_MS = 20_000;

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

/** Calls a generated unary method and resolves with its response (rejects with ServiceError). */
export function rpc<Req, Res>(method: UnaryMethod<Req, Res>, request: Req): Promise<Res> {
  return new Promise((resolve, reject) => {
    method(request, new Metadata(), { deadline: Date.now() + CALL_TIMEOUT_MS }, (err, res) =>
      err === null ? resolve(res) : reject(err),
    );
  });
}

/** A running API server for one test, with promise-returning calls. */
export interface Api {
  readonly store: Store;
  readonly server: ApiServer;
  readonly prefix: string;
  readonly units: UnitsClient;
  readonly machines: MachinesClient;
  readonly events: EventsClient;
  submit(r: Partial<SubmitUnitsRequest>): ReturnType<typeof submit>;
  /** SetDesiredState; `allowPending` (default false) passes admission's fit check. */
  setDesired(
    names: string[],
    desiredState: string,
    allowPending?: boolean,
  ): ReturnType<typeof setDesired>;
  destroy(names: string[]): ReturnType<typeof destroy>;
  get(name: string): ReturnType<typeof get>;
  list(r: Partial<ListUnitsRequest>): ReturnType<typeof list>;
  /** Scale; `opts` as ScaleRequest's allowPending and dryRun (default false). */
  scale(
    template: string,
    count: number,
    opts?: { allowPending?: boolean; dryRun?: boolean },
  ): ReturnType<typeof scale>;
  plan(r: Partial<PlanRequest>): ReturnType<typeof plan>;
  listMachines(r?: Partial<ListMachinesRequest>): ReturnType<typeof listMachines>;
  setMetadata(r: Partial<SetMachineMetadataRequest>): ReturnType<typeof setMetadata>;
  drain(machine: string, drained: boolean): ReturnType<typeof drain>;
  /** Opens Events.Watch; the stream is cancelled at teardown. */
  watch(r: Partial<WatchRequest>): ClientReadableStream<Event>;
}

const submit = (c: UnitsClient, r: SubmitUnitsRequest) => rpc(c.submitUnits.bind(c), r);
const setDesired = (c: UnitsClient, r: SetDesiredStateRequest) => rpc(c.setDesiredState.bind(c), r);
const destroy = (c: UnitsClient, r: DestroyUnitsRequest) => rpc(c.destroyUnits.bind(c), r);
const get = (c: UnitsClient, r: GetUnitRequest) => rpc(c.getUnit.bind(c), r);
const list = (c: UnitsClient, r: ListUnitsRequest) => rpc(c.listUnits.bind(c), r);
/** Scale, with the answer's ranges of instance numbers spelled out as names. */
const scale = async (c: UnitsClient, r: ScaleRequest) => {
  const res = await rpc(c.scale.bind(c), r);
  return {
    revision: res.revision,
    admission: res.admission,
    started: instanceNames(res.template, res.started),
    destroyed: instanceNames(res.template, res.destroyed),
    instances: instanceNames(res.template, res.instances),
  };
};
const plan = (c: UnitsClient, r: PlanRequest) => rpc(c.plan.bind(c), r);
const listMachines = (c: MachinesClient, r: Partial<ListMachinesRequest> = {}) =>
  rpc(c.listMachines.bind(c), { ...ListMachinesRequest.create(), ...r });
const setMetadata = (c: MachinesClient, r: SetMachineMetadataRequest) =>
  rpc(c.setMachineMetadata.bind(c), r);
const drain = (c: MachinesClient, r: DrainMachineRequest, drained: boolean) =>
  rpc((drained ? c.drainMachine : c.undrainMachine).bind(c), r);

/** A silent logger: tests assert outcomes, not log lines. */
export const quietLogger = pino({ level: 'silent' });

/**
 * Starts an API server on a free port over `etcd` under a fresh prefix (or over `store` when
 * given), with clients; everything is closed at the test's teardown, even when it fails.
 */
export async function startApi(
  t: ExecutionContext,
  etcd: EtcdServer,
  opts: {
    store?: Store;
    label?: string;
    registry?: RegistryOptions;
    /** The scheduler's --max-instances (admission); default its default. */
    maxInstances?: number;
    /** The quota guard's options; default etcd's default quota. */
    quota?: QuotaOptions;
  } = {},
): Promise<Api> {
  const prefix = uniquePrefix(opts.label ?? t.title);
  const store = opts.store ?? openStore({ endpoints: etcd.endpoint, prefix });
  const server = await startApiServer({
    store,
    listen: '127.0.0.1:0',
    logger: quietLogger,
    ...(opts.registry !== undefined ? { registry: opts.registry } : {}),
    ...(opts.maxInstances !== undefined ? { maxInstances: opts.maxInstances } : {}),
    ...(opts.quota !== undefined ? { quota: opts.quota } : {}),
  });
  const creds = credentials.createInsecure();
  const units = new UnitsClient(server.address, creds);
  const machines = new MachinesClient(server.address, creds);
  const events = new EventsClient(server.address, creds);
  const streams: ClientReadableStream<Event>[] = [];
  t.teardown(async () => {
    for (const s of streams) s.cancel();
    units.close();
    machines.close();
    events.close();
    await server.close();
    store.close();
  });
  return {
    store,
    server,
    prefix: store.keys.prefix,
    units,
    machines,
    events,
    submit: (r) => submit(units, { ...SubmitUnitsRequest.create(), ...r }),
    setDesired: (names, desiredState, allowPending = false) =>
      setDesired(units, { names, desiredState, allowPending }),
    destroy: (names) => destroy(units, { names }),
    get: (name) => get(units, { name }),
    list: (r) => list(units, { ...ListUnitsRequest.create(), ...r }),
    scale: (template, count, opts = {}) =>
      scale(units, {
        template,
        count,
        allowPending: opts.allowPending ?? false,
        dryRun: opts.dryRun ?? false,
      }),
    plan: (r) => plan(units, { ...PlanRequest.create(), ...r }),
    listMachines: (r) => listMachines(machines, r),
    setMetadata: (r) => setMetadata(machines, { ...SetMachineMetadataRequest.create(), ...r }),
    drain: (machine, drained) => drain(machines, { machine }, drained),
    watch: (r) => {
      const s = events.watch({ ...WatchRequest.create(), ...r });
      s.on('error', () => undefined); // tests that care listen themselves
      streams.push(s);
      return s;
    },
  };
}

/** True for a gRPC ServiceError (as opposed to a bug in the test). */
export function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === 'number';
}

/** Awaits a call that must fail, and returns its ServiceError. */
export async function failure(promise: Promise<unknown>): Promise<ServiceError> {
  try {
    await promise;
  } catch (err) {
    if (isServiceError(err)) return err;
    throw err;
  }
  throw new Error('the call succeeded, but it should have failed');
}

/** Every key under the prefix with its mod revision: equal fingerprints mean nothing was written. */
export async function fingerprint(store: Store): Promise<string[]> {
  const { items } = await store.list(store.keys.prefix);
  return items.map((kv) => `${kv.key}@${kv.modRevision}`);
}

/**
 * The names of every unit this store's prefix holds, sorted: records under units/, and the
 * instances count records under instance-counts/ hold (each as if it had its record).
 */
export async function unitNames(store: Store): Promise<string[]> {
  return [...(await storedUnits(store)).keys()].sort();
}

/** The names of the records under units/ of this store's prefix (no counted instance). */
export async function recordNames(store: Store): Promise<string[]> {
  const { items } = await store.list(store.keys.dir('unit'));
  return items.map((kv) => kv.key.slice(store.keys.dir('unit').length));
}

/** Every page of a listing, in order: one array of units per page. */
export async function listAll(api: Api, req: Parameters<Api['list']>[0]): Promise<UnitStatus[][]> {
  const pages: UnitStatus[][] = [];
  let pageToken = '';
  do {
    const res = await api.list({ ...req, pageToken });
    pages.push(res.units);
    pageToken = res.nextPageToken;
  } while (pageToken !== '');
  return pages;
}
