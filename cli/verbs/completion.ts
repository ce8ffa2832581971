/**
 * Shell completion: `flotctl completion bash|zsh|fish` prints a script that a shell sources;
 * the script asks `flotctl __complete WORD...` (the words so far, the last one partial) for
 * candidates, one per line. Verbs and flags come from the verb table and each verb's help;
 * unit and machine names from the cluster, one page at most, within {@link COMPLETE_TIMEOUT_MS}
 * (and the scripts wrap the call in `timeout`), so a slow or absent API never hangs the shell:
 * it just completes nothing.
 *
 * What a verb's arguments are is read from its usage line (UNIT, GLOB, TEMPLATE: units;
 * MACHINE: machines; FILE: files), so a new verb completes without an entry here.
 */
import { existsSync } from 'node:fs';
import { basename, isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ApiClient } from '../client.js';
import { GLOBAL_HELP } from '../global-options.js';
import { EXIT_OK, UsageError, type GlobalOptions, type Verb, type VerbEntry } from '../verb.js';

/** The whole completion, API call included, gives up after this long. */
export const COMPLETE_TIMEOUT_MS = 1_500;
/** At most this many names are offered. */
export const COMPLETE_MAX = 200;

const SHELLS = ['bash', 'zsh', 'fish'] as const;
type Shell = (typeof SHELLS)[number];

/** A candidate line that means "and file names" (the script turns it into file completion). */
const FILES = ':files';

/** Flags whose value is a machine id or a fixed word. */
const FLAG_VALUES: Readonly<Record<string, 'machines' | readonly string[]>> = {
  '--machine': 'machines',
  '-o': ['table', 'json'],
  '--output': ['table', 'json'],
};

/** Global flags that take a value (its word is not an argument). */
const GLOBAL_VALUE_FLAGS = new Set([
  '--endpoint',
  '--request-timeout',
  '-o',
  '--output',
  '--ca-file',
  '--cert-file',
  '--key-file',
  '--token',
]);

/**
 * `flotctl completion` and the hidden `flotctl __complete`, over the verb table `verbs()`. A
 * verb's module is loaded only to complete its flags or arguments: verb names come from the
 * table, and gRPC is loaded only to ask the API for names (it is most of a start's time).
 */
export function completionVerbs(verbs: () => readonly VerbEntry[]): readonly [Verb, Verb] {
  const completion: Verb = {
    name: 'completion',
    summary: 'print a shell completion script (bash, zsh or fish)',
    help: COMPLETION_HELP,
    run(args, io) {
      const shell = args[0];
      if (args.length !== 1 || !(SHELLS as readonly string[]).includes(shell ?? '')) {
        throw new UsageError(`give one shell: ${SHELLS.join(', ')}`);
      }
      io.stdout(SCRIPTS[shell as Shell](programPath()));
      return Promise.resolve(EXIT_OK);
    },
  };
  const complete: Verb = {
    name: '__complete',
    summary: 'candidates for shell completion (used by the completion scripts)',
    help: 'Usage: flotctl __complete WORD... (the words after flotctl; the last may be empty)\n',
    async run(args, io, globals) {
      const lines = await candidates(verbs(), args, globals);
      if (lines.length > 0) io.stdout(`${lines.join('\n')}\n`);
      return EXIT_OK;
    },
  };
  return [completion, complete];
}

/**
 * The candidates for the last of `words` (the words after `flotctl`, global options already
 * taken out into `globals` by flotctl's own parsing).
 */
export async function candidates(
  verbs: readonly VerbEntry[],
  words: readonly string[],
  globals: GlobalOptions,
): Promise<string[]> {
  const cur = words[words.length - 1] ?? '';
  const rest = words.slice(0, -1);
  const prev = rest[rest.length - 1] ?? '';
  if (GLOBAL_VALUE_FLAGS.has(prev) && FLAG_VALUES[prev] === undefined) return [];
  const entry = verbs.find((v) => v.name === rest[0] && v.name !== '__complete');
  const value = FLAG_VALUES[prev];
  if (Array.isArray(value)) return starting(value, cur);
  if (value === 'machines') return machines(globals, cur);
  if (entry === undefined) {
    if (cur.startsWith('-')) return starting(flagsOf(GLOBAL_HELP), cur);
    return starting(
      verbs.filter((v) => v.name !== '__complete').map((v) => v.name),
      cur,
    );
  }
  const verb = await entry.load();
  if (cur.startsWith('-')) return starting([...flagsOf(verb.help), ...flagsOf(GLOBAL_HELP)], cur);
  if (verb.name === 'completion') return rest.length > 1 ? [] : starting(SHELLS, cur);
  const usage = /^Usage: .*$/m.exec(verb.help)?.[0] ?? '';
  const out: string[] = [];
  if (/\bFILE\b/.test(usage)) out.push(FILES);
  if (/\b(UNIT|GLOB|TEMPLATE)\b/.test(usage)) out.push(...(await units(globals, cur)));
  else if (/\bMACHINE\b/.test(usage)) out.push(...(await machines(globals, cur)));
  else if (/ NAME\b/.test(usage)) out.push(...(await services(globals, cur)));
  return out;
}

/** Every `--flag` and `-f` a help text names. */
function flagsOf(help: string): string[] {
  return [...new Set(help.match(/(?<![\w-])--?[A-Za-z][\w-]*/g) ?? [])];
}

function starting(words: readonly string[], prefix: string): string[] {
  return words.filter((w) => w.startsWith(prefix));
}

