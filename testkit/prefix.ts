/**
 * Per-test key prefixes, so the tests of one file share one etcd without seeing each
 * other's keys. Pass the result as the store prefix (`openStore({ prefix })`).
 */
import { randomBytes } from 'node:crypto';

/**
 * A fresh prefix like `/t-3f9a1c2e-presence/`. The trailing slash means no prefix is a prefix
 * of another; the label only helps a person reading `etcdctl get --prefix /`. It is
 * sanitised to `[a-z0-9-]`.
 */
export function uniquePrefix(label = ''): string {
  const random = randomBytes(4).toString('hex');
  const clean = label
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40);
  return clean === '' ? `/t-${random}/` : `/t-${random}-${clean}/`;
}
