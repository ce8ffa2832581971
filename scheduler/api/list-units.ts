/**
 * GetUnit and ListUnits. ListUnits is paged inside etcd: a page is one limited range read
 * (more only when a name glob filters some out), every page of a listing is read at the
 * revision of its first page, and the page token carries that revision and the last name
 * returned. Without a machine filter the pages walk units/; with one they walk that machine's
 * placements/<machine>/ directory, so listing one machine costs what it holds (and a Global
 * unit is shown with that machine's copy as its one instance).
 */
import type { Unit } from '../../proto/flotilla/v1/records.js';
import type {
  GetUnitRequest,
  ListUnitsRequest,
  ListUnitsResponse,
  UnitStatus,
} from '../../proto/flotilla/v1/units.js';
import { codecs, isStoreError, type KeyValue, type Store } from '../../store/index.js';
import { compileGlob, parseUnitName, UnitError, type Glob } from '../../unit/index.js';
import { ApiError, formatUnitError } from './errors.js';
import {
  knownMachines,
  lastSegment,
  prefixEnd,
  rangeAt,
  resolveMachine,
  spanEnd,
} from './reads.js';
import type { DefinitionCache } from '../snapshot.js';
import type { PlacementMachines } from './placement-machines.js';
import { addPlacements, composeStatus, extrasBySpan, recordsByKeys } from './unit-status.js';

/** Page size when the request gives none. */
export const DEFAULT_PAGE_SIZE = 1000;
/** The largest page served; larger requests are clamped to it. */
export const MAX_PAGE_SIZE = 10_000;

/** Where the next page starts: the listing's revision and the last name already returned. */
interface PageToken {
  readonly revision: bigint;
  readonly after: string;
}

/** GetUnit: NOT_FOUND when no unit of that name is submitted. */
export async function getUnit(
  store: Store,
  index: PlacementMachines,
  definitions: DefinitionCache,
  req: GetUnitRequest,
): Promise<UnitStatus> {
  try {
    parseUnitName(req.name);
  } catch (err) {
    if (err instanceof UnitError) throw new ApiError('invalid-argument', formatUnitError(err));
    throw err;
  }
  const key = store.keys.unit(req.name);
  const { kvs, revision } = await rangeAt(store, { start: key, end: spanEnd(key) });
  const kv = kvs[0];
  if (kv === undefined) throw new ApiError('not-found', `${req.name} is not a submitted unit`);
  const unit = codecs.unit.decode(kv.key, kv.value);
  const extras = await extrasBySpan(store, [req.name], revision, index.ids());
  return composeStatus(unit, extras, definitions);
}

/** ListUnits; see units.proto and this module's comment. */
export async function listUnits(
  store: Store,
  index: PlacementMachines,
  definitions: DefinitionCache,
  req: ListUnitsRequest,
): Promise<ListUnitsResponse> {
  if (req.pageSize < 0) {
    throw new ApiError('invalid-argument', `page size ${req.pageSize} is negative`);
  }
  const pageSize = req.pageSize === 0 ? DEFAULT_PAGE_SIZE : Math.min(req.pageSize, MAX_PAGE_SIZE);
  const glob = req.nameGlob === '' ? undefined : compileNameGlob(req.nameGlob);
  const token = req.pageToken === '' ? undefined : decodeToken(req.pageToken);
  try {
    const revision = token?.revision ?? (await store.revision());
    return req.machine === ''
      ? await unitsPage(store, index, definitions, { pageSize, glob, token, revision })
      : await machinePage(store, req.machine, definitions, { pageSize, glob, token, revision });
  } catch (err) {
    if (token !== undefined && isStoreError(err, 'compacted')) {
      throw new ApiError(
        'out-of-range',
        `this listing's revision ${token.revision} has been compacted: start the listing again`,
      );
    }
    throw err;
  }
}

interface PageRequest {
  readonly pageSize: number;
  readonly glob: Glob | undefined;
  readonly token: PageToken | undefined;
  readonly revision: bigint;
}

async function unitsPage(
  store: Store,
  index: PlacementMachines,
  definitions: DefinitionCache,
  page: PageRequest,
): Promise<ListUnitsResponse> {
  const { kvs, next } = await scan(store, store.keys.dir('unit'), page);
  const units: Unit[] = kvs.map((kv) => codecs.unit.decode(kv.key, kv.value));
  const extras = await extrasBySpan(
    store,
    units.map((u) => u.name),
    page.revision,
    index.ids(),
  );
  return {
    units: units.map((u) => composeStatus(u, extras, definitions)),
    nextPageToken: next === '' ? '' : encodeToken({ revision: page.revision, after: next }),
    revision: page.revision,
  };
}

async function machinePage(
  store: Store,
  query: string,
  definitions: DefinitionCache,
  page: PageRequest,
): Promise<ListUnitsResponse> {
  const machine = resolveMachine(await knownMachines(store, page.revision), query);
  const { kvs, next } = await scan(store, store.keys.placementsOn(machine), page);
  const names = kvs.map((kv) => lastSegment(kv.key));
  const { units, extras } = await recordsByKeys(store, names, page.revision, machine);
  addPlacements(extras, kvs, machine, new Set(names));
  const statuses: UnitStatus[] = [];
  for (const name of names) {
    const unit = units.get(name);
    if (unit !== undefined) statuses.push(composeStatus(unit, extras, definitions)); // else: destroyed
  }
  return {
    units: statuses,
    nextPageToken: next === '' ? '' : encodeToken({ revision: page.revision, after: next }),
    revision: page.revision,
  };
}

/**
 * Up to `pageSize` keys of `dir` whose last segment matches the glob, after the token's name,
 * at the page's revision; `next` is the name to continue after, '' at the end. The glob's
 * literal prefix narrows the range, so `web@*` reads only web@ keys.
 */
async function scan(
  store: Store,
  dir: string,
  page: PageRequest,
): Promise<{ kvs: KeyValue[]; next: string }> {
  const lower = Buffer.from(dir + (page.glob?.literalPrefix ?? ''));
  const upper = prefixEnd(lower.toString('utf8'));
  let start: Buffer = lower;
  if (page.token !== undefined) {
    const after = spanEnd(dir + page.token.after);
    if (Buffer.compare(after, start) > 0) start = after;
  }
  const matched: KeyValue[] = [];
  for (;;) {
    if (Buffer.compare(start, upper) >= 0) return { kvs: matched, next: '' };
    const res = await rangeAt(
      store,
      { start, end: upper },
      { revision: page.revision, limit: page.pageSize },
    );
    for (const kv of res.kvs) {
      if (page.glob === undefined || page.glob.test(lastSegment(kv.key))) matched.push(kv);
    }
    const lastKey = res.kvs[res.kvs.length - 1]?.key;
    if (matched.length >= page.pageSize) {
      const kvs = matched.slice(0, page.pageSize);
      const after = lastSegment(kvs[kvs.length - 1]?.key ?? '');
      const rest = matched.length > page.pageSize || res.more;
      return { kvs, next: rest ? after : '' };
    }
    if (!res.more || lastKey === undefined) return { kvs: matched, next: '' };
    start = spanEnd(lastKey);
  }
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
