/**
 * Debian's `docker-registry` (the CNCF distribution registry) for a local cluster and tests:
 * its configuration for an address and a storage directory, and the wait until it answers.
 */
import { request } from 'node:http';

/** The registry's config.yml: plain HTTP on `addr`, storage in `storage`, deletes allowed. */
export function registryConfig(addr: string, storage: string): string {
  return [
    'version: 0.1',
    'log:',
    '  level: warn',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${JSON.stringify(storage)}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: ${JSON.stringify(addr)}`,
    '',
  ].join('\n');
}

/** Resolves once `GET http://addr/v2/` answers (200, or 401 asking for a login), or rejects after `timeoutMs`. */
export async function waitForRegistry(addr: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const req = request(`http://${addr}/v2/`, { timeout: 1000 }, (res) => {
        res.resume();
        // 401: a registry that needs a login answers too.
        resolve(res.statusCode === 200 || res.statusCode === 401);
      });
      req.on('error', () => resolve(false));
      req.on('timeout', () => req.destroy());
      req.end();
    });
    if (ok) return;
    if (Date.now() > deadline)
      throw new Error(`the registry at ${addr} did not answer within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
