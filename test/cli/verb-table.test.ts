/**
 * The verb table (cli/verb-table.ts): flotctl loads only the verb it runs, so `--help` and
 * completing a verb's name start without gRPC or the generated proto code, and the names and
 * summaries the table lists are the verbs' own. Which modules a run loads is read from a
 * module resolve hook in the flotctl process (node --import), not guessed from timings.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { HIDDEN_VERB_TABLE, VERB_TABLE } from '../../cli/verb-table.js';
import { flotctl, type Run } from './cli-kit.js';

const HOOK = `export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  process.stderr.write('loaded ' + r.url + '\\n');
  return r;
}
`;
const REGISTER = `import { register } from 'node:module';
register(new URL('./hook.mjs', import.meta.url));
`;

let dir = '';
test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flotilla-verb-table-'));
  await writeFile(join(dir, 'hook.mjs'), HOOK);
  await writeFile(join(dir, 'register.mjs'), REGISTER);
});
test.after.always(async () => {
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

/** Runs flotctl with the hook; the run and the modules it loaded (gRPC's own name included). */
async function traced(args: readonly string[]): Promise<{ run: Run; loaded: string[] }> {
  const run = await flotctl(args, { env: { NODE_OPTIONS: `--import=${dir}/register.mjs` } });
  const loaded = run.stderr
    .split('\n')
    .filter((l) => l.startsWith('loaded '))
    .map((l) => l.slice('loaded '.length));
  return { run, loaded };
}

const heavy = (loaded: readonly string[]): string[] =>
  loaded.filter((u) => /@grpc\/|\/proto\/|\/cli\/verbs\/|\/cli\/client\.js/.test(u));

test('flotctl --help lists the verbs without loading gRPC, the proto code or any verb', async (t) => {
  const { run, loaded } = await traced(['--help']);
  t.is(run.code, 0);
  t.regex(run.stdout, /^ {2}list-machines\s+list the machines of the cluster/m);
  t.true(
    loaded.some((u) => u.endsWith('/dist/cli/main.js')),
    'the hook saw main.js',
  );
  t.deepEqual(heavy(loaded), []);
});

test('completing a verb name loads neither gRPC nor the proto code', async (t) => {
  const { run, loaded } = await traced(['__complete', 'list-']);
  t.is(run.code, 0);
  t.deepEqual(run.stdout.split('\n').filter(Boolean), [
    'list-units',
    'list-unit-files',
    'list-machines',
    'list-schedulers',
    'list-services',
  ]);
  t.deepEqual(
    heavy(loaded).filter((u) => !u.includes('/cli/verbs/completion.js')),
    [],
  );
});

test('a verb that calls the API loads its own module and gRPC', async (t) => {
  // Port 1: nothing listens; the run fails, but only after loading what a call needs.
  const { run, loaded } = await traced(['--endpoint', '127.0.0.1:1', 'list-machines']);
  t.is(run.code, 1);
  t.true(loaded.some((u) => u.includes('/cli/verbs/machines.js')));
  t.true(loaded.some((u) => u.includes('@grpc/grpc-js')));
  t.false(
    loaded.some((u) => u.includes('/cli/verbs/status.js')),
    'no other verb',
  );
});

test("every entry of the verb table loads the verb of its name, with the table's summary", async (t) => {
  for (const entry of [...VERB_TABLE, ...HIDDEN_VERB_TABLE]) {
    const verb = await entry.load();
    t.is(verb.name, entry.name);
    t.is(verb.summary, entry.summary, entry.name);
    t.regex(verb.help, /^Usage: flotctl /, entry.name);
  }
});
