/**
 * systemd's word splitting (`extract_first_word`): whitespace separates words, double and
 * single quotes group (anywhere in a word, as in `a"b c"d`), a backslash escapes. Shared by
 * exec lines, `Environment=` and fleet's quoted multi-value lines (`"a=b" "c=d"`).
 */
import { UnitError } from './errors.js';
import { excerpt } from './excerpt.js';

/** One word after unquoting and unescaping. */
export interface Word {
  readonly value: string;
  /** True when the word was written without quotes or backslashes (`;` vs `\;` or `";"`). */
  readonly bare: boolean;
}

/** How backslashes are read. */
export interface SplitOptions {
  /**
   * `c`: C escapes (`\n`, `\t`, `\x41`, `\101`, `\u00e9`, `\s`...), an unknown escape is an
   * error (exec lines). `relaxed-c`: C escapes, an unknown one keeps its backslash
   * (`Environment=`). `plain`: a backslash makes the next character literal (fleet values).
   */
  readonly escapes: 'c' | 'relaxed-c' | 'plain';
  /** Names the value in error messages, e.g. `ExecStart`. */
  readonly key: string;
  readonly line: number;
}

const SPACE = new Set([' ', '\t', '\n', '\r', '\f', '\v']);

/** True for the whitespace systemd separates words on. */
export function isSpace(ch: string | undefined): boolean {
  return ch !== undefined && SPACE.has(ch);
}

/** Split `value` into words. Throws `UnitError('invalid-value')` on an unclosed quote. */
export function splitWords(value: string, options: SplitOptions): Word[] {
  const words: Word[] = [];
  let i = 0;
  const n = value.length;
  while (i < n) {
    while (i < n && isSpace(value[i])) i++;
    if (i >= n) break;
    let quote: string | null = null;
    let bare = true;
    const parts: string[] = [];
    for (; i < n; i++) {
      const ch = value[i] as string;
      if (quote === null && isSpace(ch)) break;
      if (ch === '\\') {
        bare = false;
        const [text, used] = unescapeAt(value, i, options);
        parts.push(text);
        i += used - 1;
      } else if (quote !== null && ch === quote) {
        quote = null;
      } else if (quote === null && (ch === '"' || ch === "'")) {
        quote = ch;
        bare = false;
      } else {
        parts.push(ch);
      }
    }
    if (quote !== null) {
      throw new UnitError(
        'invalid-value',
        `${options.key}= has an unclosed ${quote === '"' ? 'double' : 'single'} quote`,
        { line: options.line },
      );
    }
    words.push({ value: parts.join(''), bare });
  }
  return words;
}

const SIMPLE_ESCAPES: Readonly<Record<string, string>> = {
  a: '\x07',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
  v: '\v',
  s: ' ',
  '\\': '\\',
  '"': '"',
  "'": "'",
  ';': ';',
  ' ': ' ',
  '\t': '\t',
};

/** Read the escape starting at `value[i] === '\\'`: the text it stands for and its length. */
function unescapeAt(value: string, i: number, options: SplitOptions): [string, number] {
  const next = value[i + 1];
  if (next === undefined) {
    if (options.escapes === 'plain' || options.escapes === 'relaxed-c') return ['\\', 1];
    throw new UnitError('invalid-value', `${options.key}= ends in a lone backslash`, {
      line: options.line,
    });
  }
  if (options.escapes === 'plain') return [next, 2];
  const simple = SIMPLE_ESCAPES[next];
  if (simple !== undefined) return [simple, 2];
  const numeric = numericEscape(value, i);
  if (numeric !== null) return numeric;
  if (options.escapes === 'relaxed-c') return ['\\' + next, 2];
  throw new UnitError(
    'invalid-value',
    `${options.key}= has an unknown escape "\\${excerpt(String.fromCodePoint(value.codePointAt(i + 1) ?? 0))}" (write "\\\\" for a backslash, "$$" for a dollar)`,
    { line: options.line },
  );
}

const HEX = /^[0-9a-fA-F]+$/;
const OCTAL = /^[0-3][0-7][0-7]$/;

/** `\xHH`, `\uHHHH`, `\UHHHHHHHH`, `\NNN` (octal); NUL and non-characters are refused. */
function numericEscape(value: string, i: number): [string, number] | null {
  const kind = value[i + 1];
  let digits = '';
  let radix = 16;
  if (kind === 'x') digits = value.slice(i + 2, i + 4);
  else if (kind === 'u') digits = value.slice(i + 2, i + 6);
  else if (kind === 'U') digits = value.slice(i + 2, i + 10);
  else {
    digits = value.slice(i + 1, i + 4);
    if (!OCTAL.test(digits)) return null;
    radix = 8;
  }
  const want = kind === 'x' ? 2 : kind === 'u' ? 4 : kind === 'U' ? 8 : 3;
  if (digits.length !== want || (radix === 16 && !HEX.test(digits))) return null;
  const cp = parseInt(digits, radix);
  if (cp === 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return null;
  return [String.fromCodePoint(cp), (radix === 8 ? 1 : 2) + want];
}
