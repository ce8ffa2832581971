/**
 * fleet's `Conflicts=`/`Replaces=` globs, with Go's `path.Match` semantics over unit names:
 * `*` any run of characters except `/`, `?` one character except `/`, `[...]` a class
 * (`[^...]` or `[!...]` negated, `a-z` ranges, `\` escapes inside), `\x` a literal `x`.
 * Unit names never contain `/`, so in practice `*` matches anything.
 */
import { UnitError } from './errors.js';
import { excerpt } from './excerpt.js';

/** A compiled pattern. `test` is total: it never throws once compilation succeeded. */
export interface Glob {
  readonly source: string;
  /** The literal text before the first metacharacter (`web@*.service` -> `web@`), for indexing. */
  readonly literalPrefix: string;
  test(name: string): boolean;
}

type Token =
  | { readonly kind: 'lit'; readonly text: string; readonly chars: readonly string[] }
  | { readonly kind: 'any' }
  | { readonly kind: 'star' }
  | {
      readonly kind: 'class';
      readonly negated: boolean;
      readonly ranges: readonly (readonly [number, number])[];
    };

const META = new Set(['*', '?', '[', '\\']);
const cache = new Map<string, Glob>();
/** Bound the cache so that a stream of distinct user patterns cannot grow memory forever. */
const CACHE_LIMIT = 10_000;

/** True when `pattern` has a glob metacharacter (`*`, `?`, `[` or `\`). */
export function isGlob(pattern: string): boolean {
  for (const ch of pattern) if (META.has(ch)) return true;
  return false;
}

/**
 * Compile (or fetch from the cache) a glob. Throws `UnitError('invalid-glob')` for a
 * malformed class (`[a-`, `[]`, unterminated `[`) or a trailing `\`, like Go's ErrBadPattern.
 */
export function compileGlob(pattern: string): Glob {
  const hit = cache.get(pattern);
  if (hit !== undefined) return hit;
  const tokens = tokenize(pattern);
  const glob = build(pattern, tokens);
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(pattern, glob);
  return glob;
}

function build(source: string, tokens: readonly Token[]): Glob {
  let literalPrefix = '';
  for (const t of tokens) {
    if (t.kind !== 'lit') break;
    literalPrefix += t.text;
  }
  if (tokens.every((t) => t.kind === 'lit')) {
    return { source, literalPrefix, test: (name) => name === literalPrefix };
  }
  return { source, literalPrefix, test: (name) => match(tokens, name) };
}

function bad(pattern: string, why: string): UnitError {
  return new UnitError('invalid-glob', `invalid glob "${excerpt(pattern)}": ${why}`);
}

function tokenize(p: string): Token[] {
  const out: Token[] = [];
  let lit = '';
  const flush = (): void => {
    if (lit !== '') out.push({ kind: 'lit', text: lit, chars: Array.from(lit) });
    lit = '';
  };
  let i = 0;
  while (i < p.length) {
    const ch = p[i] as string;
    if (ch === '\\') {
      if (i + 1 >= p.length) throw bad(p, 'it ends in a lone "\\"');
      lit += p[i + 1] as string;
      i += 2;
    } else if (ch === '*') {
      flush();
      if (out.at(-1)?.kind !== 'star') out.push({ kind: 'star' });
      i++;
    } else if (ch === '?') {
      flush();
      out.push({ kind: 'any' });
      i++;
    } else if (ch === '[') {
      flush();
      const [tok, next] = readClass(p, i + 1);
      out.push(tok);
      i = next;
    } else {
      lit += ch;
      i++;
    }
  }
  flush();
  return out;
}

/** Read one class body starting after `[`; returns the token and the index after `]`. */
function readClass(p: string, start: number): [Token, number] {
  let i = start;
  let negated = false;
  if (p[i] === '^' || p[i] === '!') {
    negated = true;
    i++;
  }
  const ranges: [number, number][] = [];
  const readChar = (): number => {
    if (i >= p.length) throw bad(p, 'a "[" class is not closed with "]"');
    const ch = p[i];
    if (ch === '\\') {
      i++;
      if (i >= p.length) throw bad(p, 'a "[" class ends in a lone "\\"');
    } else if (ch === '-' || ch === ']') {
      throw bad(p, `unexpected "${ch}" in a "[" class`);
    }
    const cp = p.codePointAt(i) ?? 0;
    i += cp > 0xffff ? 2 : 1;
    return cp;
  };
  for (;;) {
    if (i >= p.length) throw bad(p, 'a "[" class is not closed with "]"');
    if (p[i] === ']' && ranges.length > 0) return [{ kind: 'class', negated, ranges }, i + 1];
    const lo = readChar();
    let hi = lo;
    if (p[i] === '-') {
      i++;
      // Like Go, a backwards range (`[z-a]`) is accepted and matches nothing.
      hi = readChar();
    }
    ranges.push([lo, hi]);
  }
}

function classMatches(tok: Token & { kind: 'class' }, cp: number): boolean {
  let inside = false;
  for (const [lo, hi] of tok.ranges) {
    if (cp >= lo && cp <= hi) {
      inside = true;
      break;
    }
  }
  return inside !== tok.negated;
}

/**
 * Match with single-star backtracking (the classic linear-ish wildcard algorithm): on a
 * mismatch, resume after the last `*` one character further on. O(pattern x name) worst case.
 */
function match(tokens: readonly Token[], name: string): boolean {
  // Index code points; a name without surrogates (every valid unit name) needs no copy.
  const chars: ArrayLike<string> = SURROGATE.test(name) ? Array.from(name) : name;
  let ti = 0;
  let ni = 0;
  let starTi = -1;
  let starNi = 0;
  while (ni < chars.length || ti < tokens.length) {
    const tok = tokens[ti];
    if (tok !== undefined) {
      if (tok.kind === 'star') {
        starTi = ti;
        starNi = ni;
        ti++;
        continue;
      }
      const step = stepToken(tok, chars, ni);
      if (step >= 0) {
        ti++;
        ni += step;
        continue;
      }
    }
    // Mismatch: let the last `*` swallow one more character (never a `/`).
    if (starTi < 0 || starNi >= chars.length || chars[starNi] === '/') return false;
    starNi++;
    ti = starTi + 1;
    ni = starNi;
  }
  return true;
}

/** Characters consumed by a non-star token at `ni`, or -1 when it does not match there. */
const SURROGATE = /[\uD800-\uDFFF]/;

function stepToken(tok: Token, chars: ArrayLike<string>, ni: number): number {
  if (tok.kind === 'lit') {
    const t = tok.chars;
    if (ni + t.length > chars.length) return -1;
    for (let k = 0; k < t.length; k++) if (chars[ni + k] !== t[k]) return -1;
    return t.length;
  }
  const ch = chars[ni];
  if (ch === undefined || ch === '/') return -1;
  if (tok.kind === 'any') return 1;
  if (tok.kind === 'class') return classMatches(tok, ch.codePointAt(0) ?? 0) ? 1 : -1;
  return -1;
}
