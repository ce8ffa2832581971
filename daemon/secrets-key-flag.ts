/**
 * `--secrets-key-file`, which the schedulers (to seal) and the agents (to open) both take:
 * the cluster's secrets key, read and checked at start, so a daemon with a bad key file
 * refuses to start instead of failing every secret later.
 */
import { parseSecretsKey, type SecretsKey } from '../lib/secret-box.js';
import { UsageError } from './options.js';
import type { ReadFile } from './tls-flags.js';

/** Reads `path` (the flag's value) as a secrets key; UsageError naming the file when not one. */
export function readSecretsKey(
  path: string | undefined,
  readFile: ReadFile,
): { secretsKey?: SecretsKey } {
  if (path === undefined) return {};
  let raw: Buffer;
  try {
    raw = Buffer.from(readFile(path));
  } catch (err) {
    throw new UsageError(`--secrets-key-file=${path}: cannot read it (${(err as Error).message})`);
  }
  try {
    return { secretsKey: parseSecretsKey(raw, path) };
  } catch (err) {
    throw new UsageError(`--secrets-key-file: ${(err as Error).message}`);
  }
}
