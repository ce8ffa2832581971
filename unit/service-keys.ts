/**
 * The `[X-Service]` section: what a unit serves. `Name=` (default: the unit's prefix),
 * `Port=NAME` (dynamic: the leader picks a free port of the machine's range) or
 * `Port=NAME=NUMBER` (static), several allowed; `Publish=NUMBER[:NAME]` (the routing mesh's
 * port, forwarding to the named Port=, default the first); `Tags=` words; `DrainSec=` (how long
 * the agent waits between withdrawing the unit's endpoints and stopping it, default 2 s).
 *
 * Names and tags are DNS labels (`TAG.NAME.service.flotilla`), lower case, so a name means
 * one service whatever case a resolver asks in. Unknown keys are errors, as in `[X-Fleet]`: a
 * misspelt Port= silently ignored would leave a unit without the port it binds.
 */
import { MAX_PROBLEMS, UnitError } from './errors.js';
import { excerpt } from './excerpt.js';
import type { PortRequest, ServiceDeclaration, UnitEntry, UnitName } from './model.js';
import { expandSpecifiers } from './specifiers.js';
import { didYouMean, parseTimeSpanMs, timeSpanHint } from './values.js';

/** Every `[X-Service]` key. */
export const SERVICE_KEYS: readonly string[] = ['Name', 'Port', 'Publish', 'Tags', 'DrainSec'];

/** Bounds: far above what a unit needs, low enough that a record stays small. */
export const SERVICE_LIMITS = {
  ports: 16,
  tags: 32,
  /** DrainSec= at most this (ms): a longer drain would hold every stop and update. */
  drainMs: 300_000,
} as const;

/** `DrainSec=` when unset. */
export const DEFAULT_DRAIN_MS = 2_000;

/** A DNS label in lower case: service names and tags. */
const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** A Port= name: a letter first, lower case, at most 32 characters. */
const PORT_NAME = /^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$/;
const NUMBER = /^[0-9]{1,5}$/;

interface Draft {
  name: { value: string; line: number } | undefined;
  ports: PortRequest[];
  publish: { number: number; portName: string; line: number } | undefined;
  tags: string[];
  drainMs: number;
}

function invalid(key: string, value: string, expected: string, line: number): UnitError {
  return new UnitError('invalid-value', `${key}=${excerpt(value)}: ${expected}`, { line });
}

/** A port number 1-65535, or undefined. */
function portNumber(text: string): number | undefined {
  if (!NUMBER.test(text)) return undefined;
  const n = Number(text);
  return n >= 1 && n <= 65535 ? n : undefined;
}

const LABEL_HINT =
  'lower-case letters, digits and "-", at most 63, not starting or ending with "-"';

type Handler = (d: Draft, value: string, e: UnitEntry) => void;

const HANDLERS: Readonly<Record<string, Handler>> = {
  Name(d, v, e) {
    if (!LABEL.test(v)) throw invalid(e.key, v, `a service name is ${LABEL_HINT}`, e.line);
    d.name = { value: v, line: e.line };
  },
  Port(d, v, e) {
    const eq = v.indexOf('=');
    const name = eq < 0 ? v : v.slice(0, eq);
    const numberText = eq < 0 ? '' : v.slice(eq + 1);
    if (!PORT_NAME.test(name)) {
      throw invalid(
        e.key,
        v,
        'expected NAME (a dynamic port) or NAME=NUMBER (a static one); NAME is a lower-case letter, then letters, digits and "-" (at most 32)',
        e.line,
      );
    }
    const number = eq < 0 ? 0 : portNumber(numberText);
    if (number === undefined) {
      throw invalid(e.key, v, `"${excerpt(numberText)}" is not a port number (1-65535)`, e.line);
    }
    const same = d.ports.find((p) => p.name === name);
    if (same !== undefined) {
      throw invalid(e.key, v, `port "${name}" is already declared on line ${same.line}`, e.line);
    }
    const clash = number === 0 ? undefined : d.ports.find((p) => p.number === number);
    if (clash !== undefined) {
      throw invalid(
        e.key,
        v,
        `port ${number} is already "${clash.name}" on line ${clash.line}`,
        e.line,
      );
    }
    if (d.ports.length >= SERVICE_LIMITS.ports) {
      throw invalid(e.key, v, `at most ${SERVICE_LIMITS.ports} ports per unit`, e.line);
    }
    d.ports.push({ name, number, line: e.line });
  },
  Publish(d, v, e) {
    const colon = v.indexOf(':');
    const numberText = colon < 0 ? v : v.slice(0, colon);
    const portName = colon < 0 ? '' : v.slice(colon + 1);
    const number = portNumber(numberText);
    if (number === undefined || (colon >= 0 && !PORT_NAME.test(portName))) {
      throw invalid(
        e.key,
        v,
        'expected NUMBER (1-65535) or NUMBER:NAME, NAME one of the Port= names',
        e.line,
      );
    }
    d.publish = { number, portName, line: e.line };
  },
  Tags(d, v, e) {
    for (const tag of v.split(/\s+/)) {
      if (tag === '' || d.tags.includes(tag)) continue;
      if (!LABEL.test(tag)) throw invalid(e.key, tag, `a tag is ${LABEL_HINT}`, e.line);
      if (d.tags.length >= SERVICE_LIMITS.tags) {
        throw invalid(e.key, v, `at most ${SERVICE_LIMITS.tags} tags`, e.line);
      }
      d.tags.push(tag);
    }
  },
  DrainSec(d, v, e) {
    const ms = parseTimeSpanMs(v);
    if (ms === undefined)
      throw new UnitError('invalid-value', timeSpanHint(e.key, v), { line: e.line });
    if (ms > SERVICE_LIMITS.drainMs) {
      throw invalid(e.key, v, `at most ${SERVICE_LIMITS.drainMs / 1000}s`, e.line);
    }
    d.drainMs = ms;
  },
};

