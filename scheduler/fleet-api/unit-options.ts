/**
 * fleet's view of a unit file: a list of options, each `{section, name, value}` in the file's
 * order, as fleet's vendored go-systemd reads and writes them. fleetctl computes the HASH of
 * `list-unit-files` on the client from the options the API returns and prints them back for
 * `cat`, so these must be exactly what fleet would have made of the same text: the reader is
 * a port of go-systemd's lexer (unit/deserialize.go at fleet v1.0.0), quirks included (a
 * continued value keeps its backslash and newline, a CRLF line keeps its CR until the value
 * is trimmed, text before the first section is skipped a character at a time), and the writer
 * of its Serialize (sections in order of first appearance, each `[S]\nName=Value\n`, one blank
 * line between sections).
 */
import { createHash } from 'node:crypto';

/** One option of a unit, as fleet's API carries it. */
export interface UnitOption {
  readonly section: string;
  readonly name: string;
  readonly value: string;
}

/** go-systemd's SYSTEMD_LINE_MAX: fleet refuses options whose file has a longer line. */
export const LINE_MAX = 2048;

/** The options of `text` and, when the text is malformed, why reading stopped early. */
export interface ReadOptions {
  readonly options: UnitOption[];
  /** go-systemd's error, when it gave one; `options` then holds what was read before it. */
  readonly error?: string;
}

/** Go's unicode.IsSpace: the characters strings.TrimSpace removes. */
const GO_SPACE = /[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;
const LEADING = new RegExp(`^${GO_SPACE.source}+`);
const TRAILING = new RegExp(`${GO_SPACE.source}+$`);

/** Go's strings.TrimSpace (JavaScript's trim() also strips U+FEFF and keeps U+0085). */
export function goTrimSpace(s: string): string {
  return s.replace(LEADING, '').replace(TRAILING, '');
}

/** A cursor over the text, reading as bufio.Reader does (by character, or to a delimiter). */
class Reader {
  private at = 0;
  constructor(private readonly text: string) {}

  /** The next character (a whole code point), or undefined at the end. */
  readRune(): string | undefined {
    if (this.at >= this.text.length) return undefined;
    const cp = this.text.codePointAt(this.at) ?? 0;
    const ch = String.fromCodePoint(cp);
    this.at += ch.length;
    return ch;
  }

  unread(ch: string): void {
    this.at -= ch.length;
  }

  /** Up to and including `delim`; undefined when the text ends first (what was left is consumed). */
  readTo(delim: string): { text: string; found: boolean } {
    const i = this.text.indexOf(delim, this.at);
    const end = i < 0 ? this.text.length : i + 1;
    const text = this.text.slice(this.at, end);
    this.at = end;
    return { text, found: i >= 0 };
  }

  /** go-systemd's toEOL: the rest of the line without its `\n` (and a CR only right before that). */
  toEOL(): { line: string; eof: boolean } {
    const { text, found } = this.readTo('\n');
    let line = text;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (line.endsWith('\n')) line = line.slice(0, -1);
    return { line, eof: !found };
  }
}

const isComment = (ch: string): boolean => ch === '#' || ch === ';';

/** Reads `text` into options exactly as fleet's go-systemd Deserialize does. O(text). */
export function readOptions(text: string): ReadOptions {
  const r = new Reader(text);
  const options: UnitOption[] = [];
  let section: string | undefined;

  /** Skips a comment line and the lines it continues with a trailing backslash. */
  const ignoreLine = (): void => {
    for (;;) {
      const { line, eof } = r.toEOL();
      // bytes.TrimSuffix: one trailing space at most.
      const trimmed = line.endsWith(' ') ? line.slice(0, -1) : line;
      if (!trimmed.endsWith('\\') || eof) return;
    }
  };

  for (;;) {
    const ch = r.readRune();
    if (ch === undefined) return { options };
    if (section !== undefined && GO_SPACE.test(ch)) continue;
    if (ch === '[') {
      const { text: name, found } = r.readTo(']');
      if (!found) return { options, error: 'unable to find end of section' };
      section = name.slice(0, -1);
      const garbage = goTrimSpace(r.toEOL().line);
      if (garbage !== '') {
        return { options, error: `found garbage after section name ${section}` };
      }
      continue;
    }
    if (isComment(ch)) {
      ignoreLine();
      continue;
    }
    // Before the first section, anything else is skipped one character at a time.
    if (section === undefined) continue;
    r.unread(ch);
    const option = readOption(r, section);
    if ('error' in option) return { options, error: option.error };
    options.push(option);
  }
}

/** One `Name=Value` (with its continuation lines) at the reader. */
function readOption(r: Reader, section: string): UnitOption | { error: string } {
  let name = '';
  for (;;) {
    const ch = r.readRune();
    if (ch === undefined) return { error: 'EOF' };
    if (ch === '\n' || ch === '\r') {
      return { error: 'unexpected newline encountered while parsing option name' };
    }
    if (ch === '=') break;
    name += ch;
  }
  let value = '';
  for (;;) {
    const { line, eof } = r.toEOL();
    if (goTrimSpace(line) === '') break;
    value += line;
    // Only a backslash that ends the line continues the value.
    if (line.lastIndexOf('\\') !== line.length - 1) break;
    if (!eof) value += '\n';
  }
  value = value.endsWith('\n') ? `${goTrimSpace(value)}\n` : goTrimSpace(value);
  return { section, name: goTrimSpace(name), value };
}

/** fleet's Serialize: the unit file these options make, in fleet's canonical form. */
export function serializeOptions(options: readonly UnitOption[]): string {
  const sections = new Map<string, UnitOption[]>();
  for (const o of options) {
    const list = sections.get(o.section);
    if (list === undefined) sections.set(o.section, [o]);
    else list.push(o);
  }
  const parts: string[] = [];
  for (const [section, opts] of sections) {
    let part = `[${section}]\n`;
    for (const o of opts) part += `${o.name}=${o.value}\n`;
    parts.push(part);
  }
  return parts.join('\n');
}

/** fleet's UnitFile.Hash(): the SHA1 of the serialized options, 40 hex digits. */
export function fleetHash(options: readonly UnitOption[]): string {
  return createHash('sha1').update(serializeOptions(options), 'utf8').digest('hex');
}

/**
 * Why options cannot be stored as a unit file and read back the same, or undefined when they
 * can: a value with a bare newline or untrimmed spaces, a name with `=`, a section with `]`,
 * a line of {@link LINE_MAX} bytes or more. fleet itself keeps options as JSON and would take
 * them; Flotilla keeps the unit file, so it refuses rather than store something else.
 */
export function unstorableOptions(options: readonly UnitOption[]): string | undefined {
  const text = serializeOptions(options);
  for (const line of text.split(/[\r\n]/)) {
    if (Buffer.byteLength(line, 'utf8') >= LINE_MAX) {
      return `line too long (max ${LINE_MAX} bytes)`;
    }
  }
  const back = readOptions(text);
  if (back.error !== undefined) return back.error;
  const n = Math.max(back.options.length, options.length);
  for (let i = 0; i < n; i++) {
    const a = options[i];
    const b = back.options[i];
    if (a !== undefined && b !== undefined && sameOption(a, b)) continue;
    const which = a ?? b;
    return `option ${i + 1}${which === undefined ? '' : ` (${which.name} in [${which.section}])`} does not read back as given from a unit file (a newline not after a backslash, spaces around the value or name, "=" in a name, "]" in a section)`;
  }
  return undefined;
}

function sameOption(a: UnitOption, b: UnitOption): boolean {
  return a.section === b.section && a.name === b.name && a.value === b.value;
}
