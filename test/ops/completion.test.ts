/**
 * `flotctl completion`: the scripts load in real bash and zsh and, driven as the shells drive
 * them, complete verbs, flags, and unit and machine names read from a running API over a real
 * etcd; an API that does not answer completes nothing, quickly.
 */
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import { freePort, etcdForFile, unitText } from '../../testkit/index.js';
import { addMachine, ROOT, startTestApi, unitDir } from '../cli/cli-kit.js';

const run = promisify(execFile);
const etcd = etcdForFile(test);

function hasShell(shell: string): boolean {
  return spawnSync(shell, ['-c', 'true'], { timeout: 10_000 }).status === 0;
}

/** Runs `script` in `shell` with flotctl on PATH and the API at `endpoint`; its stdout lines. */
async function shell(shell: string, script: string, endpoint: string): Promise<string[]> {
  const { stdout } = await run(shell, ['-c', script], {
    timeout: 30_000,
    env: {
      ...process.env,
      PATH: `${ROOT}bin:${process.env['PATH'] ?? ''}`,
      FLOTCTL_ENDPOINT: endpoint,
    },
  });
  return stdout.split('\n').filter((l) => l !== '');
}

/**
 * Runs `script` in `shell` from the checkout, with flotctl NOT on PATH (bin/ taken out), as a
 * user who follows the README (`source <(bin/flotctl completion bash)`) has it.
 */
async function shellWithoutPath(
  shell: string,
  script: string,
  endpoint: string,
): Promise<string[]> {
  const path = (process.env['PATH'] ?? '')
    .split(':')
    .filter((dir) => dir !== `${ROOT}bin` && dir !== `${ROOT}bin/`)
    .join(':');
  const { stdout } = await run(shell, ['-c', `command -v flotctl && exit 6\n${script}`], {
    timeout: 30_000,
    cwd: ROOT,
    env: { ...process.env, PATH: path, FLOTCTL_ENDPOINT: endpoint },
  });
  return stdout.split('\n').filter((l) => l !== '');
}

/** bash: load the script, then complete `words` as bash would (the last word partial). */
function bashCompletes(words: string[]): string {
  const quoted = words.map((w) => `'${w}'`).join(' ');
  return `source <(flotctl completion bash) || exit 9
complete -p flotctl >/dev/null || exit 8
COMP_WORDS=(${quoted}); COMP_CWORD=${words.length - 1}
_flotctl
printf '%s\\n' "\${COMPREPLY[@]}"`;
}

/** zsh: load the script after compinit, then call the function with compadd capturing. */
function zshCompletes(words: string[]): string {
  const quoted = words.map((w) => `'${w}'`).join(' ');
  return `autoload -U compinit && compinit -u -D || exit 7
source <(flotctl completion zsh) || exit 9
[[ \${_comps[flotctl]} == _flotctl ]] || exit 8
compadd() { [[ $1 == -- ]] && shift; print -l -- "$@" }
_files() { print -- FILES }
words=(${quoted}); CURRENT=${words.length}
_flotctl`;
}

async function cluster(t: ExecutionContext) {
  const api = await startTestApi(t, etcd());
  const dir = await unitDir(t, {
    'web@.service': unitText(),
    'worker.service': unitText(),
    'db.service': unitText(),
  });
  const submitted = await api.run([
    'submit',
    `${dir}/web@.service`,
    `${dir}/worker.service`,
    `${dir}/db.service`,
  ]);
  t.is(submitted.code, 0, submitted.stderr);
  await addMachine(api.store, { id: 'machine-alpha' });
  await addMachine(api.store, { id: 'machine-beta' });
  return api;
}

