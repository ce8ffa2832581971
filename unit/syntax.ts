/**
 * systemd's unit-file syntax, before any key has a meaning: `[Section]` headers, `Key=Value`
 * entries, `#` and `;` comment lines, a trailing backslash continuing a line. Linear in the
 * input (no backtracking regexes): a 1 MB file parses in milliseconds.
 */
import { MAX_PROBLEMS, UnitError } from './errors.js';
import { excerpt } from './excerpt.js';
import type { UnitEntry, UnitFileSyntax, UnitSection } from './model.js';

/** What `parseSyntaxCollecting` returns: the best-effort syntax and every problem found. */
export interface SyntaxResult {
  readonly syntax: UnitFileSyntax;
  readonly errors: readonly UnitError[];
}

/** Parse systemd syntax; throws the first problem as `UnitError('syntax')` with its line. */
export function parseSyntax(text: string): UnitFileSyntax {
  const { syntax, errors } = parseSyntaxCollecting(text);
  const first = errors[0];
  if (first !== undefined) throw first;
  return syntax;
}

/** Strip systemd's whitespace (space, tab, CR, LF, FF, VT) from both ends. */
export function strip(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isWs(s.charCodeAt(a))) a++;
  while (b > a && isWs(s.charCodeAt(b - 1))) b--;
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

function isWs(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13);
}

/** True when the line ends in an unescaped backslash (an odd run of them), like systemd. */
function endsInContinuation(line: string): boolean {
  let run = 0;
  for (let k = line.length - 1; k >= 0 && line.charCodeAt(k) === 92; k--) run++;
  return run % 2 === 1;
}

interface OpenSection {
  readonly name: string;
  readonly line: number;
  readonly entries: UnitEntry[];
}

/**
 * Parse and keep going after a bad line, so `flotctl verify` can report every problem.
 * Comment lines inside a continuation are skipped (as systemd does); a continuation at the
 * end of the file simply ends the value.
 */
export function parseSyntaxCollecting(text: string): SyntaxResult {
  const sections: OpenSection[] = [];
  const errors: UnitError[] = [];
  let current: OpenSection | null = null;
  let pending: string[] | null = null;
  let pendingLine = 0;
  let lineNo = 0;
  let start = 0;

  // After a broken header its entries are skipped: reporting them too would only be noise.
  let afterBadHeader = false;
  const logical = (line: string, at: number): void => {
    if (line[0] === '[') {
      current = null;
      afterBadHeader = true;
      if (line[line.length - 1] !== ']') {
        errors.push(
          syntaxError(`section header "${excerpt(line)}" is missing its closing "]"`, at),
        );
      } else if (strip(line.slice(1, -1)) === '') {
        errors.push(syntaxError('section header "[]" needs a name, e.g. [Service]', at));
      } else {
        current = { name: strip(line.slice(1, -1)), line: at, entries: [] };
        sections.push(current);
        afterBadHeader = false;
      }
      return;
    }
    if (afterBadHeader) return;
    const eq = line.indexOf('=');
    if (current === null) {
      const what = eq > 0 ? `${excerpt(strip(line.slice(0, eq)))}=` : `"${excerpt(line)}"`;
      errors.push(
        syntaxError(
          `${what} is before the first [Section] header (a unit file starts with e.g. [Unit] or [Service])`,
          at,
        ),
      );
      return;
    }
    if (eq < 0) {
      errors.push(
        syntaxError(`"${excerpt(line)}" is not a Key=Value assignment (missing "=")`, at),
      );
      return;
    }
    const key = strip(line.slice(0, eq));
    if (key === '') {
      errors.push(syntaxError(`"${excerpt(line)}" has no key before "="`, at));
      return;
    }
    current.entries.push({ key, value: strip(line.slice(eq + 1)), line: at });
  };

  while (start <= text.length && errors.length < MAX_PROBLEMS) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    lineNo++;
    const line = strip(text.slice(start, end));
    start = end + 1;
    const isComment = line[0] === '#' || line[0] === ';';
    if (pending !== null) {
      if (isComment) continue;
      if (endsInContinuation(line)) {
        pending.push(line.slice(0, -1) + ' ');
        continue;
      }
      pending.push(line);
      const joined = strip(pending.join(''));
      pending = null;
      if (joined !== '') logical(joined, pendingLine);
      continue;
    }
    if (isComment) continue;
    if (endsInContinuation(line)) {
      pending = [line.slice(0, -1) + ' '];
      pendingLine = lineNo;
      continue;
    }
    if (line !== '') logical(line, lineNo);
  }
  const rest = pending === null ? '' : strip(pending.join(''));
  if (rest !== '') logical(rest, pendingLine);
  return {
    syntax: { sections: sections.map((s): UnitSection => ({ ...s })) },
    errors,
  };
}

function syntaxError(message: string, line: number): UnitError {
  return new UnitError('syntax', message, { line });
}

/** Every entry of every section called `name` (a section may appear more than once), in order. */
export function sectionEntries(syntax: UnitFileSyntax, name: string): UnitEntry[] {
  const out: UnitEntry[] = [];
  for (const s of syntax.sections) {
    if (s.name === name) for (const e of s.entries) out.push(e);
  }
  return out;
}
