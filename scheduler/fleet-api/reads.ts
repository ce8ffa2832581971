/**
 * fleet's GET routes, served from the replica's mirror after a consistent read ({@link fresh}:
 * a client reads its own writes, through any replica). A page walks the mirror's sorted
 * units or machines from its token, so it costs what it returns (plus the units without a
 * state it steps over, for `/state`), whatever the size of the cluster.
 */
import type { Visible } from '../gate/interceptors.js';
import { ApiError } from '../gate/errors.js';
import { fresh, type ApiCluster } from '../api/reads.js';
import { fleetMachine, isGlobal, unitJson, unitStates, type FleetModel } from './model.js';
import { Page, pageToken, type PageToken } from './paging.js';

/** What a read answers: a status and the JSON body. */
export interface FleetAnswer {
  readonly status: number;
  readonly body?: string;
}

/** The model over a cluster. */
export type ReadContext = FleetModel & {
  readonly cluster: ApiCluster;
  /** Entries a page holds at most (paging.ts's PAGE_ENTRIES). */
  readonly pageEntries: number;
};

const notFound = (what: string): ApiError => new ApiError('not-found', `${what} does not exist`);

/** GET /units: every unit the caller may see, in name order, a page at a time. */
export async function listUnits(
  ctx: ReadContext,
  query: URLSearchParams,
  visible: Visible | undefined,
): Promise<FleetAnswer> {
  const token = pageToken(query, 'units');
  await fresh(ctx.cluster);
  const page = new Page(ctx.pageEntries);
  let next: PageToken | undefined;
  let last: string | undefined;
  for (const [name, entry] of ctx.mirror.units.entries(token?.after)) {
    if (name === token?.after) continue;
    if (visible !== undefined && !visible(name)) continue;
    if (page.full) {
      next = last === undefined ? undefined : { listing: 'units', after: last };
      break;
    }
    page.add(unitJson(ctx, entry.value));
    last = name;
  }
  return { status: 200, body: page.body('units', next) };
}

/** GET /units/{name}: 404 "unit does not exist" (fleet's words) for an unknown name. */
export async function getUnit(ctx: ReadContext, name: string): Promise<FleetAnswer> {
  await fresh(ctx.cluster);
  const entry = ctx.mirror.units.get(name);
  if (entry === undefined) throw notFound('unit');
  return { status: 200, body: unitJson(ctx, entry.value) };
}

/**
 * GET /state: one row per unit a machine reports on (per machine for a Global unit's copies),
 * by name then machine id; `unitName` and `machineID` filter as in fleet.
 */
export async function listStates(
  ctx: ReadContext,
  query: URLSearchParams,
  visible: Visible | undefined,
): Promise<FleetAnswer> {
  const token = pageToken(query, 'state');
  const onlyUnit = query.get('unitName') ?? '';
  const onlyMachine = query.get('machineID') ?? '';
  await fresh(ctx.cluster);
  const page = new Page(ctx.pageEntries);
  let next: PageToken | undefined;
  const from = onlyUnit !== '' ? onlyUnit : token?.after;
  walk: for (const [name, entry] of ctx.mirror.units.entries(from)) {
    if (onlyUnit !== '' && name !== onlyUnit) break;
    if (token !== undefined && name < token.after) continue;
    if (visible !== undefined && !visible(name)) continue;
    for (const row of unitStates(ctx, entry.value)) {
      const machine = row.machineID ?? '';
      if (token !== undefined && name === token.after && machine <= (token.machine ?? '')) continue;
      if (onlyMachine !== '' && machine !== onlyMachine) continue;
      if (page.full) break walk;
      page.add(JSON.stringify(row));
      next = { listing: 'state', after: name, machine };
    }
  }
  // `next` is the last row added; it is handed out only when a row was left for the next page.
  return { status: 200, body: page.body('states', page.full ? next : undefined) };
}

/**
 * GET /state/{name}: the unit's state (a Global unit's first copy). A Global unit that should
 * run but no machine reports yet answers a row without systemd states rather than 404:
 * fleetctl's `start` dereferences what it gets and would panic on a 404.
 */
export async function getState(ctx: ReadContext, name: string): Promise<FleetAnswer> {
  await fresh(ctx.cluster);
  const entry = ctx.mirror.units.get(name);
  if (entry === undefined) throw notFound('unit state');
  const [row] = unitStates(ctx, entry.value);
  if (row !== undefined) return { status: 200, body: JSON.stringify(row) };
  if (entry.value.desiredState === 'launched' && isGlobal(ctx, entry.value)) {
    return { status: 200, body: JSON.stringify({ name, hash: ctx.files.of(entry.value).hash }) };
  }
  throw notFound('unit state');
}

/** GET /machines: the live machines in id order. */
export async function listMachines(ctx: ReadContext, query: URLSearchParams): Promise<FleetAnswer> {
  const token = pageToken(query, 'machines');
  await fresh(ctx.cluster);
  const page = new Page(ctx.pageEntries);
  let next: PageToken | undefined;
  let last: string | undefined;
  for (const [id, entry] of ctx.mirror.machines.entries(token?.after)) {
    if (id === token?.after) continue;
    if (page.full) {
      next = last === undefined ? undefined : { listing: 'machines', after: last };
      break;
    }
    page.add(JSON.stringify(fleetMachine(id, entry.value, ctx.mirror.configs.get(id)?.value)));
    last = id;
  }
  return { status: 200, body: page.body('machines', next) };
}
