/**
 * The docs say what the code does, where a claim can be checked mechanically: container names
 * shown in examples are the ones the runc driver gives, `[Container]` health checks are not
 * called unimplemented (they run: the parser reads them there), links point at files that
 * exist, and the shipped image example names a registry the local cluster's machines reach.
 */
import test from 'ava';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MachineLayout } from '../../agent/runtime/layout.js';
import { parseUnit } from '../../unit/index.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DOCS = [
  'README.md',
  ...readdirSync(join(ROOT, 'docs')).map((f) => `docs/${f}`),
  ...['agent', 'scheduler', 'cli', 'deploy/examples'].map((d) => `${d}/README.md`),
].filter((f) => f.endsWith('.md') && existsSync(join(ROOT, f)));
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');

test('every container name in the docs is one the runc driver gives: flotilla-<machine id>-<escaped unit>', (t) => {
  let seen = 0;
  for (const doc of DOCS) {
    for (const [, machine = '', unit = ''] of read(doc).matchAll(
      /Container:\s+flotilla-([0-9a-f]+)-(\S+)/g,
    )) {
      seen += 1;
      const unescaped = unit.replace(/\+([0-9a-f]{2})/g, (_, h: string) =>
        String.fromCharCode(parseInt(h, 16)),
      );
      const expected = new MachineLayout('/unused', machine).containerId(unescaped);
      t.is(`flotilla-${machine}-${unit}`, expected, `${doc} names a container`);
      t.is(machine.length, 32, `${doc}: a machine id is 32 hex digits, not shortened`);
    }
  }
  t.true(seen > 0, 'docs/cli.md shows containers in its status examples');
});

test('docs do not call [Container] health checks unimplemented, and they parse there', (t) => {
  for (const doc of DOCS) {
    t.false(/health checks are not run yet|not run: health checks/.test(read(doc)), doc);
  }
  const unit = parseUnit(
    'c.service',
    '[Container]\nImage=example.com/app:1\nHealthCmd=true\nHealthOnFailure=restart\n',
  );
  t.is(unit.service.health?.command, 'true', 'the agent gets the check to run');
});

test('relative links in the docs point at files in the repository; none at a DESIGN.md', (t) => {
  for (const doc of DOCS) {
    const text = read(doc);
    t.false(/DESIGN\.md/.test(text), `${doc} mentions DESIGN.md`);
    for (const [, target = ''] of text.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
      if (/^[a-z]+:/.test(target)) continue;
      t.true(existsSync(resolve(ROOT, dirname(doc), target)), `${doc} links to ${target}`);
    }
  }
});
