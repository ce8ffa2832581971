/**
 * Environment for a unit's commands: `Environment=` assignments in the unit file, and the
 * contents of `EnvironmentFile=` files (read by the agent, parsed here so the rules live in
 * one place).
 */
import { UnitError } from './errors.js';
import { excerpt } from './excerpt.js';
import { isEnvName } from './exec.js';
import { splitWords } from './words.js';

/**
 * `Environment="A=1 2" B=2` -> `[['A', '1 2'], ['B', '2']]`. Words are split with systemd's
 * quoting and C escapes; each must be `NAME=value` with a valid name, else `UnitError`.
 */
export function parseEnvironmentAssignments(
  value: string,
  line = 0,
  key = 'Environment',
): [string, string][] {
  const pairs: [string, string][] = [];
  for (const word of splitWords(value, { escapes: 'relaxed-c', key, line })) {
    const eq = word.value.indexOf('=');
    const name = eq < 0 ? word.value : word.value.slice(0, eq);
    if (eq < 0) {
      throw new UnitError(
        'invalid-value',
        `${key}=: "${excerpt(name)}" is not an assignment (write NAME=value)`,
        { line },
      );
    }
    if (!isEnvName(name)) {
      throw new UnitError(
        'invalid-value',
        `${key}=: "${excerpt(name)}" is not a valid variable name (letters, digits and _, not starting with a digit)`,
        { line },
      );
    }
    pairs.push([name, word.value.slice(eq + 1)]);
  }
  return pairs;
}

/**
 * An `EnvironmentFile=` file's `KEY=VALUE` lines, like systemd: `#`/`;` comment lines, blank
 * lines, an optional `export ` prefix, whitespace around the key and an unquoted value
 * trimmed, `"..."` (with `\"`, `\\`, `\$`, `` \` `` and line-continuation escapes) and
 * `'...'` (literal) quoting, a trailing backslash continuing an unquoted value. Lines without
 * `=` or with an invalid name are skipped, as systemd does. Never throws.
 */
export function parseEnvironmentFile(text: string): [string, string][] {
  const pairs: [string, string][] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    // Start of a line: skip leading whitespace, comments and blank lines.
    while (i < n && (text[i] === ' ' || text[i] === '\t' || text[i] === '\r')) i++;
    if (i >= n) break;
    if (text[i] === '\n') {
      i++;
      continue;
    }
    if (text[i] === '#' || text[i] === ';') {
      i = skipLine(text, i);
      continue;
    }
    const eol = lineEnd(text, i);
    const eqInLine = text.slice(i, eol).indexOf('=');
    if (eqInLine < 0) {
      i = eol + 1;
      continue;
    }
    const eq = i + eqInLine;
    let name = text.slice(i, eq).trim();
    if (name.startsWith('export ')) name = name.slice(7).trim();
    const [value, next] = readValue(text, eq + 1);
    if (isEnvName(name)) pairs.push([name, value]);
    i = next;
  }
  return pairs;
}

function lineEnd(text: string, i: number): number {
  const e = text.indexOf('\n', i);
  return e < 0 ? text.length : e;
}

function skipLine(text: string, i: number): number {
  return lineEnd(text, i) + 1;
}

/** Read a value starting right after `=`; returns it and the index after its line. */
function readValue(text: string, start: number): [string, number] {
  let i = start;
  const n = text.length;
  while (i < n && (text[i] === ' ' || text[i] === '\t')) i++;
  const out: string[] = [];
  let pendingSpace = '';
  while (i < n && text[i] !== '\n') {
    const ch = text[i] as string;
    if (ch === "'") {
      const close = text.indexOf("'", i + 1);
      const end = close < 0 ? n : close;
      out.push(pendingSpace, text.slice(i + 1, end));
      pendingSpace = '';
      i = end + 1;
    } else if (ch === '"') {
      i = readDoubleQuoted(text, i + 1, (s) => out.push(pendingSpace, s));
      pendingSpace = '';
    } else if (ch === '\\') {
      const next = text[i + 1];
      if (next === '\n' || next === undefined) {
        i += 2;
        continue;
      }
      out.push(pendingSpace, next);
      pendingSpace = '';
      i += 2;
    } else if (ch === ' ' || ch === '\t' || ch === '\r') {
      // Whitespace inside an unquoted value is kept; trailing whitespace is dropped.
      pendingSpace += ch;
      i++;
    } else {
      out.push(pendingSpace, ch);
      pendingSpace = '';
      i++;
    }
  }
  return [out.join(''), i + 1];
}

/** Read a `"..."` body from `i` (after the quote), emitting its text; returns the index after it. */
function readDoubleQuoted(text: string, start: number, emit: (s: string) => void): number {
  let i = start;
  const parts: string[] = [];
  while (i < text.length && text[i] !== '"') {
    const ch = text[i] as string;
    if (ch === '\\') {
      const next = text[i + 1];
      if (next === '\n') {
        i += 2;
        continue;
      }
      if (next === '"' || next === '\\' || next === '$' || next === '`') {
        parts.push(next);
        i += 2;
        continue;
      }
    }
    parts.push(ch);
    i++;
  }
  emit(parts.join(''));
  return i + 1;
}
