/**
 * The web console in a real browser (Debian's chromium, headless, driven by playwright-core)
 * against a real cluster: etcd, two schedulers and three agents in network namespaces
 * running runc containers (test/e2e/e2e-kit.ts), plus a scheduler replica serving the HTTP
 * listener under an auth policy (console-kit.ts). What a user sees: the map shows every
 * machine and unit, a unit stopped with flotctl changes colour within a second, a unit file
 * with an error shows the line and once fixed runs, its log streams, a read-only token sees
 * no write control and a forged write is refused, and so is a cross-site POST.
 */
import anyTest, { type TestFn } from 'ava';
import { createServer, type Server } from 'node:http';
import type { Browser, Page } from 'playwright-core';
import { CELL_COLOURS } from '../../console/src/map/colours.js';
import { assertEventually, freePorts } from '../../testkit/index.js';
import { launchChromium, mapCells, goRoute } from '../../testkit/console-page.js';
import { clusterForFile, isRunningView } from '../e2e/e2e-kit.js';
import { ADMIN_TOKEN, ConsoleReplica, loggedIn, VIEWER_TOKEN } from './console-kit.js';

const test = anyTest as TestFn;
const { serial, cluster: c } = clusterForFile(test, { name: 'console', net: 240, agents: 3 });

const TICK = `[Unit]
Description=Console test unit %i

[Service]
ExecStart=/bin/sh -c 'while true; do echo console-tick-%i; sleep 1; done'
`;
const RUNNING = CELL_COLOURS.running;

let replica: ConsoleReplica | undefined;
let browser: Browser | undefined;
let admin: Page | undefined;
let started: Promise<void> | undefined;
/**
 * The console's replica, the browser and the test units, once the cluster is up (ava runs
 * before hooks at once, so this is each test's first step rather than a hook of its own).
 */
function setUp(): Promise<void> {
  started ??= (async () => {
    replica = await ConsoleReplica.start(c());
    browser = await launchChromium();
    const file = await c().unitFile('tick@.service', TICK);
    await c().ok(['submit', file]);
    await c().ok([
      'start',
      '--timeout',
      '60s',
      'tick@1.service',
      'tick@2.service',
      'tick@3.service',
    ]);
  })();
  return started;
}
test.after.always(async () => {
  await browser?.close().catch(() => undefined);
  await replica?.stop();
});

function adminPage(): Page {
  if (admin === undefined) throw new Error('no admin page: the first test did not log in');
  return admin;
}

serial(
  'the map shows every machine and every unit, running units in the running colour',
  async (t) => {
    await setUp();
    admin = await loggedIn(browser as Browser, (replica as ConsoleReplica).url, ADMIN_TOKEN);
    const page = adminPage();
    const machines = c()
      .record.agents.map((a) => a.machineId)
      .sort();
    const shown = await assertEventually(
      async () => {
        const ids = await page.evaluate(() =>
          [
            ...((
              globalThis as unknown as { flotilla: { model: { machines: Map<string, unknown> } } }
            ).flotilla.model.machines.keys() ?? []),
          ].sort(),
        );
        const cells = await mapCells(page);
        const ticks = ['tick@1.service', 'tick@2.service', 'tick@3.service'];
        return ids.length === machines.length && ticks.every((u) => cells[u] === RUNNING)
          ? { ids, cells }
          : false;
      },
      { timeoutMs: 30_000, intervalMs: 200, message: 'every machine and unit drawn' },
    );
    t.deepEqual(shown.ids, machines);
    t.regex(await page.innerText('[data-test=map-counts]'), /^3 machines · 3 units · 0 pending/);
  },
);

serial('a unit stopped with flotctl changes colour on the open page within 1 s', async (t) => {
  await setUp();
  const page = adminPage();
  t.is((await mapCells(page))['tick@1.service'], RUNNING);
  const stop = await c().ok(['stop', '--no-block', 'tick@1.service']);
  const written = Date.now();
  t.regex(stop.stdout, /tick@1\.service/);
  const changed = await assertEventually(
    async () => {
      const colour = (await mapCells(page))['tick@1.service'];
      return colour !== undefined && colour !== RUNNING ? Date.now() : false;
    },
    { timeoutMs: 10_000, intervalMs: 20, message: 'tick@1 changes colour' },
  );
  t.log(`changed colour ${changed - written} ms after flotctl stop returned`);
  t.true(changed - written <= 1_000, `${changed - written} ms`);
  await c().ok(['start', '--timeout', '60s', 'tick@1.service']);
});

