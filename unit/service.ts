/**
 * The `[Service]` section: how the agent runs a unit. Defaults follow systemd (RestartSec
 * 100ms, TimeoutStopSec 90s, KillSignal SIGTERM). Unknown keys are ignored, as systemd does,
 * so unit files written for systemd keep working; values of known keys are checked.
 */
import { MAX_PROBLEMS, UnitError } from './errors.js';
import { parseEnvironmentAssignments } from './environment.js';
import { parseExecLine } from './exec.js';
import type {
  EnvironmentFileRef,
  ExecCommand,
  RestartPolicy,
  ServiceOptions,
  ServiceType,
  UnitEntry,
  UnitName,
} from './model.js';
import {
  applyAmbient,
  applyBounding,
  finishCapabilities,
  initialCapabilities,
  type CapabilityState,
} from './capabilities.js';
import { parseCpuQuotaMillicores, parseMemoryBytes, parseTasksMax } from './resources.js';
import { expandSpecifiers } from './specifiers.js';
import { excerpt } from './excerpt.js';
import { addSecret } from './secrets.js';
import { parseTimeSpanMs, requireBoolean, timeSpanHint } from './values.js';

/** systemd's defaults for the options Flotilla fills in. */
export const SERVICE_DEFAULTS = {
  type: 'simple',
  restart: 'no',
  restartSecMs: 100,
  timeoutStopSecMs: 90_000,
  killSignal: 'SIGTERM',
} as const;

const TYPES: readonly ServiceType[] = ['simple', 'exec', 'oneshot'];
const RESTARTS: readonly RestartPolicy[] = ['no', 'on-failure', 'always'];
/** systemd values Flotilla does not implement: refused with a pointer to the ones it does. */
const SYSTEMD_RESTARTS = ['on-success', 'on-abnormal', 'on-watchdog', 'on-abort'];

type ExecKey = 'execStartPre' | 'execStart' | 'execStartPost' | 'execStop' | 'execStopPost';
const EXEC_KEYS: ReadonlyMap<string, ExecKey> = new Map([
  ['ExecStartPre', 'execStartPre'],
  ['ExecStart', 'execStart'],
  ['ExecStartPost', 'execStartPost'],
  ['ExecStop', 'execStop'],
  ['ExecStopPost', 'execStopPost'],
]);

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type Lists = 'environment' | 'environmentFiles' | 'secrets';
type Caps = 'ambientCapabilities' | 'capabilityBoundingSet' | 'noNewPrivileges';
interface State extends Omit<Mutable<ServiceOptions>, ExecKey | Lists | Caps | 'resources'> {
  caps: CapabilityState;
  exec: Record<ExecKey, ExecCommand[]>;
  secrets: string[];
  environment: (readonly [string, string])[];
  environmentFiles: EnvironmentFileRef[];
  cpuMillicores: number;
  memoryBytes: number;
  tasks: number;
}

function invalid(key: string, value: string, expected: string, line: number): UnitError {
  return new UnitError('invalid-value', `${key}=${excerpt(value)}: ${expected}`, { line });
}

function span(key: string, value: string, line: number): number {
  const ms = parseTimeSpanMs(value);
  if (ms === undefined) throw new UnitError('invalid-value', timeSpanHint(key, value), { line });
  return ms;
}

function absolutePath(key: string, value: string, line: number): string {
  if (!value.startsWith('/')) throw invalid(key, value, 'expected an absolute path', line);
  return value;
}

type Handler = (s: State, value: string, line: number, key: string) => void;

