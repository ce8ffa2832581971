/**
 * How messages quote what a user wrote. A value in a message is there so the user can find it
 * in their file, not to be shown whole: a 1 MB bad line must not become a 1 MB message (it
 * floods the terminal, and over gRPC a status message that large never arrives at all), and
 * control characters or garbage bytes must not reach a terminal raw, where they would move
 * the cursor, change colours or hide text. Every message in Flotilla that quotes user input
 * goes through {@link excerpt}.
 */

/** How many characters of a value a message shows by default (escapes included). */
export const EXCERPT_CHARS = 64;

/**
 * Characters a terminal would act on or not show: C0 and C1 controls and DEL (`Cc`),
 * invisible formatting such as bidi overrides and zero-width spaces (`Cf`), line and
 * paragraph separators, lone surrogates, and U+FFFD, which stands for bytes that were not
 * valid UTF-8 when the file was read.
 */
const INVISIBLE = /^[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\uFFFD]$/u;

const NAMED: Readonly<Record<string, string>> = { '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/** `ch` as it appears in a message: itself, or an escape such as `\x1b` or `\u202e`. */
function shown(ch: string): string {
  if (!INVISIBLE.test(ch)) return ch;
  const named = NAMED[ch];
  if (named !== undefined) return named;
  const cp = ch.codePointAt(0) ?? 0;
  if (cp <= 0xff) return `\\x${cp.toString(16).padStart(2, '0')}`;
  if (cp <= 0xffff) return `\\u${cp.toString(16).padStart(4, '0')}`;
  return `\\u{${cp.toString(16)}}`;
}

/**
 * `value` fit for a message: invisible characters escaped (see `INVISIBLE`; `\t`, `\n`, `\r`,
 * `\xHH`, `\uHHHH`), and when the result would be longer than `max` characters, its first
 * `max` followed by `…(N bytes)` with the whole value's size in UTF-8 bytes. Backslashes and
 * quotes are kept as written, so the excerpt matches the file the user is looking at. Cuts
 * between characters, never inside a surrogate pair or an escape. Costs O(max), whatever the
 * length of `value` (apart from counting its bytes).
 *
 * @example
 *   excerpt('a\x1b[2Jb')          // 'a\\x1b[2Jb'
 *   excerpt('x'.repeat(100_000))  // 'xxxx…(100000 bytes)' with 64 x's
 */
export function excerpt(value: string, max = EXCERPT_CHARS): string {
  const parts: string[] = [];
  let length = 0;
  for (const ch of value) {
    const s = shown(ch);
    if (length + s.length > max) {
      return `${parts.join('')}…(${Buffer.byteLength(value, 'utf8')} bytes)`;
    }
    parts.push(s);
    length += s.length;
  }
  return parts.join('');
}

/** A size for messages: `300 bytes`, `256 KiB`, `1.25 MiB` (two decimals below 10, trimmed). */
export function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB'] as const;
  let n = bytes;
  let unit = 0;
  while (n >= 1024 && unit < units.length - 1) {
    n /= 1024;
    unit++;
  }
  if (unit === 0) return `${bytes} bytes`;
  const rounded = n >= 10 ? Math.round(n) : Math.round(n * 100) / 100;
  return `${rounded} ${units[unit]}`;
}
