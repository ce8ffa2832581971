/**
 * The registry flags schedulers (which pin tags to digests at submit) and agents (which pull)
 * share: `--registry-auth-file` (containers-auth.json or Docker's config.json) and
 * `--insecure-registry HOST:PORT[,...]` (plain HTTP, or TLS without verification, only for
 * registries named) and `--registry-mirror FROM=TO[,...]` (images named after FROM are looked
 * up and pulled at TO; the names keep FROM). The auth file is checked at start: a daemon that cannot read it says so
 * before it serves anything.
 */
import { REGISTRY_DEFAULTS, type RegistryOptions } from '../registry/skopeo.js';
import { UsageError, type DaemonArgs } from './options.js';
import type { ReadFile } from './tls-flags.js';

export const registryFlags = {
  'registry-auth-file': { type: 'string' },
  'insecure-registry': { type: 'string' },
  'registry-mirror': { type: 'string' },
} as const;

export const REGISTRY_USAGE = `Registries (see docs/operations.md):
  --registry-auth-file FILE    credentials, containers-auth.json or Docker config.json format
  --insecure-registry HOST:PORT[,HOST:PORT]
                               registries reached over plain HTTP (or unverified TLS)
  --registry-mirror FROM=TO[,FROM=TO]
                               reach registry FROM (HOST:PORT) at TO: image names and their
                               pinned digests keep FROM, lookups and pulls go to TO
`;

const HOST_PORT = /^[A-Za-z0-9.-]+(?::[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?$/;

/** The registry options the flags give; throws UsageError for a bad value or unreadable file. */
export function parseRegistryFlags(args: DaemonArgs, readFile: ReadFile): RegistryOptions {
  const authFile = args.string('registry-auth-file');
  if (authFile !== undefined) {
    let text: string;
    try {
      text = readFile(authFile).toString();
    } catch (err) {
      throw new UsageError(
        `--registry-auth-file=${authFile}: cannot be read (${(err as Error).message})`,
      );
    }
    try {
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed !== 'object' || parsed === null) throw new Error('not an object');
    } catch {
      throw new UsageError(
        `--registry-auth-file=${authFile}: not JSON in the containers-auth.json format ({"auths": {...}})`,
      );
    }
  }
  const insecure = args.list('insecure-registry', []);
  const bad = insecure.find((h) => !HOST_PORT.test(h));
  if (bad !== undefined)
    throw new UsageError(`--insecure-registry: "${bad}" is not HOST or HOST:PORT`);
  const mirrors: Record<string, string> = {};
  for (const pair of args.list('registry-mirror', [])) {
    const [from = '', to = '', ...rest] = pair.split('=');
    if (rest.length > 0 || !HOST_PORT.test(from) || !HOST_PORT.test(to)) {
      throw new UsageError(`--registry-mirror: "${pair}" is not FROM=TO (each HOST or HOST:PORT)`);
    }
    mirrors[from] = to;
  }
  return {
    ...REGISTRY_DEFAULTS,
    insecureRegistries: insecure,
    ...(Object.keys(mirrors).length > 0 ? { mirrors } : {}),
    ...(authFile !== undefined ? { authFile } : {}),
  };
}