/** Interpretations of non-empty values; an empty value resets (see `reset`). */
const HANDLERS: Readonly<Record<string, Handler>> = {
  Type(s, v, line, key) {
    const t = TYPES.find((x) => x === v);
    if (t === undefined) throw invalid(key, v, `unsupported; use ${TYPES.join(', ')}`, line);
    s.type = t;
  },
  Restart(s, v, line, key) {
    const r = RESTARTS.find((x) => x === v);
    if (r === undefined) {
      const why = SYSTEMD_RESTARTS.includes(v) ? 'not supported by Flotilla' : 'unknown';
      throw invalid(key, v, `${why}; use ${RESTARTS.join(', ')}`, line);
    }
    s.restart = r;
  },
  RestartSec(s, v, line, key) {
    const ms = span(key, v, line);
    if (ms === Infinity) throw invalid(key, v, 'expected a finite time span', line);
    s.restartSecMs = ms;
  },
  TimeoutStopSec(s, v, line, key) {
    const ms = span(key, v, line);
    s.timeoutStopSecMs = ms === Infinity ? 0 : ms;
  },
  TimeoutSec(s, v, line, key) {
    const ms = span(key, v, line);
    s.timeoutStopSecMs = ms === Infinity ? 0 : ms;
  },
  KillSignal(s, v, line, key) {
    const name = signalName(v);
    if (name === undefined)
      throw invalid(key, v, 'expected a signal name (SIGTERM, INT...) or number', line);
    s.killSignal = name;
  },
  Environment(s, v, line, key) {
    for (const pair of parseEnvironmentAssignments(v, line, key)) s.environment.push(pair);
  },
  EnvironmentFile(s, v, line, key) {
    const optional = v.startsWith('-');
    const path = absolutePath(key, optional ? v.slice(1) : v, line);
    s.environmentFiles.push({ path, optional });
  },
  WorkingDirectory(s, v, line, key) {
    const path = v.startsWith('-') ? v.slice(1) : v;
    if (path !== '~') absolutePath(key, path, line);
    s.workingDirectory = v;
  },
  User(s, v, line, key) {
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}\$?$/.test(v)) {
      throw invalid(key, v, 'expected a user name or numeric id', line);
    }
    s.user = v;
  },
  RootDirectory(s, v, line, key) {
    s.rootDirectory = absolutePath(key, v, line);
  },
  PrivateNetwork(s, v, line, key) {
    s.privateNetwork = requireBoolean(key, v, line);
  },
  MemoryMax(s, v, line, key) {
    s.memoryBytes = parseMemoryBytes(key, v, line);
  },
  MemoryLimit(s, v, line, key) {
    s.memoryBytes = parseMemoryBytes(key, v, line);
  },
  CPUQuota(s, v, line, key) {
    s.cpuMillicores = parseCpuQuotaMillicores(key, v, line);
  },
  Secret(s, v, line, key) {
    addSecret(s.secrets, key, v, line);
  },
  TasksMax(s, v, line, key) {
    s.tasks = parseTasksMax(key, v, line);
  },
  AmbientCapabilities(s, v, line, key) {
    applyAmbient(s.caps, v, line, key);
  },
  CapabilityBoundingSet(s, v, line, key) {
    applyBounding(s.caps, v, line, key);
  },
  NoNewPrivileges(s, v, line, key) {
    s.caps.noNewPrivileges = requireBoolean(key, v, line);
  },
};

/** Keys whose values get `%n %N %p %i` expanded (systemd expands them in these too). */
const EXPANDED = new Set([
  ...EXEC_KEYS.keys(),
  'Environment',
  'EnvironmentFile',
  'WorkingDirectory',
  'RootDirectory',
]);

function reset(s: State, key: string): void {
  const d = SERVICE_DEFAULTS;
  const exec = EXEC_KEYS.get(key);
  if (exec !== undefined) s.exec[exec] = [];
  else if (key === 'Type') s.type = d.type;
  else if (key === 'Restart') s.restart = d.restart;
  else if (key === 'RestartSec') s.restartSecMs = d.restartSecMs;
  else if (key === 'TimeoutStopSec' || key === 'TimeoutSec')
    s.timeoutStopSecMs = d.timeoutStopSecMs;
  else if (key === 'KillSignal') s.killSignal = d.killSignal;
  else if (key === 'Environment') s.environment = [];
  else if (key === 'EnvironmentFile') s.environmentFiles = [];
  else if (key === 'WorkingDirectory') s.workingDirectory = '';
  else if (key === 'User') s.user = '';
  else if (key === 'RootDirectory') s.rootDirectory = '';
  else if (key === 'PrivateNetwork') s.privateNetwork = false;
  else if (key === 'MemoryMax' || key === 'MemoryLimit') s.memoryBytes = 0;
  else if (key === 'CPUQuota') s.cpuMillicores = 0;
  else if (key === 'TasksMax') s.tasks = 0;
  else if (key === 'AmbientCapabilities') s.caps.ambient = new Set();
  else if (key === 'CapabilityBoundingSet') s.caps.bounding = undefined;
  else if (key === 'NoNewPrivileges') s.caps.noNewPrivileges = undefined;
  else if (key === 'Secret') s.secrets = [];
}

