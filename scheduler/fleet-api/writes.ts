/**
 * fleet's PUT and DELETE of `/units/{name}`, with fleet's answers (api/units.go `set`,
 * `destroy`), each carried out by the gRPC API's own handler behind the same gate: a new unit
 * or new options are SubmitUnits (the options stored as the unit file fleet's serialization
 * makes of them, so they read back verbatim and hash alike), a desired state alone is
 * SetDesiredState, a delete is DestroyUnits. Nothing here writes to etcd itself.
 *
 * fleet's rules, in its order: a Content-Type other than application/json is 415; a body that
 * is not a Unit, a name that differs from the URL's or is invalid, is 400; a new unit without
 * options is 409, with invalid options 400, else 201; an existing unit sent with options whose
 * hash differs is replaced (201, its desired state the body's or `inactive`, as fleet's
 * CreateUnit does); otherwise a desired state is required (409) and a template may only be
 * `inactive` (400 "cannot activate template"), then 204.
 *
 * A unit that cannot be placed now is accepted and waits, as in fleet (the gRPC API's
 * `allow_pending`); the template's instance ceiling still applies.
 */
import type { Rights } from '../gate/rights.js';
import type { SubmitUnitsRequest } from '../../proto/flotilla/v1/units.js';
import { parseUnitName, UnitError } from '../../unit/index.js';
import { ApiError, formatUnitError } from '../gate/errors.js';
import { fresh, type ApiCluster } from '../api/reads.js';
import { submitUnits } from '../api/submit.js';
import { destroyUnits, setDesiredState } from '../api/desired.js';
import type { FleetAnswer } from './reads.js';
import type { FleetFiles } from './fleet-files.js';
import { fleetHash, serializeOptions, unstorableOptions, type UnitOption } from './unit-options.js';

/** Runs a handler as gRPC API method `method` through the gate (identify, authorize, audit). */
export type Gated = <T>(
  method: string,
  request: unknown,
  run: (rights: Rights | undefined) => Promise<T>,
) => Promise<T>;

/** What the writes need. */
export interface WriteContext {
  readonly cluster: ApiCluster;
  readonly files: FleetFiles;
  readonly gated: Gated;
}

/** A PUT body, checked field by field. */
interface UnitBody {
  readonly name: string;
  readonly options: UnitOption[];
  readonly desiredState: string;
}

const STATES: readonly string[] = ['inactive', 'loaded', 'launched'];

const bad = (message: string): ApiError => new ApiError('invalid-argument', message);

/** PUT /units/{name}. */
export async function putUnit(
  ctx: WriteContext,
  item: string,
  contentTypes: readonly string[],
  rawBody: string,
): Promise<FleetAnswer> {
  if (contentTypes.length !== 1) {
    throw new FleetHttpError(415, `expected 1 Content-Type, got ${contentTypes.length}`);
  }
  if ((contentTypes[0] ?? '').split(';', 1)[0]?.trim() !== 'application/json') {
    throw new FleetHttpError(415, 'only acceptable Content-Type is application/json');
  }
  const body = parseBody(rawBody, item);
  if (body.name !== item) {
    throw bad(`name in URL "${item}" differs from unit name in request body "${body.name}"`);
  }
  const name = checkName(body.name);
  if (body.desiredState !== '' && !STATES.includes(body.desiredState)) {
    throw bad(`desiredState "${body.desiredState}" is not one of ${STATES.join(', ')}`);
  }
  await fresh(ctx.cluster);
  const existing = ctx.cluster.mirror.units.get(body.name)?.value;
  const replaces =
    existing !== undefined &&
    body.options.length > 0 &&
    fleetHash(body.options) !== ctx.files.of(existing).hash;
  if (existing === undefined || replaces) {
    if (body.options.length === 0) {
      throw new FleetHttpError(409, 'unit does not exist and options field empty');
    }
    const why = unstorableOptions(body.options);
    if (why !== undefined) throw bad(why);
    const desired = body.desiredState === '' ? 'inactive' : body.desiredState;
    if (name.isTemplate && desired !== 'inactive') throw cannotActivate(body.name);
    const request: SubmitUnitsRequest = {
      files: [{ name: body.name, contents: serializeOptions(body.options) }],
      desiredState: desired,
      replace: replaces,
      allowPending: true,
    };
    await ctx.gated('Units.SubmitUnits', request, (rights) =>
      submitUnits(ctx.cluster, request, rights),
    );
    return { status: 201 };
  }
  if (body.desiredState === '') {
    throw new FleetHttpError(409, 'must provide DesiredState to update existing unit');
  }
  if (name.isTemplate && body.desiredState !== 'inactive') throw cannotActivate(body.name);
  const request = { names: [body.name], desiredState: body.desiredState, allowPending: true };
  await ctx.gated('Units.SetDesiredState', request, (rights) =>
    setDesiredState(ctx.cluster, request, rights),
  );
  return { status: 204 };
}

/** DELETE /units/{name}: 204, or 404 "unit does not exist". */
export async function deleteUnit(ctx: WriteContext, item: string): Promise<FleetAnswer> {
  checkName(item);
  await fresh(ctx.cluster);
  if (!ctx.cluster.mirror.units.has(item)) throw new ApiError('not-found', 'unit does not exist');
  const request = { names: [item] };
  await ctx.gated('Units.DestroyUnits', request, () => destroyUnits(ctx.cluster, request));
  return { status: 204 };
}

/** An answer with a status of fleet's own that no API error code maps to (409, 415). */
export class FleetHttpError extends Error {
  override readonly name = 'FleetHttpError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function cannotActivate(name: string): ApiError {
  return bad(
    `cannot activate template "${name}": start its instances instead (e.g. ${name.replace('@.', '@1.')})`,
  );
}

function checkName(name: string): ReturnType<typeof parseUnitName> {
  try {
    return parseUnitName(name);
  } catch (err) {
    if (err instanceof UnitError) throw bad(formatUnitError(err));
    throw err;
  }
}

/** The body as a Unit: JSON, an object, each field of the right type; the name defaults to the URL's. */
function parseBody(raw: string, item: string): UnitBody {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw bad(`unable to decode body: ${why.slice(0, 200)}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw bad('unable to decode body: it is not a JSON object (a fleet Unit)');
  }
  const o = parsed as Record<string, unknown>;
  const name = optionalString(o, 'name') || item;
  const desiredState = optionalString(o, 'desiredState');
  const options: UnitOption[] = [];
  const list = o['options'];
  if (list !== undefined && list !== null) {
    if (!Array.isArray(list)) throw bad('unable to decode body: options is not a list');
    list.forEach((entry: unknown, i) => {
      if (typeof entry !== 'object' || entry === null) {
        throw bad(`unable to decode body: options[${i}] is not an object`);
      }
      const e = entry as Record<string, unknown>;
      options.push({
        section: optionalString(e, 'section', `options[${i}].`),
        name: optionalString(e, 'name', `options[${i}].`),
        value: optionalString(e, 'value', `options[${i}].`),
      });
    });
  }
  return { name, options, desiredState };
}

function optionalString(o: Record<string, unknown>, field: string, where = ''): string {
  const v = o[field];
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw bad(`unable to decode body: ${where}${field} is not a string`);
  return v;
}
