/**
 * Unit names, systemd's rules: characters `[A-Za-z0-9:_.@-]`, at most 256 of them, ending in
 * a known unit type. `web@.service` is a template, `web@3.service` an instance of it (the
 * instance is everything between the first `@` and the type suffix).
 */
import { UnitError } from './errors.js';
import { excerpt } from './excerpt.js';
import type { UnitName } from './model.js';

/** The unit types systemd knows; a name must end in `.` plus one of these. */
export const UNIT_TYPES: readonly string[] = [
  'service',
  'socket',
  'device',
  'mount',
  'automount',
  'swap',
  'target',
  'path',
  'timer',
  'slice',
  'scope',
];

/** Longest accepted unit name, in characters. */
export const UNIT_NAME_MAX = 256;

const TYPE_SET = new Set(UNIT_TYPES);

function isNameChar(c: number): boolean {
  return (
    (c >= 97 && c <= 122) || // a-z
    (c >= 65 && c <= 90) || // A-Z
    (c >= 48 && c <= 57) || // 0-9
    c === 58 || // :
    c === 95 || // _
    c === 46 || // .
    c === 64 || // @
    c === 45 // -
  );
}

function invalid(name: string, why: string): UnitError {
  return new UnitError('invalid-name', `invalid unit name "${excerpt(name, 80)}": ${why}`);
}

/** The characters of `s` that a unit name may not hold, each once, in order of appearance. */
function badChars(s: string): string[] {
  const seen = new Set<string>();
  for (const ch of s) {
    if (!isNameChar(ch.codePointAt(0) ?? 0) && !seen.has(ch)) seen.add(ch);
    if (seen.size >= 5) break;
  }
  return [...seen];
}

/** Parse and validate a unit name; throws `UnitError('invalid-name')` saying what is wrong. */
export function parseUnitName(name: string): UnitName {
  if (name === '') throw invalid(name, 'the name is empty');
  if (name.length > UNIT_NAME_MAX) {
    throw invalid(name, `it is ${name.length} characters long, at most ${UNIT_NAME_MAX} allowed`);
  }
  const bad = badChars(name);
  if (bad.length > 0) {
    const list = bad.map((c) => `"${excerpt(c)}"`).join(', ');
    throw invalid(
      name,
      `${list} ${bad.length === 1 ? 'is' : 'are'} not allowed (use letters, digits and ":_.@-")`,
    );
  }
  const dot = name.lastIndexOf('.');
  const type = dot < 0 ? '' : name.slice(dot + 1);
  if (!TYPE_SET.has(type)) {
    throw invalid(name, `it must end in a unit type such as ".service" (${UNIT_TYPES.join(', ')})`);
  }
  const stem = name.slice(0, dot);
  const at = stem.indexOf('@');
  const prefix = at < 0 ? stem : stem.slice(0, at);
  const instance = at < 0 ? '' : stem.slice(at + 1);
  if (prefix === '') throw invalid(name, 'the part before the type (or before "@") is empty');
  const isTemplate = at >= 0 && instance === '';
  const isInstance = at >= 0 && instance !== '';
  return {
    name,
    prefix,
    instance,
    type,
    isTemplate,
    isInstance,
    template: at >= 0 ? `${prefix}@.${type}` : '',
  };
}

/** True when `name` is a valid unit name (template, instance or plain). */
export function isValidUnitName(name: string): boolean {
  try {
    parseUnitName(name);
    return true;
  } catch (err) {
    if (err instanceof UnitError) return false;
    throw err;
  }
}

/**
 * The instance `instance` of `template`: `instanceName('web@.service', '3')` is
 * `web@3.service`. Throws `UnitError('invalid-name')` when `template` is not a template or
 * the result is not a valid name.
 */
export function instanceName(template: string, instance: string): string {
  const t = parseUnitName(template);
  if (!t.isTemplate) throw invalid(template, 'it is not a template (like "web@.service")');
  if (instance === '') throw invalid(template, 'an instance name may not be empty');
  const name = `${t.prefix}@${instance}.${t.type}`;
  parseUnitName(name);
  return name;
}
