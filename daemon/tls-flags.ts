/**
 * The daemons' TLS flags, read into PEM material once, at start. Each file is checked before
 * anything listens or dials: a missing, unreadable or wrong file, a certificate without its
 * key, or a key of another certificate is a UsageError naming the flag and the file.
 *
 * - etcd (both daemons, in commonFlags): `--etcd-cafile`, `--etcd-certfile`, `--etcd-keyfile`,
 *   as fleet and etcdctl name them; they need `https://` endpoints.
 * - the daemon's own gRPC service (scheduler API, agent Logs): `--tls-cert-file`,
 *   `--tls-key-file` and, for mutual TLS, `--tls-client-ca-file`.
 */
import type { StoreTls } from '../store/tls.js';
import { UsageError, type DaemonArgs } from './options.js';
import { isKeyOf, readPem, TlsFileError, type PemKind, type ServerTls } from './tls.js';

/** How the daemons read files (injectable for option tests). */
export type ReadFile = (path: string) => string | Buffer;

/** Flags of a daemon's own TLS service. */
export const serverTlsFlags = {
  'tls-cert-file': { type: 'string' },
  'tls-key-file': { type: 'string' },
  'tls-client-ca-file': { type: 'string' },
} as const;

/** The PEM file a flag names, or undefined when the flag (and its variable) is not set. */
export function pemFlag(
  args: DaemonArgs,
  flag: string,
  kind: PemKind,
  readFile: ReadFile,
): Buffer | undefined {
  const path = args.string(flag);
  if (path === undefined) return undefined;
  try {
    return readPem(path, kind, readFile);
  } catch (err) {
    if (err instanceof TlsFileError) throw new UsageError(`--${flag}=${path}: ${err.message}`);
    throw err;
  }
}

/** A certificate flag and a key flag: both or neither, and the key must be the certificate's. */
function keyPair(
  args: DaemonArgs,
  certFlag: string,
  keyFlag: string,
  readFile: ReadFile,
): { cert: Buffer; key: Buffer } | undefined {
  const cert = pemFlag(args, certFlag, 'certificate', readFile);
  const key = pemFlag(args, keyFlag, 'key', readFile);
  if (cert === undefined && key === undefined) return undefined;
  if (cert === undefined || key === undefined) {
    throw new UsageError(`--${certFlag} and --${keyFlag} go together: give both or neither`);
  }
  if (!isKeyOf(cert, key)) {
    throw new UsageError(
      `--${keyFlag}=${args.string(keyFlag) ?? ''} is not the key of --${certFlag}=${args.string(certFlag) ?? ''}`,
    );
  }
  return { cert, key };
}

/**
 * `--etcd-cafile`, `--etcd-certfile`, `--etcd-keyfile`: undefined when none is given (plain,
 * or `https://` endpoints verified with the public roots). Given, every endpoint must be
 * `https://`: etcd3 would otherwise speak TLS to an `http://` URL, or plaintext to a TLS one.
 */
export function parseEtcdTls(
  args: DaemonArgs,
  endpoints: readonly string[],
  readFile: ReadFile,
): StoreTls | undefined {
  const ca = pemFlag(args, 'etcd-cafile', 'certificate', readFile);
  const pair = keyPair(args, 'etcd-certfile', 'etcd-keyfile', readFile);
  const secure = endpoints.filter((e) => /^https:\/\//i.test(e));
  const plain = endpoints.find((e) => !/^https:\/\//i.test(e));
  if (plain !== undefined && (secure.length > 0 || ca !== undefined || pair !== undefined)) {
    throw new UsageError(
      `--etcd-endpoints: ${plain} is not https://, but etcd is reached over TLS (https:// endpoints, --etcd-cafile or --etcd-certfile)`,
    );
  }
  if (ca === undefined && pair === undefined) return undefined;
  return { ...(ca === undefined ? {} : { ca }), ...pair };
}

/**
 * `--tls-cert-file`, `--tls-key-file`, `--tls-client-ca-file`: the daemon's own service
 * material, or undefined (plaintext) when none is given.
 */
export function parseServerTls(args: DaemonArgs, readFile: ReadFile): ServerTls | undefined {
  const pair = keyPair(args, 'tls-cert-file', 'tls-key-file', readFile);
  const clientCa = pemFlag(args, 'tls-client-ca-file', 'certificate', readFile);
  if (pair === undefined) {
    if (clientCa !== undefined) {
      throw new UsageError('--tls-client-ca-file needs --tls-cert-file and --tls-key-file');
    }
    return undefined;
  }
  return { ...pair, ...(clientCa === undefined ? {} : { clientCa }) };
}
