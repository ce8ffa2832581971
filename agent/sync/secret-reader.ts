/**
 * The agent's side of `Secret=` (issue 30): reads exactly the `secrets/<name>` records a unit
 * names, one get per secret when the unit starts (no watch of all secrets: work grows with the
 * units here, not with the cluster's secrets), and opens them with the cluster's key
 * (lib/secret-box.ts, the same code the schedulers seal with). Every failure is a
 * {@link SecretsError} naming the secret and what to do; no message ever holds a value.
 */
import { openSecret, SecretBoxError, type SecretsKey } from '../../lib/secret-box.js';
import { codecs, type Store } from '../../store/index.js';
import { SecretsError, type SecretSource } from '../units/supervisor/secrets.js';
import type { SecretRecord } from '../../proto/flotilla/v1/secrets.js';

/**
 * The source a UnitManager delivers secrets from. `key` absent (no `--secrets-key-file`):
 * every unit naming a secret fails, saying so.
 */
export function storeSecretSource(store: Store, key: SecretsKey | undefined): SecretSource {
  return async (names) => {
    const out = new Map<string, Buffer>();
    for (const name of names) {
      if (key === undefined) {
        throw new SecretsError(
          `Secret=${name}: this agent has no secrets key; start it with --secrets-key-file (the schedulers' file), then restart the unit`,
          true,
        );
      }
      out.set(name, openRecord(key, name, await read(store, name)));
    }
    return out;
  };
}

async function read(store: Store, name: string): Promise<SecretRecord> {
  let raw: Buffer | undefined;
  try {
    raw = (await store.get(store.keys.secret(name)))?.value;
  } catch (err) {
    // store/ has no code for etcd's auth refusal (it is `internal`): its text is etcd's own.
    if (err instanceof Error && /permission denied/i.test(err.message)) {
      throw new SecretsError(
        `Secret=${name}: this machine's etcd user may not read secrets/; grant its role read on the prefix's secrets/ (docs/operations.md, Security model), then restart the unit`,
        true,
      );
    }
    throw new SecretsError(
      `Secret=${name}: etcd did not answer (${err instanceof Error ? err.message.slice(0, 200) : 'error'}); the unit is started again per Restart=`,
      false,
    );
  }
  if (raw === undefined) {
    throw new SecretsError(
      `Secret=${name}: no such secret; create it (flotctl secret create ${name} FILE), then restart the unit`,
      true,
    );
  }
  try {
    return codecs.secret.decode(store.keys.secret(name), raw);
  } catch {
    throw new SecretsError(
      `Secret=${name}: its record is not a sealed secret; create it again (flotctl secret create --replace ${name} FILE)`,
      true,
    );
  }
}

function openRecord(key: SecretsKey, name: string, record: SecretRecord): Buffer {
  if (record.keyId !== '' && record.keyId !== key.id) {
    throw new SecretsError(
      `Secret=${name}: sealed under key ${record.keyId}, this agent holds key ${key.id}; give it the schedulers' --secrets-key-file, or create the secret again`,
      true,
    );
  }
  try {
    return openSecret(key, name, Buffer.from(record.sealed, 'base64'));
  } catch (err) {
    if (err instanceof SecretBoxError) {
      throw new SecretsError(
        `Secret=${name}: ${err.message}; give this agent the schedulers' --secrets-key-file`,
        true,
      );
    }
    throw err;
  }
}
