/**
 * The browser tests' kit: a scheduler replica serving the HTTP listener (the console and its
 * API) beside an e2e cluster's own replicas, on the same etcd and prefix, with an auth
 * policy of two tokens (an admin and a read-only viewer); and a logged-in browser page.
 */
import { credentialPath } from '../../deploy/cluster/credentials.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { FLOTILLA_BIN } from '../../deploy/cluster/index.js';
import { hashToken } from '../../scheduler/gate/auth-policy.js';
import { freePorts } from '../../testkit/index.js';
import { waitMapDrawn } from '../../testkit/console-page.js';
import type { E2ECluster } from '../e2e/e2e-kit.js';

export const ADMIN_TOKEN = 'console-admin-token-0123456789abcdef';
export const VIEWER_TOKEN = 'console-viewer-token-0123456789abcdef';

const POLICY = JSON.stringify({
  roles: { viewer: [{ verbs: ['read'], units: ['*'] }], admin: [{ verbs: ['admin'] }] },
  identities: [
    { name: 'console-admin', tokenSha256: hashToken(ADMIN_TOKEN), roles: ['admin'] },
    { name: 'console-viewer', tokenSha256: hashToken(VIEWER_TOKEN), roles: ['viewer'] },
  ],
});

/** A scheduler replica with `--http-listen`, started by the test. */
export class ConsoleReplica {
  private constructor(
    readonly url: string,
    private readonly child: ChildProcess,
    private readonly dir: string,
    private readonly log: () => string,
  ) {}

  /** Starts it against `cluster`'s etcd and prefix; resolves once `/readyz` says ready. */
  static async start(cluster: E2ECluster): Promise<ConsoleReplica> {
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-console-'));
    const policy = join(dir, 'policy.json');
    await writeFile(policy, POLICY);
    const [port] = await freePorts(1);
    const url = `http://127.0.0.1:${port}`;
    const child = spawn(
      process.execPath,
      [
        FLOTILLA_BIN,
        'scheduler',
        `--etcd-endpoints=${cluster.record.etcd.endpoint}`,
        `--prefix=${cluster.record.prefix}`,
        '--listen=none',
        `--http-listen=127.0.0.1:${port}`,
        `--auth-policy=${policy}`,
        '--name=console-http',
        '--election-ttl=3s',
        // As the cluster's own schedulers: signed requests to the agents' logs, the secrets key.
        `--agent-token-file=${credentialPath(cluster.record, 'agent-token')}`,
        `--secrets-key-file=${credentialPath(cluster.record, 'secrets.key')}`,
        // The cluster's etcd has its own users (deploy/cluster/credentials.ts): the schedulers'.
        ...(cluster.record.etcdAuth === true
          ? [`--etcd-user-file=${credentialPath(cluster.record, 'scheduler.etcd')}`]
          : []),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-8_000);
    });
    const replica = new ConsoleReplica(url, child, dir, () => stderr);
    const deadline = Date.now() + 60_000;
    for (;;) {
      const ready = await fetch(`${url}/readyz`).then(
        (r) => r.ok,
        () => false,
      );
      if (ready) return replica;
      if (child.exitCode !== null || Date.now() > deadline) {
        await replica.stop();
        throw new Error(`the console's scheduler did not get ready:\n${stderr}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** What it logged last (for a failing test's message). */
  logTail(): string {
    return this.log().slice(-2_000);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** A fresh browser context (no cookies) logged in with `token` through the login page. */
export async function loggedIn(browser: Browser, url: string, token: string): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  await page.goto(`${url}/ui/`);
  await page.fill('[data-test=token]', token);
  await page.click('[data-test=login]');
  await waitMapDrawn(page, 60_000);
  return page;
}
