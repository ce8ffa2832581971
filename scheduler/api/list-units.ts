/**
 * GetUnit and ListUnits, from the replica's mirror. A page walks the mirror's units in name
 * order from the token's name (or, with a machine filter, that machine's placements in name
 * order, so listing one machine costs what it holds, and a Global unit is shown with that
 * machine's copy as its one instance). Each page is read at one revision, which it reports;
 * the token carries the last name returned, so a listing never repeats or skips a unit that
 * exists throughout it. A page holds at most the size asked for, and fewer when composing it
 * took its time budget (reads.ts, PAGE_BUDGET_MS).
 */
import type { HealthCheckResult, Placement, UnitState } from '../../proto/flotilla/v1/records.js';
import type {
  GetUnitRequest,
  ListUnitsRequest,
  ListUnitsResponse,
  UnitStatus,
} from '../../proto/flotilla/v1/units.js';
import { compareNames, type SortedMap } from '../../store/index.js';
import { compileGlob, parseUnitName, UnitError, type Glob } from '../../unit/index.js';
import type { Visible } from '../gate/interceptors.js';
import { ApiError, formatUnitError } from '../gate/errors.js';
import {
  corruptRecordWarnings,
  lostMachineWarnings,
  knownMachines,
  fresh,
  freshOrBehind,
  pageClock,
  resolveMachine,
  type ApiCluster,
} from './reads.js';
import { extrasOf, statusWithAddresses, type UnitExtras } from './unit-status.js';
import { narrowUnscheduled, readable } from '../gate/narrow.js';
import type { Rights } from '../gate/rights.js';

/** Page size when the request gives none. */
export const DEFAULT_PAGE_SIZE = 1000;
/** The largest page served; larger requests are clamped to it. */
export const MAX_PAGE_SIZE = 10_000;
/** The most names one ListUnits may give. */
export const MAX_NAMES = 10_000;

/**
 * Where the next page starts: the last name already returned (and the revision of the page
 * that handed the token out, kept for the token's format; pages are read at their own).
 */
interface PageToken {
  readonly revision: bigint;
  readonly after: string;
}

/** GetUnit: NOT_FOUND when no unit of that name is submitted. O(the unit's placements). */
export async function getUnit(
  cluster: ApiCluster,
  req: GetUnitRequest,
  rights?: Rights,
): Promise<UnitStatus> {
  try {
    parseUnitName(req.name);
  } catch (err) {
    if (err instanceof UnitError) throw new ApiError('invalid-argument', formatUnitError(err));
    throw err;
  }
  await fresh(cluster);
  const entry = cluster.mirror.units.get(req.name);
  if (entry === undefined) throw new ApiError('not-found', `${req.name} is not a submitted unit`);
  return statusWithAddresses(
    cluster.mirror,
    entry.value,
    narrowed(extrasOf(cluster.mirror, req.name), rights),
    cluster.definitions,
  );
}

/** ListUnits; see units.proto and this module's comment. */
export async function listUnits(
  cluster: ApiCluster,
  req: ListUnitsRequest,
  visible?: Visible,
  rights?: Rights,
): Promise<ListUnitsResponse> {
  if (req.pageSize < 0) {
    throw new ApiError('invalid-argument', `page size ${req.pageSize} is negative`);
  }
  const pageSize = req.pageSize === 0 ? DEFAULT_PAGE_SIZE : Math.min(req.pageSize, MAX_PAGE_SIZE);
  if (req.names.length > MAX_NAMES) {
    throw new ApiError(
      'invalid-argument',
      `${req.names.length} names given; a listing takes at most ${MAX_NAMES}: ask in parts`,
    );
  }
  const glob = req.nameGlob === '' ? undefined : compileNameGlob(req.nameGlob);
  const token = req.pageToken === '' ? undefined : decodeToken(req.pageToken);
  const { mirror, definitions } = cluster;
  // A listing by names is what flotctl reads around a stop or destroy: like those recovery
  // writes, it is answered while the mirror lags etcd, with a warning (reads.ts).
  const behind =
    req.names.length > 0 ? (await freshOrBehind(cluster)).warning : await fresh(cluster);
  const revision = mirror.revision;
  const machine =
    req.machine === '' ? undefined : resolveMachine(knownMachines(mirror), req.machine);
  const walked = machine === undefined ? mirror.units : mirror.placementsOn.get(machine);
  const source = walked !== undefined && req.names.length > 0 ? named(req.names, walked) : walked;
  const scanned =
    source === undefined
      ? { names: [], next: undefined }
      : scan(source, { pageSize, glob, visible, after: token?.after });
  const { names } = scanned;
  const units: UnitStatus[] = [];
  const spent = pageClock();
  let next = scanned.next;
  for (const [i, name] of names.entries()) {
    const unit = mirror.units.get(name)?.value;
    if (unit !== undefined) {
      // (undefined: placed, but destroyed meanwhile)
      const extras = narrowed(extrasOf(mirror, name, machine), rights);
      const status = statusWithAddresses(mirror, unit, extras, definitions);
      if (req.brief) units.push(briefStatus(status));
      else units.push(req.withFiles ? status : { ...status, unit: { ...unit, file: '' } });
    }
    if (i < names.length - 1 && spent()) {
      next = name; // the page took its budget: the rest comes on the next
      break;
    }
  }
  return {
    units,
    nextPageToken: next === undefined ? '' : encodeToken({ revision, after: next }),
    revision,
    warnings: [
      ...(behind === undefined ? [] : [behind]),
      ...corruptRecordWarnings(mirror),
      ...(machine === undefined || token !== undefined
        ? []
        : lostMachineWarnings(mirror, machine, Date.now())),
    ],
  };
}

