/**
 * `Secret=NAME` (`[Container]`, as Quadlet spells it, and `[Service]` for units without an
 * image): a secret the cluster holds (`flotctl secret create`), mounted in the unit as the
 * read-only tmpfs file `/run/secrets/NAME` (`$CREDENTIALS_DIRECTORY/NAME` for the process
 * driver, as systemd's credentials). Only the name: Quadlet's `,type=env` and `,target=`
 * options are refused, since an environment variable is exactly where a secret leaks.
 */
import { UnitError } from './errors.js';
import { excerpt } from './excerpt.js';
import type { UnitDefinition } from './model.js';

/** Secret names: a file name under /run/secrets, 1-128 characters. */
export const SECRET_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** The most secrets one unit may name. */
export const MAX_UNIT_SECRETS = 32;

/** Checks one `Secret=` value and adds it to `into` (once). */
export function addSecret(into: string[], key: string, value: string, line: number): void {
  if (!SECRET_NAME.test(value)) {
    const why = value.includes(',')
      ? 'options (type=, target=) are not supported: the secret is the file /run/secrets/NAME'
      : 'expected a secret name of 1-128 letters, digits, "_", "." and "-"';
    throw new UnitError('invalid-value', `${key}=${excerpt(value)}: ${why}`, { line });
  }
  if (into.includes(value)) return;
  if (into.length >= MAX_UNIT_SECRETS) {
    throw new UnitError('invalid-value', `${key}=: more than ${MAX_UNIT_SECRETS} secrets`, {
      line,
    });
  }
  into.push(value);
}

/** Every secret a unit names, `[Service]` first, each once. */
export function unitSecrets(def: Pick<UnitDefinition, 'service' | 'container'>): string[] {
  return [...new Set([...(def.service.secrets ?? []), ...(def.container?.secrets ?? [])])];
}
