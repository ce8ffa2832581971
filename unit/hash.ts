/**
 * A unit file's content hash: sha256 (hex) of a normalised serialisation of its syntax,
 * section names, keys and values in file order. Comments, blank lines, whitespace around
 * keys and values and line continuations do not change it; any change to a section, key or
 * value (including order, which matters for repeated keys) does. The hash depends on the
 * text only, so every instance of a template shares the template's hash.
 */
import { createHash } from 'node:crypto';

import type { UnitFileSyntax } from './model.js';
import { parseSyntax } from './syntax.js';

/** Bumped if the serialisation ever changes, so old and new hashes never collide by accident. */
const VERSION = 'flotilla-unit-hash-v1';

/** The hash of already-parsed syntax. */
export function hashSyntax(syntax: UnitFileSyntax): string {
  const h = createHash('sha256');
  h.update(VERSION);
  // JSON strings are self-delimiting, so the serialisation is unambiguous.
  for (const section of syntax.sections) {
    h.update(`\n[${JSON.stringify(section.name)}]`);
    for (const e of section.entries)
      h.update(`\n${JSON.stringify(e.key)}=${JSON.stringify(e.value)}`);
  }
  return h.digest('hex');
}

/** The hash of a unit file's text; throws `UnitError('syntax')` when it does not parse. */
export function hashUnitText(text: string): string {
  return hashSyntax(parseSyntax(text));
}
