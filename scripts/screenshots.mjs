#!/usr/bin/env node
// Takes the README's screenshots of the web console from a running scheduler's HTTP listener
// (the real console, never a mock-up): the cluster map, a unit's page and the submit view,
// into docs/images/. Debian's chromium through playwright-core (FLOTILLA_CHROMIUM to use
// another). Run against a cluster with something on it, e.g.:
//
//   bin/flotilla cluster up            # prints: console  http://127.0.0.1:4646/ui/
//   bin/flotctl submit deploy/examples/web@.service && bin/flotctl scale web@.service=3
//   node scripts/screenshots.mjs --url http://127.0.0.1:4646 [--token T] [--unit web@1.service]
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const { values } = parseArgs({
  options: {
    url: { type: 'string', default: 'http://127.0.0.1:4646' },
    token: { type: 'string' },
    unit: { type: 'string', default: 'web@1.service' },
    out: { type: 'string', default: fileURLToPath(new URL('../docs/images/', import.meta.url)) },
  },
});
mkdirSync(values.out, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.FLOTILLA_CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  await page.goto(`${values.url}/ui/`);
  if (values.token !== undefined) {
    await page.fill('[data-test=token]', values.token);
    await page.click('[data-test=login]');
  }
  const drawn = () => (globalThis.flotilla?.probe.mapDrawnAt ?? 0) > 0;
  await page.waitForFunction(drawn, null, { timeout: 60_000 });
  await page.waitForTimeout(500);
  await page.screenshot({ path: `${values.out}console-map.png` });
  await page.evaluate((u) => globalThis.flotilla.navigate(`units/${u}`), values.unit);
  await page.waitForSelector('[data-test=unit-state]', { timeout: 30_000 });
  await page.waitForFunction(
    () => (globalThis.document.querySelector('[data-test=log]')?.textContent ?? '') !== '',
    null,
    { timeout: 30_000 },
  );
  await page.screenshot({ path: `${values.out}console-unit.png` });
  await page.evaluate(() => globalThis.flotilla.navigate('submit'));
  await page.fill('[data-test=submit-name]', 'hello-web.service');
  await page.fill(
    '[data-test=submit-text]',
    [
      '[Unit]',
      'Description=A web server, with a typo',
      '',
      '[Service]',
      'ExecStart=/usr/bin/python3 -m http.server 8088',
      'MemoryMax=64M',
      '',
      '[X-Fleet]',
      'MachineMetadta=zone=a',
      '',
    ].join('\n'),
  );
  await page.click('[data-test=plan]');
  await page.waitForSelector('[data-test=line-error]', { timeout: 30_000 });
  await page.screenshot({ path: `${values.out}console-submit.png` });
  process.stdout.write(`screenshots in ${values.out}\n`);
} finally {
  await browser.close();
}
