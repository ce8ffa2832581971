/**
 * Delivering a unit's secrets (`Secret=`) before its first run: the values come from a
 * {@link SecretSource} (the agent's sync/ layer reads and opens the `secrets/<name>` records;
 * this layer never talks to etcd) and the driver writes them into the unit's tmpfs. Done once
 * per lifecycle, so a restart during an etcd outage still finds its files. A unit whose
 * secrets cannot be delivered fails with the reason and never runs without them.
 */
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import type { RuntimeDriver, UnitContext } from '../../runtime/driver.js';
import { RuntimeError } from '../../runtime/errors.js';
import { resolveUser } from '../../runtime/users.js';
import { agentUser } from './launch.js';

/**
 * The values of the secrets `names`, opened, by name. Rejects with a {@link SecretsError}
 * (whose message names what is missing and what to do, never a value).
 */
export type SecretSource = (names: readonly string[]) => Promise<ReadonlyMap<string, Buffer>>;

/** Why secrets could not be had; `permanent`: retrying cannot help until someone acts. */
export class SecretsError extends Error {
  override readonly name = 'SecretsError';
  constructor(
    message: string,
    readonly permanent: boolean,
  ) {
    super(message);
  }
}

/** What a failed delivery means for the unit. */
export interface DeliveryFailure {
  readonly message: string;
  readonly permanent: boolean;
}

async function allPresent(dir: string, names: readonly string[]): Promise<boolean> {
  const found = await Promise.all(
    names.map((name) =>
      access(join(dir, name)).then(
        () => true,
        () => false,
      ),
    ),
  );
  return found.every(Boolean);
}

/**
 * Writes the secrets `ctx` names, unless `adopted` and they are still there (an agent
 * restart). Resolves with undefined when done (or nothing to do), else why not.
 */
export async function deliverSecrets(
  driver: RuntimeDriver,
  ctx: UnitContext,
  source: SecretSource | undefined,
  adopted: boolean,
): Promise<DeliveryFailure | undefined> {
  const names = ctx.service.secrets ?? [];
  if (names.length === 0) return undefined;
  if (adopted && (await allPresent(ctx.secretsDir, names))) return undefined;
  if (source === undefined) {
    return {
      message: `Secret=${names[0] ?? ''}: this agent delivers no secrets; start it with --secrets-key-file (the schedulers' file)`,
      permanent: true,
    };
  }
  try {
    const { service } = ctx;
    const owner =
      service.user !== '' ? await resolveUser(service.user, driver.userRoot(ctx)) : agentUser();
    const values = await source(names);
    const missing = names.find((n) => !values.has(n));
    if (missing !== undefined) {
      return { message: `Secret=${missing}: no value was delivered for it`, permanent: false };
    }
    await driver.writeSecrets(ctx, values, owner);
    return undefined;
  } catch (err) {
    if (err instanceof SecretsError) return { message: err.message, permanent: err.permanent };
    if (err instanceof RuntimeError) {
      return { message: err.message, permanent: err.code === 'bad-user' };
    }
    // Never the error's own text: it could come from anywhere the values passed through.
    return {
      message: `Secret=: the secrets could not be written (${errName(err)})`,
      permanent: false,
    };
  }
}

function errName(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : err instanceof Error ? err.name : 'error';
}
