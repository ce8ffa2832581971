/**
 * systemd specifiers in unit files: `%n` the full unit name, `%N` the name without its type
 * suffix, `%p` the prefix (before `@`), `%i` the instance, `%%` a literal `%`. Any other
 * `%x` is left as written (systemd knows many more, e.g. `%H`, that only mean something on a
 * machine; the agent may expand them). Expanded once: the result is not scanned again.
 */
import type { UnitName } from './model.js';
import { parseSyntaxCollecting, sectionEntries } from './syntax.js';

/**
 * Whether every instance of a template with this file is placed alike: no specifier in
 * `[X-Fleet]`, the one section whose meaning to the scheduler depends on the instance's name
 * (exec lines expand specifiers too, but only the agent runs them, and an expansion of a
 * valid unit name never makes an exec line invalid). A file that does not parse is not.
 */
export function placesAlike(text: string): boolean {
  const { syntax, errors } = parseSyntaxCollecting(text);
  return (
    errors.length === 0 && sectionEntries(syntax, 'X-Fleet').every((e) => !e.value.includes('%'))
  );
}

/** Expand `%n %N %p %i %%` in `value` for the unit `name`. Linear in `value`. */
export function expandSpecifiers(value: string, name: UnitName): string {
  if (!value.includes('%')) return value;
  const out: string[] = [];
  let last = 0;
  for (let i = value.indexOf('%'); i >= 0 && i < value.length; i = value.indexOf('%', i)) {
    const next = value[i + 1];
    const repl = replacement(next, name);
    if (repl === undefined) {
      i += next === undefined ? 1 : 2;
      continue;
    }
    out.push(value.slice(last, i), repl);
    i += 2;
    last = i;
  }
  out.push(value.slice(last));
  return out.join('');
}

function replacement(spec: string | undefined, name: UnitName): string | undefined {
  switch (spec) {
    case 'n':
      return name.name;
    case 'N':
      return name.name.slice(0, name.name.length - name.type.length - 1);
    case 'p':
      return name.prefix;
    case 'i':
      return name.instance;
    case '%':
      return '%';
    default:
      return undefined;
  }
}
