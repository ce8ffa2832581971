/**
 * The Secrets service (secrets.proto): create, list and delete secrets, sealed under the
 * cluster's secrets key (lib/secret-box.ts) before they reach etcd. No call returns a value
 * and no error text holds one; the audit log records the call, never the request.
 *
 * Under a policy a caller handles only the secrets a grant's `secrets` globs cover (rights.ts);
 * a listing shows only those. Deleting a secret that a unit file names is refused, naming
 * the units, unless forced: the units would fail at their next start.
 */
import type {
  CreateSecretRequest,
  DeleteSecretRequest,
  DeleteSecretResponse,
  ListSecretsResponse,
  SecretInfo,
  SecretRecord,
} from '../../proto/flotilla/v1/secrets.js';
import { SECRET_MAX_BYTES, sealSecret, type SecretsKey } from '../../lib/secret-box.js';
import { atomicTxn, codecs, ConflictError } from '../../store/index.js';
import { excerpt, SECRET_NAME, unitSecrets } from '../../unit/index.js';
import { ApiError } from '../gate/errors.js';
import type { Rights } from '../gate/rights.js';
import { isInvalidUnit } from '../view/snapshot.js';
import { fresh, type ApiCluster } from './reads.js';

/** How many users of a secret an answer names (the rest are counted). */
const USERS_NAMED = 10;

/** The most secrets a cluster holds: a listing is one bounded message. */
export const MAX_SECRETS = 1_000;

/** What the Secrets handlers need beyond the cluster. */
export interface SecretsContext {
  readonly cluster: ApiCluster;
  /** `--secrets-key-file`; absent: creating is refused (listing and deleting still work). */
  readonly key?: SecretsKey;
}

/** CreateSecret; see secrets.proto. */
export async function createSecret(
  ctx: SecretsContext,
  req: CreateSecretRequest,
  rights: Rights | undefined,
): Promise<SecretInfo> {
  const name = checkName(req.name, rights);
  if (req.value.length === 0) {
    throw new ApiError('invalid-argument', `secret ${name}: the value is empty`);
  }
  if (req.value.length > SECRET_MAX_BYTES) {
    throw new ApiError(
      'invalid-argument',
      `secret ${name}: ${req.value.length} bytes, more than the ${SECRET_MAX_BYTES} a secret may hold`,
    );
  }
  if (ctx.key === undefined) {
    throw new ApiError(
      'failed-precondition',
      'this scheduler has no secrets key: start it with --secrets-key-file (the same file on every scheduler and agent)',
    );
  }
  const { store, mirror } = ctx.cluster;
  await fresh(ctx.cluster);
  if (mirror.secrets.size >= MAX_SECRETS && mirror.secrets.get(name) === undefined) {
    throw new ApiError(
      'resource-exhausted',
      `the cluster holds ${MAX_SECRETS} secrets, the most it may: delete some first`,
    );
  }
  const record: SecretRecord = {
    name,
    sealed: sealSecret(ctx.key, name, Buffer.from(req.value)).toString('base64'),
    keyId: ctx.key.id,
    size: req.value.length,
    createdAt: BigInt(Date.now()),
  };
  const key = store.keys.secret(name);
  const value = codecs.secret.encode(record);
  try {
    await atomicTxn(store, (b) => (req.replace ? b.put(key, value) : b.putIfAbsent(key, value)));
  } catch (err) {
    if (err instanceof ConflictError) {
      throw new ApiError(
        'already-exists',
        `secret ${name} exists: replace it (flotctl secret create --replace) or pick another name`,
      );
    }
    throw err;
  }
  return info(ctx.cluster, record);
}

/** ListSecrets; see secrets.proto. Only what the caller's grants cover. */
export async function listSecrets(
  ctx: SecretsContext,
  rights: Rights | undefined,
): Promise<ListSecretsResponse> {
  await fresh(ctx.cluster);
  const users = usersOf(ctx.cluster);
  const secrets: SecretInfo[] = [];
  for (const [name, e] of ctx.cluster.mirror.secrets) {
    if (rights !== undefined && !rights.holdsSecret(name)) continue;
    secrets.push(info(ctx.cluster, e.value, users.get(name) ?? []));
  }
  secrets.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { secrets };
}

/** DeleteSecret; see secrets.proto. */
export async function deleteSecret(
  ctx: SecretsContext,
  req: DeleteSecretRequest,
  rights: Rights | undefined,
): Promise<DeleteSecretResponse> {
  const name = checkName(req.name, rights);
  await fresh(ctx.cluster);
  const users = usersOf(ctx.cluster).get(name) ?? [];
  if (users.length > 0 && !req.force) {
    throw new ApiError(
      'failed-precondition',
      `secret ${name} is named by ${named(users)}: destroy or change those units first, or delete it anyway with --force (they fail at their next start)`,
    );
  }
  return { deleted: await ctx.cluster.store.delete(ctx.cluster.store.keys.secret(name)) };
}

function checkName(raw: string, rights: Rights | undefined): string {
  if (!SECRET_NAME.test(raw)) {
    throw new ApiError(
      'invalid-argument',
      `secret name "${excerpt(raw, 64)}": expected 1-128 letters, digits, "_", "." and "-", starting with a letter or digit`,
    );
  }
  if (rights !== undefined && !rights.holdsSecret(raw)) {
    throw new ApiError(
      'permission-denied',
      `${rights.who} may not handle secret ${raw}: no grant's "secrets" covers it; ask an admin to grant it in the auth policy`,
    );
  }
  return raw;
}

function info(cluster: ApiCluster, r: SecretRecord, users?: readonly string[]): SecretInfo {
  const all = users ?? usersOf(cluster).get(r.name) ?? [];
  return {
    name: r.name,
    size: r.size,
    createdAt: r.createdAt,
    keyId: r.keyId,
    usedBy: all.slice(0, USERS_NAMED),
    usedByCount: all.length,
  };
}

function named(users: readonly string[]): string {
  const shown = users.slice(0, USERS_NAMED).join(', ');
  return users.length > USERS_NAMED ? `${shown} (and ${users.length - USERS_NAMED} more)` : shown;
}

/**
 * Secret name -> the stored units whose files name it, sorted. Instances without a file of
 * their own are their template's. A file is parsed only when its text says `Secret=`, and
 * once per content (the definitions cache), so this costs a text search per unit.
 */
function usersOf(cluster: ApiCluster): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [name, e] of cluster.mirror.units.entries()) {
    if (!e.value.file.includes('Secret=')) continue;
    const def = cluster.definitions.shared(e.value);
    if (isInvalidUnit(def)) continue;
    for (const s of unitSecrets(def)) {
      let list = out.get(s);
      if (list === undefined) out.set(s, (list = []));
      list.push(name);
    }
  }
  for (const list of out.values()) list.sort();
  return out;
}