/** Unit names starting with `prefix` (one page; nothing on any failure or after the timeout). */
async function units(globals: GlobalOptions, prefix: string): Promise<string[]> {
  if (/[*?[\]]/.test(prefix)) return [];
  return fromApi(globals, async (api) => {
    const page = await api.listUnitsPage({
      nameGlob: `${prefix}*`,
      pageSize: COMPLETE_MAX,
      brief: true,
    });
    return page.units.map((u) => u.unit?.name ?? '').filter((n) => n !== '');
  });
}

/** Machine ids starting with `prefix`. */
async function machines(globals: GlobalOptions, prefix: string): Promise<string[]> {
  return fromApi(globals, async (api) => {
    const page = await api.listMachinesPage(1_000);
    return starting(
      page.machines.map((m) => m.machine?.id ?? ''),
      prefix,
    ).slice(0, COMPLETE_MAX);
  });
}

/** Service names starting with `prefix` (`endpoints NAME`). */
async function services(globals: GlobalOptions, prefix: string): Promise<string[]> {
  return fromApi(globals, async (api) =>
    starting(
      (await api.listServices()).services.map((s) => s.name),
      prefix,
    ).slice(0, COMPLETE_MAX),
  );
}

async function fromApi(
  globals: GlobalOptions,
  ask: (api: ApiClient) => Promise<string[]>,
): Promise<string[]> {
  let api: ApiClient;
  try {
    const { ApiClient } = await import('../client.js');
    api = new ApiClient({ ...globals, requestTimeoutMs: COMPLETE_TIMEOUT_MS });
  } catch {
    return [];
  }
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      ask(api),
      new Promise<string[]>((resolve) => {
        timer = setTimeout(() => resolve([]), COMPLETE_TIMEOUT_MS);
      }),
    ]);
  } catch {
    return [];
  } finally {
    clearTimeout(timer);
    api.close();
  }
}

const COMPLETION_HELP = `Usage: flotctl completion bash|zsh|fish

Prints a completion script for the shell: verbs, flags, and unit and machine names from the
cluster (asked with a ${COMPLETE_TIMEOUT_MS / 1000}s limit; a slow or absent API completes nothing).

  bash:  source <(flotctl completion bash)        # or save it in /etc/bash_completion.d/flotctl
  zsh:   source <(flotctl completion zsh)         # after compinit; or save as _flotctl in $fpath
  fish:  flotctl completion fish > ~/.config/fish/completions/flotctl.fish

The names come from the API that --endpoint / FLOTCTL_ENDPOINT (and the TLS and token options)
of the command line being completed point at.
`;

/**
 * The flotctl the script should run: the one printing it (bin/flotctl of this build), so that
 * `source <(bin/flotctl completion bash)` works without bin/ on PATH; plain `flotctl` (PATH)
 * when that path is unknown. The scripts fall back to PATH when the file has gone since.
 */
export function programPath(): string {
  const running = process.argv[1] ?? '';
  if (basename(running) === 'flotctl' && isAbsolute(running) && existsSync(running)) {
    return running;
  }
  const bin = fileURLToPath(new URL('../../../bin/flotctl', import.meta.url));
  return existsSync(bin) ? bin : 'flotctl';
}

/** `text` as one single-quoted sh word (bash and zsh). */
function shQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/**
 * The flotctl path in the script, then `timeout 3` where coreutils' timeout exists: a second
 * guard against a hang.
 */
const BASH = (
  program: string,
): string => `# flotctl completion for bash: source <(flotctl completion bash)
_flotctl() {
  local cur=\${COMP_WORDS[COMP_CWORD]} out line bin=${shQuote(program)}
  [ -x "$bin" ] || bin=flotctl
  local -a guard=()
  command -v timeout >/dev/null 2>&1 && guard=(timeout 3)
  out=$("\${guard[@]}" "$bin" __complete "\${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null) || out=''
  COMPREPLY=()
  while IFS= read -r line; do
    [ -z "$line" ] && continue
    if [ "$line" = '${FILES}' ]; then
      while IFS= read -r line; do COMPREPLY+=("$line"); done < <(compgen -f -- "$cur")
    else
      COMPREPLY+=("$line")
    fi
  done <<< "$out"
}
complete -o filenames -F _flotctl flotctl
`;

const ZSH = (program: string): string => `#compdef flotctl
# flotctl completion for zsh: source <(flotctl completion zsh) after compinit
_flotctl() {
  local -a out guard
  local bin=${shQuote(program)}
  [[ -x $bin ]] || bin=flotctl
  (( $+commands[timeout] )) && guard=(timeout 3)
  out=("\${(@f)$($guard $bin __complete "\${(@)words[2,CURRENT]}" 2>/dev/null)}")
  out=(\${out:#})
  if (( \${out[(Ie)${FILES}]} )); then
    out=(\${out:#${FILES}})
    _files
  fi
  (( \${#out} )) && compadd -- "\${out[@]}"
  return 0
}
if (( $+functions[compdef] )); then
  compdef _flotctl flotctl
fi
`;

const FISH = (
  program: string,
): string => `# flotctl completion for fish: flotctl completion fish > ~/.config/fish/completions/flotctl.fish
function __flotctl_complete
  set -l words (commandline -opc) (commandline -ct)
  set -l bin '${program.replace(/[\\']/g, '\\$&')}'
  test -x $bin; or set bin flotctl
  set -l guard
  command -q timeout; and set guard timeout 3
  set -l out ($guard $bin __complete $words[2..-1] 2>/dev/null)
  for line in $out
    if test "$line" = '${FILES}'
      __fish_complete_path (commandline -ct)
    else
      echo $line
    end
  end
end
complete -c flotctl -f -a '(__flotctl_complete)'
`;

/** Each shell's script, given the flotctl it should run. */
const SCRIPTS: Readonly<Record<Shell, (program: string) => string>> = {
  bash: BASH,
  zsh: ZSH,
  fish: FISH,
};
