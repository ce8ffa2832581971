/**
 * A unit file, for one concrete name, to a `UnitDefinition`: the entry point the API, the
 * planner's tests and the agent call. `parseUnit` throws the first problem;
 * `validateUnitFile` returns them all (for `flotctl verify` and for API error details).
 */
import { MAX_PROBLEMS, UnitError } from './errors.js';
import { checkUnitFileSize } from './limits.js';
import { parseContainerSection } from './container.js';
import { parseFleetSection } from './fleet.js';
import { hashSyntax } from './hash.js';
import type { UnitDefinition, UnitFileSyntax, UnitName } from './model.js';
import { parseUnitName } from './names.js';
import { HEALTH_SECTIONS, parseHealthEntries } from './health.js';
import { parseServiceSection } from './service.js';
import { parseServiceKeys } from './service-keys.js';
import { parseStartLimit, START_LIMIT_KEYS } from './start-limit.js';
import { expandSpecifiers } from './specifiers.js';
import { parseSyntaxCollecting, sectionEntries } from './syntax.js';

interface Analysis {
  readonly unit: UnitDefinition | null;
  readonly errors: readonly UnitError[];
}

/**
 * Parse `text` as the unit `name`. `name` may be an instance (`web@3.service`) while `text`
 * is its template's file: specifiers expand for the instance, and the hash is the file's.
 * Throws the first `UnitError` (an invalid name first, then by line), with `file` set to
 * `name`.
 */
export function parseUnit(name: string, text: string): UnitDefinition {
  const { unit, errors } = analyse(name, text);
  const first = errors[0];
  if (first !== undefined) throw first;
  if (unit === null) throw new UnitError('syntax', 'the unit could not be parsed', { file: name });
  return unit;
}

/**
 * Every problem found in `text` as the unit `name`: the check a file passes before it enters
 * the cluster. Name problems come first, then the rest by line (problems without a line
 * last), at most `MAX_PROBLEMS` of them. When the syntax is broken only syntax problems are
 * reported, since meaning-level ones would follow from them and only confuse. A file over
 * `UNIT_FILE_MAX_BYTES` is refused as `too-large` without being parsed. Otherwise empty
 * exactly when `parseUnit` would succeed; `parseUnit` has no size limit, so that units stored
 * before the limit existed still run.
 */
export function validateUnitFile(name: string, text: string): UnitError[] {
  const tooLarge = checkUnitFileSize(text);
  if (tooLarge !== undefined) {
    const nameErrors = analyseName(name).errors;
    return done(null, nameErrors, [tooLarge], name).errors.slice();
  }
  return [...analyse(name, text).errors];
}

/**
 * An empty file, or one that is not text (a program, an archive), said as such: parsed, it
 * would only yield a missing ExecStart= or a line of escaped garbage. Binary is judged on the
 * first line alone (a NUL byte, a control character, bytes that are not UTF-8), which a unit
 * file's section header or comment never holds; a value further down may hold any of them and
 * gets its own escaped message. Either was invalid before this check too (no ExecStart=, text
 * before the first section), but for a comment line of control characters.
 */
function checkIsText(text: string): UnitError | undefined {
  if (!/\S/.test(text)) {
    return new UnitError(
      'not-a-unit-file',
      'the file is empty: a unit file needs at least a [Service] section with an ExecStart= line',
    );
  }
  const newline = text.indexOf('\n');
  const first = text.slice(0, Math.min(newline < 0 ? text.length : newline, 1024));
  // C0 controls but tab, vertical tab, form feed, carriage return and escape; DEL; and the
  // replacement character that bytes which are not UTF-8 decode to.
  // eslint-disable-next-line no-control-regex -- control characters are what it looks for
  const bad = /[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f\ufffd]/.exec(first);
  if (bad === null) return undefined;
  const what = bad[0] === '\ufffd' ? 'bytes that are not UTF-8' : 'binary data';
  return new UnitError(
    'not-a-unit-file',
    `not a text unit file: it holds ${what}; give the unit file itself, not a program or an archive`,
    { line: 1 },
  );
}

