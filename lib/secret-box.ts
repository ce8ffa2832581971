/**
 * Sealing secrets at rest (issue 30): AES-256-GCM under the cluster's secrets key, which the
 * schedulers (to seal what `flotctl secret create` sends) and the agents (to open what a unit
 * names) read from `--secrets-key-file`. A fresh 96-bit nonce per seal; the secret's name is
 * the associated data, so a sealed value copied under another name does not open.
 *
 * @example
 *   const key = parseSecretsKey(readFileSync('/etc/flotilla/secrets.key'), 'secrets.key');
 *   const sealed = sealSecret(key, 'db-password', Buffer.from('s3cr3t'));
 *   openSecret(key, 'db-password', sealed); // Buffer 's3cr3t'
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

/** The largest secret value: what a tmpfs file in a unit needs, not a store for blobs. */
export const SECRET_MAX_BYTES = 64 * 1024;

const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/** The cluster's secrets key, with the id records carry (never the key itself). */
export interface SecretsKey {
  /** First 16 hex digits of SHA-256 of the key: tells which key sealed a record. */
  readonly id: string;
  readonly bytes: Buffer;
}

/** A key file that cannot be used, or a sealed value that does not open. */
export class SecretBoxError extends Error {
  override readonly name = 'SecretBoxError';
}

/**
 * The key in a key file: 64 hex digits, or base64 of 32 bytes (surrounding whitespace
 * ignored), e.g. from `openssl rand -hex 32`. `file` names it in errors.
 */
export function parseSecretsKey(text: Buffer, file: string): SecretsKey {
  const s = text.length > 1024 ? '' : text.toString('utf8').trim();
  let bytes: Buffer | undefined;
  if (/^[0-9a-fA-F]{64}$/.test(s)) bytes = Buffer.from(s, 'hex');
  else if (/^[A-Za-z0-9+/]{43}=$/.test(s)) bytes = Buffer.from(s, 'base64');
  if (bytes?.length !== 32) {
    throw new SecretBoxError(
      `${file}: not a secrets key; write 32 random bytes as 64 hex digits (openssl rand -hex 32 > ${file}) and give every scheduler and agent the same file`,
    );
  }
  return { id: createHash('sha256').update(bytes).digest('hex').slice(0, 16), bytes };
}

/** Seals `plaintext` for the secret `name`: nonce || ciphertext || tag. */
export function sealSecret(key: SecretsKey, name: string, plaintext: Buffer): Buffer {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key.bytes, nonce);
  cipher.setAAD(Buffer.from(name, 'utf8'));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([nonce, body, cipher.getAuthTag()]);
}

/**
 * Opens what {@link sealSecret} sealed for `name`. Throws SecretBoxError (never with the
 * value in it) when the key is another or the record was altered or moved.
 */
export function openSecret(key: SecretsKey, name: string, sealed: Buffer): Buffer {
  if (sealed.length < NONCE_BYTES + TAG_BYTES || sealed.length > SECRET_MAX_BYTES + 64) {
    throw new SecretBoxError(`secret ${name}: the sealed value has an impossible size`);
  }
  const nonce = sealed.subarray(0, NONCE_BYTES);
  const tag = sealed.subarray(sealed.length - TAG_BYTES);
  const body = sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key.bytes, nonce);
    decipher.setAAD(Buffer.from(name, 'utf8'));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(body), decipher.final()]);
  } catch {
    throw new SecretBoxError(
      `secret ${name}: does not open with key ${key.id} (another --secrets-key-file sealed it, or the record was altered)`,
    );
  }
}