/**
 * `status` with only what a summary row needs (ListUnitsRequest.brief): a few small objects
 * per unit, its records' other fields left at their defaults.
 */
export function briefStatus(status: UnitStatus): UnitStatus {
  const { unit, placement, state } = status;
  return {
    unit: unit && { name: unit.name, file: '', hash: '', desiredState: unit.desiredState },
    placement: placement && briefPlacement(placement),
    state: state && briefState(state),
    unscheduled: undefined,
    currentState: status.currentState,
    instances:
      status.instances.length === 0
        ? status.instances
        : status.instances.map((copy) => ({
            placement: copy.placement && briefPlacement(copy.placement),
            state: copy.state && briefState(copy.state),
            currentState: copy.currentState,
          })),
    addresses: status.addresses,
    global: status.global,
    image: '',
  };
}

function briefPlacement({ machine }: Placement): Placement {
  return { unit: '', machine, hash: '', epoch: 0n, desiredState: '', ports: [] };
}

function briefState({
  machine,
  loadState,
  activeState,
  subState,
  restarts,
  health,
}: UnitState): UnitState {
  return {
    name: '',
    machine,
    hash: '',
    loadState,
    activeState,
    subState,
    containerId: '',
    pid: 0,
    exitStatus: 0,
    exitSignal: '',
    restarts,
    since: 0n,
    message: '',
    image: '',
    health,
    healthFailures: 0,
    healthChecks: NO_CHECKS,
    restartReason: '',
  };
}

/** The empty health check list of every brief state (never changed). */
const NO_CHECKS: HealthCheckResult[] = [];

/** What a page walks: names in order from a point, as a {@link SortedMap} gives them. */
interface NameSource {
  entries(from?: string): Iterable<[string, unknown]>;
}

/** The given names that `source` holds, in name order: O(k log k) for k names. */
function named(given: readonly string[], source: SortedMap<unknown>): NameSource {
  const sorted = [...new Set(given)].filter((n) => source.has(n)).sort(compareNames);
  return {
    *entries(from = '') {
      let i = 0;
      while (i < sorted.length && (sorted[i] ?? '') < from) i++;
      for (; i < sorted.length; i++) yield [sorted[i] ?? '', undefined];
    },
  };
}

/**
 * Up to `pageSize` names of `source` (a sorted map keyed by unit name, or the named units) that match the glob,
 * after `after`; `next` is the name to continue after when more may follow. The glob's
 * literal prefix is where the walk starts and ends, so `web@*` walks only web@ names.
 */
function scan(
  source: NameSource,
  page: {
    pageSize: number;
    glob: Glob | undefined;
    /** Only these (an auth policy's narrowing); undefined: all. */
    visible: Visible | undefined;
    after: string | undefined;
  },
): { names: string[]; next: string | undefined } {
  const prefix = page.glob?.literalPrefix ?? '';
  const from = page.after !== undefined && page.after > prefix ? page.after : prefix;
  const names: string[] = [];
  for (const [name] of source.entries(from)) {
    if (name === page.after) continue;
    if (!name.startsWith(prefix)) break;
    if (page.glob !== undefined && !page.glob.test(name)) continue;
    if (page.visible !== undefined && !page.visible(name)) continue;
    if (names.length === page.pageSize) return { names, next: names[names.length - 1] };
    names.push(name);
  }
  return { names, next: undefined };
}

function compileNameGlob(pattern: string): Glob {
  try {
    return compileGlob(pattern);
  } catch (err) {
    if (err instanceof UnitError) {
      throw new ApiError('invalid-argument', `name glob ${pattern}: ${err.message}`);
    }
    throw err;
  }
}

function encodeToken(token: PageToken): string {
  const json = JSON.stringify({ v: 1, r: token.revision.toString(), a: token.after });
  return Buffer.from(json, 'utf8').toString('base64url');
}

function decodeToken(raw: string): PageToken {
  const bad = (): ApiError =>
    new ApiError('invalid-argument', 'page token is not one this API handed out');
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
  } catch {
    throw bad();
  }
  if (typeof parsed !== 'object' || parsed === null) throw bad();
  const { v, r, a } = parsed as { v?: unknown; r?: unknown; a?: unknown };
  if (v !== 1 || typeof r !== 'string' || !/^[1-9][0-9]*$/.test(r) || typeof a !== 'string') {
    throw bad();
  }
  return { revision: BigInt(r), after: a };
}

/** Under a policy, reasons name only units the caller may read (gate/narrow.ts). */
function narrowed(extras: UnitExtras, rights: Rights | undefined): UnitExtras {
  if (rights === undefined || extras.unscheduled === undefined) return extras;
  return { ...extras, unscheduled: narrowUnscheduled(extras.unscheduled, readable(rights)) };
}