/**
 * Interpret `[Service]` entries for the unit `name`. Problems go to `errors` (a missing
 * ExecStart= has line 0: it is no one line's fault); the result is best-effort. An image
 * unit (`runsImage`) may leave ExecStart= out: the image's Entrypoint and Cmd run.
 */
export function parseServiceSection(
  entries: readonly UnitEntry[],
  name: UnitName,
  errors: UnitError[],
  runsImage = false,
): ServiceOptions {
  const s: State = {
    type: SERVICE_DEFAULTS.type,
    exec: { execStartPre: [], execStart: [], execStartPost: [], execStop: [], execStopPost: [] },
    restart: SERVICE_DEFAULTS.restart,
    restartSecMs: SERVICE_DEFAULTS.restartSecMs,
    timeoutStopSecMs: SERVICE_DEFAULTS.timeoutStopSecMs,
    killSignal: SERVICE_DEFAULTS.killSignal,
    environment: [],
    environmentFiles: [],
    workingDirectory: '',
    user: '',
    rootDirectory: '',
    privateNetwork: false,
    secrets: [],
    cpuMillicores: 0,
    memoryBytes: 0,
    tasks: 0,
    caps: initialCapabilities(),
  };
  for (const e of entries) {
    if (errors.length >= MAX_PROBLEMS) break;
    const exec = EXEC_KEYS.get(e.key);
    const handler = Object.hasOwn(HANDLERS, e.key) ? HANDLERS[e.key] : undefined;
    if (exec === undefined && handler === undefined) continue;
    const value = EXPANDED.has(e.key) ? expandSpecifiers(e.value, name) : e.value;
    try {
      if (value === '') reset(s, e.key);
      else if (exec !== undefined) {
        for (const cmd of parseExecLine(e.key, value, e.line)) s.exec[exec].push(cmd);
      } else handler?.(s, value, e.line, e.key);
    } catch (err) {
      if (!(err instanceof UnitError)) throw err;
      errors.push(err);
    }
  }
  checkExecStart(s, errors, runsImage);
  const { exec, cpuMillicores, memoryBytes, tasks, caps, secrets, ...rest } = s;
  return {
    ...rest,
    ...exec,
    ...finishCapabilities(caps, errors),
    resources: { cpuMillicores, memoryBytes, tasks },
    ...(secrets.length > 0 ? { secrets } : {}),
  };
}

function checkExecStart(s: State, errors: UnitError[], runsImage: boolean): void {
  const starts = s.exec.execStart;
  if (starts.length === 0 && !runsImage) {
    errors.push(
      new UnitError('missing-value', '[Service] has no ExecStart=: a unit needs a command to run'),
    );
  } else if (starts.length > 1 && s.type !== 'oneshot') {
    const second = starts[1] as ExecCommand;
    errors.push(
      new UnitError(
        'invalid-combination',
        `ExecStart= is given ${starts.length} times, but only Type=oneshot may have more than one (others run exactly one main process)`,
        { line: second.line },
      ),
    );
  }
}

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

/**
 * `KillSignal=`: `SIGTERM`, `TERM`, `sigterm` or `15` -> `SIGTERM` (Linux numbering, the agent
 * runs on Linux; real-time signals are not accepted); undefined for anything else.
 */
export function signalName(value: string): string | undefined {
  const v = value.trim();
  if (/^[0-9]{1,2}$/.test(v)) return SIGNALS.get(Number(v));
  const upper = v.toUpperCase();
  return BY_NAME.get(upper.startsWith('SIG') ? upper : `SIG${upper}`);
}