test('the bash script loads and completes verbs, flags, unit and machine names from the cluster', async (t) => {
  const api = await cluster(t);
  t.deepEqual(await shell('bash', bashCompletes(['flotctl', 'sta']), api.endpoint), [
    'start',
    'status',
  ]);
  t.deepEqual(await shell('bash', bashCompletes(['flotctl', 'status', 'w']), api.endpoint), [
    'web@.service',
    'worker.service',
  ]);
  t.deepEqual(await shell('bash', bashCompletes(['flotctl', 'drain', 'machine-a']), api.endpoint), [
    'machine-alpha',
  ]);
  t.deepEqual(
    await shell(
      'bash',
      bashCompletes(['flotctl', 'list-units', '--machine', 'machine-']),
      api.endpoint,
    ),
    ['machine-alpha', 'machine-beta'],
  );
  const flags = await shell('bash', bashCompletes(['flotctl', 'journal', '-']), api.endpoint);
  t.true(flags.includes('--machine') && flags.includes('--endpoint'), flags.join(' '));
});

test('source <(bin/flotctl completion bash) completes without flotctl on PATH: the script runs bin/flotctl', async (t) => {
  const api = await cluster(t);
  const script = (words: string[]) =>
    bashCompletes(words).replace('<(flotctl completion bash)', '<(bin/flotctl completion bash)');
  t.deepEqual(await shellWithoutPath('bash', script(['bin/flotctl', 'sta']), api.endpoint), [
    'start',
    'status',
  ]);
  t.deepEqual(
    await shellWithoutPath('bash', script(['bin/flotctl', 'status', 'd']), api.endpoint),
    ['db.service'],
  );
  // From another directory too: the script names bin/flotctl by its absolute path.
  const elsewhere = script(['flotctl', 'undr']).replace(
    'COMP_WORDS=',
    'cd / || exit 5\nCOMP_WORDS=',
  );
  t.deepEqual(await shellWithoutPath('bash', elsewhere, api.endpoint), ['undrain']);
});

// .ci/run installs zsh; elsewhere the zsh and fish tests are skipped (and say so) without them.
const withZsh = hasShell('zsh') ? test : test.skip;

withZsh('the zsh script loads and completes a unit name from the cluster', async (t) => {
  const api = await cluster(t);
  t.deepEqual(await shell('zsh', zshCompletes(['flotctl', 'status', 'd']), api.endpoint), [
    'db.service',
  ]);
  t.deepEqual(await shell('zsh', zshCompletes(['flotctl', 'scale', 'web']), api.endpoint), [
    'web@.service',
  ]);
  t.deepEqual(await shell('zsh', zshCompletes(['flotctl', 'undr']), api.endpoint), ['undrain']);
  // submit takes files too
  t.deepEqual(await shell('zsh', zshCompletes(['flotctl', 'submit', 'x']), api.endpoint), [
    'FILES',
  ]);
});

withZsh('source <(bin/flotctl completion zsh) completes without flotctl on PATH', async (t) => {
  const api = await cluster(t);
  const script = zshCompletes(['bin/flotctl', 'status', 'd']).replace(
    '<(flotctl completion zsh)',
    '<(bin/flotctl completion zsh)',
  );
  t.deepEqual(await shellWithoutPath('zsh', script, api.endpoint), ['db.service']);
});

const withFish = hasShell('fish') ? test : test.skip;

withFish('the fish script loads and completes a unit name from the cluster', async (t) => {
  const api = await cluster(t);
  const fish = (line: string) =>
    shell(
      'fish',
      `flotctl completion fish | source; or exit 9\ncomplete -C '${line}'`,
      api.endpoint,
    );
  t.deepEqual(await fish('flotctl status w'), ['web@.service', 'worker.service']);
  t.deepEqual(await fish('flotctl completion '), ['bash', 'fish', 'zsh']);
});

test('an API that does not answer completes no names, within seconds', async (t) => {
  const silent = `127.0.0.1:${await freePort()}`;
  const started = Date.now();
  t.deepEqual(await shell('bash', bashCompletes(['flotctl', 'status', 'w']), silent), []);
  t.true(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
  // Verbs still complete: they need no API.
  t.deepEqual(await shell('bash', bashCompletes(['flotctl', 'plan']), silent), ['plan']);
});
