#!/usr/bin/env node
// Writes dist/build-info.json after `tsc` (npm run build): the commit the build was made
// from, so `flotctl --version` and `flotilla --version` can say it. Without git or a .git
// (a tarball), the commit is "" and the commands say "unknown commit"; a build never fails
// over it. See lib/version.ts.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

function git(args) {
  try {
    const out = execFileSync('git', args, {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 10_000,
    });
    return out.trim();
  } catch {
    return '';
  }
}

const head = git(['rev-parse', '--verify', '--quiet', 'HEAD']);
const commit = /^[0-9a-f]{40}$/.test(head) ? head : '';
// Tracked files changed since that commit: the build is not exactly the commit.
const dirty = commit !== '' && git(['status', '--porcelain', '--untracked-files=no']) !== '';
mkdirSync(new URL('../dist/', import.meta.url), { recursive: true });
writeFileSync(
  new URL('../dist/build-info.json', import.meta.url),
  `${JSON.stringify({ commit, dirty })}\n`,
);
