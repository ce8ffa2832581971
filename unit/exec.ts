/**
 * Exec lines (`ExecStart=` and friends) with systemd's rules, and the runtime expansion of
 * `$VAR`/`${VAR}` the agent performs when a command runs.
 *
 * Program path: absolute, or (like systemd >= 239) a bare name such as `sleep` that the
 * agent resolves against `PATH`. A relative path with a slash (`bin/app`, `./app`) is refused
 * because it would depend on the agent's working directory.
 */
import { UnitError } from './errors.js';
import { excerpt } from './excerpt.js';
import type { ExecCommand } from './model.js';
import { splitWords, type Word } from './words.js';

/**
 * Parse one exec line into commands. Usually one; a lone unquoted `;` separates several
 * (`\;` is a literal semicolon). Prefixes `-` (ignore failure), `@` (the next word is
 * argv[0]) and `+` (privileged) may come in any order before the program.
 */
export function parseExecLine(key: string, value: string, line: number): ExecCommand[] {
  const words = splitWords(value, { escapes: 'c', key, line });
  const groups: Word[][] = [[]];
  for (const w of words) {
    if (w.bare && w.value === ';') groups.push([]);
    else groups.at(-1)?.push(w);
  }
  const commands: ExecCommand[] = [];
  for (const group of groups) {
    if (group.length === 0 && groups.length > 1) continue;
    commands.push(parseCommand(key, group, line));
  }
  return commands;
}

function parseCommand(key: string, words: readonly Word[], line: number): ExecCommand {
  const fail = (why: string): UnitError =>
    new UnitError('invalid-value', `${key}=: ${why}`, { line });
  const first = words[0];
  if (first === undefined) throw fail('no command given');
  let program = first.value;
  let ignoreFailure = false;
  let privileged = false;
  let argv0 = false;
  let k = 0;
  for (; k < program.length; k++) {
    const ch = program[k];
    if (ch === '-' && !ignoreFailure) ignoreFailure = true;
    else if (ch === '+' && !privileged) privileged = true;
    else if (ch === '@' && !argv0) argv0 = true;
    else if (ch === '!' || ch === ':')
      throw fail(`the "${ch}" prefix is not supported by Flotilla`);
    else break;
  }
  program = program.slice(k);
  let rest = words.slice(1).map((w) => w.value);
  if (program === '') {
    // systemd allows the prefixes as a separate word only when none follows; be explicit.
    throw fail(`"${excerpt(first.value)}" has prefixes but no program`);
  }
  if (program.includes('$')) {
    throw fail(
      `the program "${excerpt(program)}" may not contain a variable; use it in the arguments`,
    );
  }
  if (!program.startsWith('/') && program.includes('/')) {
    throw fail(
      `the program "${excerpt(program)}" must be an absolute path or a bare name found in PATH`,
    );
  }
  let argv: string[];
  if (argv0) {
    const name = rest[0];
    if (name === undefined) throw fail(`"@" needs a word after the program to use as argv[0]`);
    rest = rest.slice(1);
    argv = [name, ...rest];
  } else {
    argv = [program, ...rest];
  }
  return { path: program, argv, ignoreFailure, privileged, line };
}

const NAME_START = /[A-Za-z_]/;
const NAME_CHAR = /[A-Za-z0-9_]/;

/** True for a valid environment variable name (`[A-Za-z_][A-Za-z0-9_]*`). */
export function isEnvName(name: string): boolean {
  if (name === '' || !NAME_START.test(name[0] as string)) return false;
  for (let i = 1; i < name.length; i++) if (!NAME_CHAR.test(name[i] as string)) return false;
  return true;
}

/**
 * The argv to run, with systemd's semantics: a word that is exactly `$VAR` becomes the
 * variable's value split on whitespace (zero or more arguments); `${VAR}` is substituted
 * inside any word (`${VAR:-default}` and `${VAR:+alternative}` too); `$$` is a literal `$`;
 * an unset variable expands to nothing; any other `$` is kept as written.
 */
export function expandExecArgv(cmd: ExecCommand, env: ReadonlyMap<string, string>): string[] {
  const out: string[] = [];
  for (const word of cmd.argv) {
    if (word.length > 1 && word[0] === '$' && isEnvName(word.slice(1))) {
      for (const part of (env.get(word.slice(1)) ?? '').split(/[ \t\n\r\f\v]+/)) {
        if (part !== '') out.push(part);
      }
    } else {
      out.push(substitute(word, env));
    }
  }
  return out;
}

/** Replace `${VAR}`, `${VAR:-x}`, `${VAR:+x}` and `$$` in one word. */
function substitute(word: string, env: ReadonlyMap<string, string>): string {
  if (!word.includes('$')) return word;
  const out: string[] = [];
  let i = 0;
  while (i < word.length) {
    const d = word.indexOf('$', i);
    if (d < 0) break;
    out.push(word.slice(i, d));
    if (word[d + 1] === '$') {
      out.push('$');
      i = d + 2;
      continue;
    }
    const close = word[d + 1] === '{' ? word.indexOf('}', d + 2) : -1;
    if (close < 0) {
      out.push('$');
      i = d + 1;
      continue;
    }
    const inner = word.slice(d + 2, close);
    const repl = lookup(inner, env);
    if (repl === undefined) {
      out.push(word.slice(d, close + 1));
    } else {
      out.push(repl);
    }
    i = close + 1;
  }
  out.push(word.slice(i));
  return out.join('');
}

/** The value of `${inner}`, or undefined when `inner` is not a reference (kept as written). */
function lookup(inner: string, env: ReadonlyMap<string, string>): string | undefined {
  const colon = inner.indexOf(':');
  if (colon < 0) return isEnvName(inner) ? (env.get(inner) ?? '') : undefined;
  const name = inner.slice(0, colon);
  const op = inner[colon + 1];
  const arg = inner.slice(colon + 2);
  if (!isEnvName(name)) return undefined;
  const value = env.get(name) ?? '';
  if (op === '-') return value === '' ? arg : value;
  if (op === '+') return value === '' ? '' : arg;
  return undefined;
}