/** A stand-in for an invalid name, so the file's other problems can still be found. */
function looseName(name: string): UnitName {
  return {
    name,
    prefix: name,
    instance: '',
    type: '',
    isTemplate: false,
    isInstance: false,
    template: '',
  };
}

/** The parsed name, or a stand-in and the problem with it. */
function analyseName(name: string): { unitName: UnitName; errors: UnitError[] } {
  try {
    return { unitName: parseUnitName(name), errors: [] };
  } catch (err) {
    if (!(err instanceof UnitError)) throw err;
    return { unitName: looseName(name), errors: [err] };
  }
}

function analyse(name: string, text: string): Analysis {
  const { unitName, errors: nameErrors } = analyseName(name);
  const notText = checkIsText(text);
  if (notText !== undefined) return done(null, nameErrors, [notText], name);
  const { syntax, errors: syntaxErrors } = parseSyntaxCollecting(text);
  if (syntaxErrors.length > 0) return done(null, nameErrors, [...syntaxErrors], name);
  const errors: UnitError[] = [];
  const description = describe(syntax, unitName);
  const containerHeader = syntax.sections.find((s) => s.name === 'Container');
  const serviceEntries = sectionEntries(syntax, 'Service');
  const parsedService = parseServiceSection(serviceEntries, unitName, errors, !!containerHeader);
  const healthEntries = HEALTH_SECTIONS.flatMap((section) => sectionEntries(syntax, section));
  const health = parseHealthEntries(healthEntries, unitName, errors);
  const limitEntries = Object.entries(START_LIMIT_KEYS).flatMap(([section, keys]) =>
    sectionEntries(syntax, section).filter((e) => keys.includes(e.key)),
  );
  const startLimit = parseStartLimit(limitEntries, errors);
  const service = {
    ...parsedService,
    ...(health !== undefined ? { health } : {}),
    ...(startLimit !== undefined ? { startLimit } : {}),
  };
  const fleet = parseFleetSection(sectionEntries(syntax, 'X-Fleet'), unitName, errors);
  const container =
    containerHeader === undefined
      ? undefined
      : parseContainerSection(
          sectionEntries(syntax, 'Container'),
          unitName,
          containerHeader.line,
          errors,
        );
  const xServiceHeader = syntax.sections.find((s) => s.name === 'X-Service');
  const xService =
    xServiceHeader === undefined
      ? undefined
      : parseServiceKeys(
          sectionEntries(syntax, 'X-Service'),
          unitName,
          xServiceHeader.line,
          errors,
        );
  if (container !== undefined) {
    const root = serviceEntries.findLast((e) => e.key === 'RootDirectory' && e.value !== '');
    if (root !== undefined) {
      errors.push(
        new UnitError(
          'invalid-combination',
          'RootDirectory= cannot be used with [Container]: the image is the root; remove one',
          { line: root.line },
        ),
      );
    }
  }
  const unit: UnitDefinition = {
    name: unitName,
    description,
    fleet,
    service,
    ...(container !== undefined ? { container } : {}),
    ...(xService !== undefined ? { xService } : {}),
    hash: hashSyntax(syntax),
    syntax,
  };
  return done(unit, nameErrors, errors, name);
}

function done(
  unit: UnitDefinition | null,
  nameErrors: readonly UnitError[],
  errors: UnitError[],
  file: string,
): Analysis {
  const order = (e: UnitError): number => (e.line === 0 ? Number.MAX_SAFE_INTEGER : e.line);
  errors.sort((a, b) => order(a) - order(b));
  const all = [...nameErrors, ...errors].slice(0, MAX_PROBLEMS).map((e) => e.withFile(file));
  return { unit: all.length === 0 ? unit : null, errors: all };
}

/** `[Unit] Description=`, the last one winning, specifiers expanded. */
function describe(syntax: UnitFileSyntax, name: UnitName): string {
  let description = '';
  for (const e of sectionEntries(syntax, 'Unit')) {
    if (e.key === 'Description') description = expandSpecifiers(e.value, name);
  }
  return description;
}
