/**
 * `--etcd-user-file FILE` (both daemons): etcd's password authentication, the user and
 * password as one `user:password` line (etcdctl's `--user` form) in a file only root reads.
 * A file, not a flag value, so the password is in no process listing.
 */
import { parseEtcdUser, type StoreAuth } from '../store/index.js';
import { UsageError, type DaemonArgs } from './options.js';

/** The credentials `--etcd-user-file` names, or undefined when it is not given. */
export function parseEtcdAuth(
  args: DaemonArgs,
  readFile: (path: string) => string | Buffer,
): StoreAuth | undefined {
  const path = args.string('etcd-user-file');
  if (path === undefined) return undefined;
  try {
    return parseEtcdUser(readFile(path).toString());
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new UsageError(`--etcd-user-file=${path}: ${why}`);
  }
}