function reset(d: Draft, key: string): void {
  if (key === 'Name') d.name = undefined;
  else if (key === 'Port') d.ports = [];
  else if (key === 'Publish') d.publish = undefined;
  else if (key === 'Tags') d.tags = [];
  else if (key === 'DrainSec') d.drainMs = DEFAULT_DRAIN_MS;
}

/**
 * Interpret the `[X-Service]` entries (all sections of that name, in order) for the unit
 * `unit`. `line` is the first `[X-Service]` header's, for what no one line says (no Port=, a
 * prefix that is no service name). Problems go to `errors`; undefined when there are any.
 */
export function parseServiceKeys(
  entries: readonly UnitEntry[],
  unit: UnitName,
  line: number,
  errors: UnitError[],
): ServiceDeclaration | undefined {
  const before = errors.length;
  const d: Draft = {
    name: undefined,
    ports: [],
    publish: undefined,
    tags: [],
    drainMs: DEFAULT_DRAIN_MS,
  };
  for (const e of entries) {
    if (errors.length >= MAX_PROBLEMS) break;
    const handler = Object.hasOwn(HANDLERS, e.key) ? HANDLERS[e.key] : undefined;
    if (handler === undefined) {
      errors.push(
        new UnitError(
          'unknown-key',
          `unknown [X-Service] key "${excerpt(e.key)}"${didYouMean(e.key, SERVICE_KEYS)}`,
          { line: e.line },
        ),
      );
      continue;
    }
    // Specifiers make sense in a name or a tag (Tags=%i); never in a port.
    const raw = e.key === 'Name' || e.key === 'Tags' ? expandSpecifiers(e.value, unit) : e.value;
    const value = raw.trim();
    try {
      if (value === '') reset(d, e.key);
      else handler(d, value, e);
    } catch (err) {
      if (!(err instanceof UnitError)) throw err;
      errors.push(err);
    }
  }
  const name = d.name?.value ?? unit.prefix;
  if (d.name === undefined && !LABEL.test(name)) {
    errors.push(
      new UnitError(
        'invalid-value',
        `[X-Service] has no Name= and the unit's prefix "${excerpt(name)}" is not a service name (${LABEL_HINT}): add Name=`,
        { line },
      ),
    );
  }
  const first = d.ports[0];
  if (first === undefined) {
    errors.push(
      new UnitError(
        'missing-value',
        '[X-Service] has no Port=: add Port=NAME (a port picked for each instance) or Port=NAME=NUMBER',
        { line },
      ),
    );
  }
  const publish = d.publish;
  if (publish !== undefined && publish.portName !== '' && first !== undefined) {
    if (!d.ports.some((p) => p.name === publish.portName)) {
      errors.push(
        invalid(
          'Publish',
          `${publish.number}:${publish.portName}`,
          `there is no Port=${publish.portName}; use one of ${d.ports.map((p) => p.name).join(', ')}`,
          publish.line,
        ),
      );
    }
  }
  if (errors.length > before || first === undefined) return undefined;
  return {
    name,
    ports: d.ports,
    publish: publish?.number ?? 0,
    publishPortName: publish === undefined ? '' : publish.portName || first.name,
    tags: d.tags,
    drainMs: d.drainMs,
  };
}

/** `$FLOTILLA_PORT_<NAME>`'s name for a Port= name: upper case, anything else than A-Z0-9 as `_`. */
export function portEnvName(portName: string): string {
  return `FLOTILLA_PORT_${portName.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
}
