/**
 * Signal names for `KillSignal=`: `SIGTERM`, `TERM` or `15` all mean `SIGTERM`. Linux
 * numbering (the agent runs on Linux); real-time signals are not accepted.
 */

/** Linux signal numbers 1..31 -> names. */
const SIGNALS: ReadonlyMap<number, string> = new Map([
  [1, 'SIGHUP'],
  [2, 'SIGINT'],
  [3, 'SIGQUIT'],
  [4, 'SIGILL'],
  [5, 'SIGTRAP'],
  [6, 'SIGABRT'],
  [7, 'SIGBUS'],
  [8, 'SIGFPE'],
  [9, 'SIGKILL'],
  [10, 'SIGUSR1'],
  [11, 'SIGSEGV'],
  [12, 'SIGUSR2'],
  [13, 'SIGPIPE'],
  [14, 'SIGALRM'],
  [15, 'SIGTERM'],
  [16, 'SIGSTKFLT'],
  [17, 'SIGCHLD'],
  [18, 'SIGCONT'],
  [19, 'SIGSTOP'],
  [20, 'SIGTSTP'],
  [21, 'SIGTTIN'],
  [22, 'SIGTTOU'],
  [23, 'SIGURG'],
  [24, 'SIGXCPU'],
  [25, 'SIGXFSZ'],
  [26, 'SIGVTALRM'],
  [27, 'SIGPROF'],
  [28, 'SIGWINCH'],
  [29, 'SIGIO'],
  [30, 'SIGPWR'],
  [31, 'SIGSYS'],
]);

const BY_NAME: ReadonlyMap<string, string> = new Map([
  ...[...SIGNALS.values()].map((n): [string, string] => [n, n]),
  ['SIGIOT', 'SIGABRT'],
  ['SIGPOLL', 'SIGIO'],
  ['SIGCLD', 'SIGCHLD'],
]);

/** `SIGTERM`, `TERM`, `sigterm` or `15` -> `SIGTERM`; undefined for anything else. */
export function signalName(value: string): string | undefined {
  const v = value.trim();
  if (/^[0-9]{1,2}$/.test(v)) return SIGNALS.get(Number(v));
  const upper = v.toUpperCase();
  return BY_NAME.get(upper.startsWith('SIG') ? upper : `SIG${upper}`);
}