serial(
  'a unit file pasted with an error shows its line; fixed and submitted, it runs',
  async (t) => {
    await setUp();
    const page = adminPage();
    await goRoute(page, 'submit');
    await page.fill('[data-test=submit-name]', 'paste.service');
    const broken = `[Unit]\nDescription=pasted\n[X-Fleet]\nNoSuchKey=1\n[Service]\nExecStart=/bin/sh -c 'while true; do echo paste-line; sleep 1; done'\n`;
    await page.fill('[data-test=submit-text]', broken);
    await page.click('[data-test=plan]');
    const err = page.locator('[data-test=line-error]');
    await err.waitFor({ timeout: 20_000 });
    t.is(await err.getAttribute('data-line'), '4');
    t.regex(await err.innerText(), /NoSuchKey/);
    t.is(await page.getAttribute('.gutter .bad', 'data-line'), '4');
    t.false((await c().units()).has('paste.service'), 'nothing was written');

    await page.fill('[data-test=submit-text]', broken.replace('NoSuchKey=1\n', ''));
    await page.click('[data-test=plan]');
    await page.locator('[data-test=plan-result]').waitFor({ timeout: 20_000 });
    t.regex(await page.innerText('[data-test=plan-result]'), /paste\.service: would run on /);
    await page.click('[data-test=submit-start]');
    await page.locator('[data-test=submit-done]').waitFor({ timeout: 20_000 });
    await c().waitUnits('paste.service runs', (u) => isRunningView(u.get('paste.service')));
    t.pass();
  },
);

serial('the log tail streams a line the unit prints', async (t) => {
  await setUp();
  const page = adminPage();
  await goRoute(page, 'units/paste.service');
  await assertEventually(
    async () => ((await page.innerText('[data-test=log]')).match(/paste-line/g) ?? []).length >= 2,
    { timeoutMs: 30_000, intervalMs: 200, message: 'two paste-line lines in the log tail' },
  );
  t.pass();
});

serial('scale, stop and start from the page: the cluster does what was clicked', async (t) => {
  await setUp();
  const page = adminPage();
  await goRoute(page, 'units/tick@.service');
  await page.fill('[data-test=scale-count]', '4');
  await page.click('[data-test=scale]');
  await page.locator('[data-test=done]').waitFor({ timeout: 30_000 });
  await c().waitUnits('tick@4 runs', (u) => isRunningView(u.get('tick@4.service')));

  await goRoute(page, 'units/tick@4.service');
  await page.click('[data-test=stop]');
  await page.locator('[data-test=done]').waitFor({ timeout: 30_000 });
  await c().waitUnits('tick@4 stopped', (u) => u.get('tick@4.service')?.active === 'inactive');
  await assertEventually(
    async () => (await page.innerText('[data-test=unit-state]')) === 'stopped',
    { timeoutMs: 10_000, message: 'the page shows tick@4 stopped' },
  );
  await page.click('[data-test=start]');
  await c().waitUnits('tick@4 runs again', (u) => isRunningView(u.get('tick@4.service')));
  await assertEventually(
    async () => (await page.innerText('[data-test=unit-state]')) === 'running',
    { timeoutMs: 10_000, message: 'the page shows tick@4 running' },
  );
  t.pass();
});

