/**
 * What `flotctl --version` and `flotilla --version` print: the package version (package.json)
 * and the commit it was built from, which `npm run build` writes to dist/build-info.json
 * (scripts/build-info.mjs). Read at run time relative to this file (dist/lib/version.js), so
 * it works from a checkout, a copy of it, or a package; anything missing reads as unknown.
 */
import { readFileSync } from 'node:fs';

/** The version and commit of this build. */
export interface BuildVersion {
  /** package.json's version, or `unknown`. */
  readonly version: string;
  /** The full commit id, or '' when the build did not know it (no git, no .git). */
  readonly commit: string;
  /** Tracked files differed from the commit when it was built. */
  readonly dirty: boolean;
}

function readJson(relative: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(readFileSync(new URL(relative, import.meta.url), 'utf8'));
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** This build's version and commit (never throws). */
export function buildVersion(): BuildVersion {
  const pkg = readJson('../../package.json');
  const info = readJson('../build-info.json');
  const commit = typeof info['commit'] === 'string' ? info['commit'] : '';
  return {
    version: typeof pkg['version'] === 'string' ? pkg['version'] : 'unknown',
    commit: /^[0-9a-f]{40}$/.test(commit) ? commit : '',
    dirty: info['dirty'] === true,
  };
}

/** `flotctl 0.1.0 (commit 197b054a1c2d)`, `(commit 197b054a1c2d, modified)` or `(unknown commit)`. */
export function versionLine(program: string, v: BuildVersion = buildVersion()): string {
  const commit =
    v.commit === ''
      ? 'unknown commit'
      : `commit ${v.commit.slice(0, 12)}${v.dirty ? ', modified' : ''}`;
  return `${program} ${v.version} (${commit})`;
}
