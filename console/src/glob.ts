/**
 * Shell globs over unit names, as flotctl takes them (`web@*`, `db?.service`, `[ab]*`): `*`
 * any run of characters, `?` one, `[...]` a class. A pattern without any of these matches as
 * a substring, which is what a search box is expected to do.
 */

/** Longest pattern compiled; longer input is cut (a search box, not an API). */
export const GLOB_MAX = 256;

/** Compiles `pattern` into a predicate over names. The empty pattern matches everything. */
export function globMatcher(pattern: string): (name: string) => boolean {
  const p = pattern.trim().slice(0, GLOB_MAX);
  if (p === '') return () => true;
  if (!/[*?[]/.test(p)) {
    const lower = p.toLowerCase();
    return (name) => name.toLowerCase().includes(lower);
  }
  let re = '^';
  for (let i = 0; i < p.length; i += 1) {
    const c = p[i] as string;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = p.indexOf(']', i + 2);
      if (end < 0) re += '\\[';
      else {
        const body = p.slice(i + 1, end).replace(/\\/g, '\\\\');
        re += `[${body.startsWith('!') ? `^${body.slice(1)}` : body}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\\]]/g, '\\$&');
  }
  const compiled = new RegExp(`${re}$`);
  return (name) => compiled.test(name);
}
