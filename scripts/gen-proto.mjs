#!/usr/bin/env node
// Regenerates the TypeScript for proto/flotilla/v1/*.proto with protoc and ts-proto.
// With --check it generates into a temporary directory and fails when the committed output
// differs, so CI catches a stale generation.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const check = process.argv.includes('--check');
const root = new URL('..', import.meta.url).pathname;
const protoDir = join(root, 'proto');
const srcDir = join(protoDir, 'flotilla', 'v1');
const protos = readdirSync(srcDir)
  .filter((f) => f.endsWith('.proto'))
  .sort()
  .map((f) => join('flotilla', 'v1', f));

const options = [
  'outputServices=grpc-js',
  'esModuleInterop=true',
  'forceLong=bigint',
  'importSuffix=.js',
  'env=node',
  'useOptionals=messages',
  'exportCommonSymbols=false',
  'outputTypeRegistry=false',
].join(',');

const out = mkdtempSync(join(tmpdir(), 'flotilla-proto-'));
try {
  execFileSync(
    'protoc',
    [
      `--plugin=protoc-gen-ts_proto=${join(root, 'node_modules', '.bin', 'protoc-gen-ts_proto')}`,
      `--ts_proto_out=${out}`,
      `--ts_proto_opt=${options}`,
      `-I${protoDir}`,
      ...protos,
    ],
    { stdio: 'inherit' },
  );
  const genDir = join(out, 'flotilla', 'v1');
  const generated = readdirSync(genDir)
    .filter((f) => f.endsWith('.ts'))
    .sort();
  if (check) {
    const stale = generated.filter((f) => {
      let committed = '';
      try {
        committed = readFileSync(join(srcDir, f), 'utf8');
      } catch {
        return true;
      }
      return committed !== readFileSync(join(genDir, f), 'utf8');
    });
    const extra = readdirSync(srcDir).filter((f) => f.endsWith('.ts') && !generated.includes(f));
    if (stale.length > 0 || extra.length > 0) {
      console.error(
        `proto: generated TypeScript is stale (${[...stale, ...extra].join(', ')}); run 'npm run proto' and commit.`,
      );
      process.exit(1);
    }
    console.log(`proto: ${generated.length} generated files are up to date`);
  } else {
    for (const f of readdirSync(srcDir).filter((f) => f.endsWith('.ts'))) rmSync(join(srcDir, f));
    cpSync(genDir, srcDir, { recursive: true });
    console.log(`proto: generated ${generated.join(', ')}`);
  }
} finally {
  rmSync(out, { recursive: true, force: true });
}
