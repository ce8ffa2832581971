#!/usr/bin/env node
// Builds the web console (console/) into dist/ui/, which the scheduler serves at /ui/:
// type-checks it with its own tsconfig (the browser's DOM lib, the project's strictness),
// bundles it with esbuild into one content-hashed script and stylesheet (cached for good by
// the browser) and writes index.html naming them (never cached). Nothing is fetched at run
// time from anywhere but the scheduler. Run by `npm run build` (after build-info.mjs).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = `${root}dist/ui/`;

execFileSync(process.execPath, [`${root}node_modules/typescript/bin/tsc`, '-p', 'console'], {
  cwd: root,
  stdio: 'inherit',
});

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const result = await build({
  absWorkingDir: root,
  entryPoints: ['console/src/main.tsx', 'console/style.css'],
  bundle: true,
  minify: true,
  sourcemap: 'linked',
  format: 'esm',
  target: ['chrome110', 'firefox110', 'safari16'],
  entryNames: '[name]-[hash]',
  outdir: out,
  metafile: true,
  jsx: 'automatic',
  jsxImportSource: 'preact',
  logLevel: 'warning',
});
const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p));
const script = outputs.find((p) => p.startsWith('main-') && p.endsWith('.js'));
const style = outputs.find((p) => p.startsWith('style-') && p.endsWith('.css'));
if (script === undefined || style === undefined) throw new Error('console build: no bundle');
const html = readFileSync(`${root}console/index.html`, 'utf8')
  .replace('%SCRIPT%', script)
  .replace('%STYLE%', style);
writeFileSync(`${out}index.html`, html);
