/**
 * What the unit arguments of a verb mean, the fleetctl way: `web`, `web.service`,
 * `./units/web.service` all name the unit `web.service` (the basename; `.service` when no unit
 * type is given). For load and start, an argument that is a local file is submitted first
 * when the cluster does not have that unit yet, and an instance such as `units/web@3.service`
 * brings its template file `units/web@.service` along the same way. `units/web` finds the
 * file `units/web.service`.
 */
import { rewriteImageLine } from '../unit/image-ref.js';
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Unit } from '../proto/flotilla/v1/records.js';
import type { UnitFile } from '../proto/flotilla/v1/units.js';
import {
  fileTooLargeMessage,
  parseUnit,
  parseUnitName,
  UNIT_FILE_MAX_BYTES,
  UNIT_TYPES,
  type UnitStateName,
} from '../unit/index.js';
import type { ApiClient } from './client.js';
import { CliError } from './errors.js';
import type { CliIo } from './verb.js';

/** fleetctl's unitNameMangle: the basename, with `.service` added when it has no unit type. */
export function unitNameOf(arg: string): string {
  const name = basename(arg);
  const dot = name.lastIndexOf('.');
  const type = dot < 0 ? '' : name.slice(dot + 1);
  return UNIT_TYPES.includes(type) ? name : `${name}.service`;
}

/** The distinct unit names of `args`, in order. */
export function unitNamesOf(args: readonly string[]): string[] {
  return [...new Set(args.map(unitNameOf))];
}

/** Whether `path` is a regular file (symlinks followed). */
export async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/**
 * Reads a unit file for the API: its name is the file's basename. A file over the API's limit
 * is refused (CliError `too-large`) before it is read, so a stray 5 GB file costs nothing.
 */
export async function readUnitFile(path: string): Promise<UnitFile> {
  let size: number;
  let contents: string;
  try {
    size = (await stat(path)).size;
    contents = size > UNIT_FILE_MAX_BYTES ? '' : await readFile(path, 'utf8');
  } catch (err) {
    const code = err instanceof Error && 'code' in err ? String(err.code) : 'unknown error';
    throw new CliError('file', `cannot read ${path} (${code})`);
  }
  if (size > UNIT_FILE_MAX_BYTES) {
    throw new CliError('too-large', `${path}: ${fileTooLargeMessage(size)}`);
  }
  return { name: basename(path), contents };
}

/** `Description=` of a unit's file; empty when it has none or does not parse. */
export function describeUnit(unit: Unit | undefined): string {
  if (unit === undefined) return '';
  try {
    return parseUnit(unit.name, unit.file).description;
  } catch {
    return '';
  }
}

/** Whether `name` is a template such as `web@.service`. */
export function isTemplateName(name: string): boolean {
  try {
    return parseUnitName(name).isTemplate;
  } catch {
    return false;
  }
}

/** A local file that may have to be submitted before its unit can be loaded or started. */
interface LocalFile {
  readonly name: string;
  readonly path: string;
}

/**
 * The local files behind `args` (fleetctl's lazyCreateUnits): the argument itself when it is
 * a file, else, for an instance, its template file in the same directory.
 */
async function localFiles(args: readonly string[]): Promise<LocalFile[]> {
  const found = new Map<string, LocalFile>();
  for (const arg of args) {
    const name = unitNameOf(arg);
    // `start units/web` finds units/web.service, as `start units/web.service` would.
    const asFile = join(dirname(arg), name);
    const path = (await isFile(arg)) ? arg : (await isFile(asFile)) ? asFile : undefined;
    if (path !== undefined && basename(path) === name) {
      if (!found.has(name)) found.set(name, { name, path });
      continue;
    }
    let template = '';
    try {
      const parsed = parseUnitName(name);
      if (parsed.isInstance) template = parsed.template;
    } catch {
      continue; // the API says what is wrong with the name
    }
    const templatePath = join(dirname(arg), template);
    if (template !== '' && !found.has(template) && (await isFile(templatePath))) {
      found.set(template, { name: template, path: templatePath });
    }
  }
  return [...found.values()];
}

/** What {@link submitMissing} submitted. */
export interface Submitted {
  /** The units it created, already at the desired state it was given (templates never are). */
  readonly created: ReadonlySet<string>;
  /** The revision of its first write; undefined when nothing had to be submitted. */
  readonly revision: bigint | undefined;
}

/**
 * Submits the local files of `args` whose units the cluster does not have yet, at `desired`
 * (templates, which are never active, first and without it); warns about local files that
 * differ from the cluster's unit of that name, which is kept (as fleetctl does). A unit
 * created here needs no second write to be started: the leader places it on its first look.
 * `allowPending` passes the API's admission of instances that cannot be placed now.
 */
export async function submitMissing(
  api: ApiClient,
  io: CliIo,
  args: readonly string[],
  desired: UnitStateName,
  allowPending = false,
): Promise<Submitted> {
  const files = await localFiles(args);
  const cluster = await api.unitsNamed(
    files.map((f) => f.name),
    { withFiles: true },
  );
  const missing: UnitFile[] = [];
  for (const local of files) {
    const file = await readUnitFile(local.path);
    const existing = cluster.get(local.name)?.status?.unit;
    if (existing === undefined) {
      missing.push(file);
    } else if (!sameUnit(existing, file)) {
      io.stderr(
        `WARNING: unit ${local.name} in the cluster differs from ${local.path}; using the cluster's (flotctl submit --replace ${local.path} updates it)\n`,
      );
    }
  }
  const created = new Set<string>();
  let revision: bigint | undefined;
  const templates = missing.filter((f) => isTemplateName(f.name));
  const units = missing.filter((f) => !isTemplateName(f.name));
  for (const [files, desiredState] of [
    [templates, ''],
    [units, desired],
  ] as const) {
    if (files.length === 0) continue;
    const res = await api.submitUnits({ files, replace: false, desiredState, allowPending });
    revision ??= res.revision;
    if (desiredState !== '') for (const name of res.created) created.add(name);
  }
  return { created, revision };
}

/**
 * Whether `file` is the cluster's `unit`. An image unit's stored file has its tag pinned
 * (`Image=host/app:1@sha256:...`): a local file naming the same tag is the same unit.
 */
function sameUnit(unit: Unit, file: UnitFile): boolean {
  if (unit.file === file.contents) return true;
  try {
    const local = parseUnit(file.name, file.contents);
    if (local.hash === unit.hash) return true;
    const image = local.container?.image;
    if (image === undefined || image.includes('@')) return false;
    const pinned = parseUnit(file.name, unit.file).container?.image ?? '';
    if (!pinned.startsWith(`${image}@`)) return false;
    const text = rewriteImageLine(file.contents, local.container?.imageLine ?? 0, image, pinned);
    return text !== undefined && parseUnit(file.name, text).hash === unit.hash;
  } catch {
    return false;
  }
}