serial('a read-only token sees no write control, and a write it forges gets 403', async (t) => {
  await setUp();
  const page = await loggedIn(browser as Browser, (replica as ConsoleReplica).url, VIEWER_TOKEN);
  await goRoute(page, 'units/tick@2.service');
  await page.locator('[data-test=unit-state]').waitFor({ timeout: 20_000 });
  for (const control of ['start', 'stop', 'destroy']) {
    t.is(await page.locator(`[data-test=${control}]`).count(), 0, control);
  }
  await goRoute(page, 'submit');
  t.is(await page.locator('[data-test=submit]').count(), 0);
  t.is(await page.locator('[data-test=submit-start]').count(), 0);
  await goRoute(page, 'machines');
  t.is(await page.locator('[data-test=drain]').count(), 0);
  const status = await page.evaluate(async () => {
    const session = (await (await fetch('/api/v1/session')).json()) as { csrfToken?: string };
    const res = await fetch('/api/v1/actions/stop', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-csrf-token': session.csrfToken ?? '' },
      body: JSON.stringify({ names: ['tick@2.service'] }),
    });
    return res.status;
  });
  t.is(status, 403);
  t.true(isRunningView((await c().units()).get('tick@2.service')), 'tick@2 still runs');
  await page.context().close();
});

serial(
  'a cross-site form POST to the API from a logged-in browser is refused and stops nothing',
  async (t) => {
    await setUp();
    const page = adminPage();
    const target = `${(replica as ConsoleReplica).url}/api/v1/actions/stop`;
    // Another site (localhost is not 127.0.0.1) whose page posts a form to the console's API.
    const [port] = await freePorts(1);
    const evil: Server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(
        `<form method="POST" action="${target}" enctype="text/plain"><input name='{"names":["tick@3.service"],"x":"' value='"}'></form><script>document.forms[0].submit()</script>`,
      );
    });
    await new Promise<void>((r) => evil.listen(port, '127.0.0.1', r));
    try {
      const answered = page.waitForResponse((r) => r.url() === target, { timeout: 20_000 });
      await page.goto(`http://localhost:${port}/`);
      const res = await answered;
      // The browser does not send the SameSite=Strict cookie to another site's form post, so
      // the request arrives without credentials (401); one that had them would be refused as
      // cross-site (403, CROSS_SITE_REQUEST). Either way it is refused and changes nothing.
      t.true(res.status() === 401 || res.status() === 403, `status ${res.status()}`);
      t.regex(await res.text(), /UNAUTHENTICATED|CROSS_SITE|CSRF/);
    } finally {
      await new Promise((r) => evil.close(r));
    }
    t.true(isRunningView((await c().units()).get('tick@3.service')), 'tick@3 still runs');
  },
);

serial(
  'the services view lists a service with its healthy endpoints, live as it scales',
  async (t) => {
    await setUp();
    const page = adminPage();
    const file = await c().unitFile(
      'echo@.service',
      `[Service]
ExecStart=/bin/sh -c 'while true; do echo serving-on-$PORT; sleep 1; done'

[X-Service]
Port=http
Tags=blue
`,
    );
    await c().ok(['submit', file]);
    await c().ok(['start', '--timeout', '60s', 'echo@1.service']);
    // Loaded afresh: an earlier test may have left this page on another site.
    await page.goto(`${(replica as ConsoleReplica).url}/ui/services`);
    await assertEventually(
      async () => /echo\s+1\/1/.test(await page.innerText('[data-test=services]')),
      { timeoutMs: 15_000, intervalMs: 200, message: 'echo listed with 1/1 endpoints' },
    );
    await c().ok(['start', '--timeout', '60s', 'echo@2.service']);
    await assertEventually(
      async () => /echo\s+2\/2/.test(await page.innerText('[data-test=services]')),
      { timeoutMs: 15_000, intervalMs: 200, message: 'echo follows to 2/2 without a reload' },
    );
    await goRoute(page, 'services/echo');
    const rows = await assertEventually(
      async () => {
        const text = await page.innerText('[data-test=endpoints]');
        return /echo@1\.service/.test(text) && /echo@2\.service/.test(text) ? text : false;
      },
      { timeoutMs: 15_000, intervalMs: 200, message: 'both endpoints listed' },
    );
    t.regex(rows, /:2\d{4}\s/, 'each endpoint shows its address and assigned port');
    t.regex(rows, /blue/);
    await c().ok(['destroy', 'echo@1.service', 'echo@2.service', 'echo@.service']);
  },
);
