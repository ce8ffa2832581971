/**
 * `flotilla agent` settings. Three sources, in order of precedence: flags, `FLOTILLA_<FLAG>`
 * environment variables, then an optional config file (`--config FILE`). What none of them
 * gives is detected from the host (machine id, capacity, address, driver) or takes the
 * documented default. The config file is a JSON object or `key=value` lines, keys named like
 * the flags; values are read exactly as the flag would be (a JSON map becomes `k=v,...`, a
 * list a comma-separated string):
 *
 * ```
 * { "machine-id": "m1", "metadata": { "region": "us" }, "cpu": 4, "keep-units-on-exit": true }
 * ```
 * ```
 * # comments and blank lines are ignored
 * machine-id = m1
 * metadata = region=us,disk=ssd
 * ```
 */
import { parseRegistryFlags, registryFlags, REGISTRY_USAGE } from '../daemon/registry-flags.js';
import type { RegistryOptions } from '../registry/skopeo.js';
import { readFileSync } from 'node:fs';
import { availableParallelism, networkInterfaces, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import {
  commonFlags,
  DaemonArgs,
  defaultEtcdEndpoints,
  defaultPrefix,
  envName,
  UsageError,
} from '../daemon/options.js';
import { parseEtcdTls, parseServerTls, serverTlsFlags } from '../daemon/tls-flags.js';
import { parseMetricsListen } from '../daemon/metrics-server.js';
import type { ServerTls } from '../daemon/tls.js';
import { parseTokenFile } from '../daemon/agent-token.js';
import type { LogsClientAuth } from './logs/client-auth.js';
import type { StoreAuth, StoreTls } from '../store/index.js';
import { parseEtcdAuth } from '../daemon/etcd-auth-flags.js';
import { DATA_PLANES, type DataPlaneChoice } from './mesh/data-plane.js';
import { parseMemoryBytes } from '../unit/index.js';
import type { SecretsKey } from '../lib/secret-box.js';
import { readSecretsKey } from '../daemon/secrets-key-flag.js';
import { parseUsernsRemap, type UsernsSetting } from './runtime/userns.js';

/** The runtime drivers, plus `auto`: runc when usable (installed, root), else process. */
export type DriverChoice = 'runc' | 'process' | 'auto';

/** The agent's settings with every default applied ({@link parseAgentArgs} fills them). */
export interface AgentOptions {
  readonly machineId: string;
  /** The agent's own machine metadata (API-set metadata is merged over it elsewhere). */
  readonly metadata: Readonly<Record<string, string>>;
  /** The advertised address: first of the machine record's addresses. */
  readonly publicIp: string;
  readonly cpuMillicores: number;
  readonly memoryBytes: number;
  readonly endpoints: readonly string[];
  readonly prefix: string;
  readonly driver: DriverChoice;
  /**
   * runc containers' user namespace (`--userns-remap`, runtime/userns.ts): `auto` (default)
   * where the kernel allows one and a range is free, `off`, or a host range.
   */
  readonly usernsRemap?: UsernsSetting;
  /**
   * Root of the agents' state on this host; one machine's units and logs live under
   * `<stateDir>/<machineId>/`, so several agents can share it.
   */
  readonly stateDir: string;
  /** Lease TTL of the machine record and the state records, whole seconds. */
  readonly leaseTtlSeconds: number;
  /** host:port of the Logs gRPC service (port 0 picks a free one). */
  readonly logsListen: string;
  /** On SIGTERM leave the units running and the lease to expire (agent upgrades). */
  readonly keepUnitsOnExit: boolean;
  readonly logLevel: string;
  /** The periodic reconcile pass, besides the one every watch event triggers. */
  readonly tickMs: number;
  /** TLS towards etcd (`--etcd-cafile` ...); absent: plaintext or public roots. */
  readonly etcdTls?: StoreTls;
  /** etcd's user and password (`--etcd-user-file`); absent: etcd without auth. */
  readonly etcdAuth?: StoreAuth;
  /** The Logs service's certificate and key, and the client CA for mutual TLS; absent: plaintext. */
  readonly logsTls?: ServerTls;
  /**
   * Who may read logs (`--logs-token-file`, `--tls-client-names`); absent: any client that can
   * connect (and pass TLS, when `logsTls` has a client CA).
   */
  readonly logsAuth?: LogsClientAuth;
  /** HTTP address of /metrics, /healthz and /readyz; absent: not served (the default). */
  readonly metricsListen?: string;
  /** How image units' images are pulled (`--registry-auth-file`, `--insecure-registry`). */
  readonly registry?: RegistryOptions;
  /** The image store's budget in bytes; 0: a quarter of its disk (`--image-store-max`). */
  readonly imageStoreMaxBytes?: number;
  /** Serve every service's published port here (`--mesh`, default on; `--no-mesh` off). */
  readonly mesh?: boolean;
  /** The address published ports listen on (`--mesh-listen-address`, default 0.0.0.0). */
  readonly meshListenAddress?: string;
  /** What carries the mesh's bytes (`--mesh-data-plane`, default auto: HAProxy when found). */
  readonly meshDataPlane?: DataPlaneChoice;
  /** host:port of the DNS server (`--dns-listen`); absent: no DNS. */
  readonly dnsListen?: string;
  /** host:port other names are forwarded to (`--dns-recursor`); absent: REFUSED. */
  readonly dnsRecursor?: string;
  /** Dynamic ports ([X-Service] Port=NAME) are picked from here (`--port-range`, inclusive). */
  readonly portRange?: { readonly first: number; readonly last: number };
  /**
   * The cluster's secrets key (`--secrets-key-file`, the schedulers' file): opens what units
   * name with `Secret=`; absent: such units fail with a reason (they never run without it).
   */
  readonly secretsKey?: SecretsKey;
}

/** Defaults, in one place. */
export const AGENT_DEFAULTS = {
  machineIdFile: '/etc/machine-id',
  stateRoot: '/var/lib/flotilla',
  leaseTtlSeconds: 10,
  logsListen: '127.0.0.1:4701',
  logLevel: 'info',
  tickMs: 5_000,
  portRange: { first: 20000, last: 32767 },
} as const;

/** The help text of `flotilla agent`. */
export const AGENT_USAGE = `Usage: flotilla agent [flags]

Runs the agent of one machine: registers it in etcd, runs the units placed on it as
containers, reports their state and serves their logs. Every flag also reads FLOTILLA_<FLAG>
(e.g. FLOTILLA_MACHINE_ID); flags win over the environment, the environment over --config.

Flags:
  --config FILE              JSON object or key=value lines, keys named like these flags
  --machine-id ID            this machine's id (default: the content of /etc/machine-id)
  --metadata K=V,...         machine metadata for [X-Fleet] MachineMetadata= and SpreadBy=
  --public-ip ADDRESS        advertised address (default: the first non-loopback IPv4)
  --cpu N                    CPU capacity: cores (2, 1.5) or millicores (1500m) (default: all)
  --memory SIZE              memory capacity: bytes or K/M/G/T suffix (default: total RAM)
  --etcd-endpoints URLS      comma-separated etcd client URLs (default ${defaultEtcdEndpoints.join(',')})
  --prefix PREFIX            cluster key prefix in etcd (default ${defaultPrefix})
  --driver NAME              runc, process or auto (default auto: runc when installed and root)
  --userns-remap auto|off|FIRST:COUNT
                             runc containers' user namespace: ids 0-65535 are host ids FIRST..
                             (default auto: the flotilla user's /etc/subuid and /etc/subgid
                             range, else 100000:65536 when free; off where the kernel refuses)
  --state-dir DIR            unit state and logs go in DIR/<machine-id> (default ${AGENT_DEFAULTS.stateRoot})
  --lease-ttl DURATION       machine lease TTL, whole seconds (default 10s)
  --logs-listen HOST:PORT    Logs service address (default ${AGENT_DEFAULTS.logsListen})
  --keep-units-on-exit       on SIGTERM leave units running and the machine registered until
                             its lease expires (for an upgrade); default: stop them, unregister
  --tick DURATION            periodic reconcile pass (default 5s)
  --port-range FIRST-LAST    dynamic ports for [X-Service] Port=NAME come from here
                             (default 20000-32767)
  --log-level LEVEL          fatal, error, warn, info, debug, trace or silent (default info)
  --metrics-listen HOST:PORT serve Prometheus /metrics, /healthz and /readyz over HTTP here
                             (default none: not served; e.g. 127.0.0.1:9471)
  -h, --help                 show this help

TLS (PEM files; see docs/operations.md):
  --etcd-cafile FILE         CA of etcd's certificate (with https:// endpoints)
  --etcd-certfile FILE       client certificate for etcd --client-cert-auth, with:
  --etcd-keyfile FILE        its key
  --etcd-user-file FILE      etcd auth: one line user:password (this machine's user), 0600
  --tls-cert-file FILE       serve Logs over TLS with this certificate (naming --public-ip), with:
  --tls-key-file FILE        its key
  --tls-client-ca-file FILE  require client certificates signed by this CA (the schedulers')
  --tls-client-names NAMES   with --tls-client-ca-file: only certificates naming one of these
                             (CN, DNS or IP SAN; comma-separated) may read logs
  --logs-token-file FILE     only requests signed with this shared secret (the schedulers'
                             --agent-token-file; 32+ characters, keep it 0600) may read logs
  --allow-insecure-clients   serve Logs without verifying clients, in plaintext or TLS
                             (refused otherwise: give --logs-token-file or a client CA)
  --secrets-key-file FILE    the cluster's secrets key (the schedulers' file, 0600): units
                             get the secrets they name (Secret=) at /run/secrets/NAME;
                             default none: a unit naming a secret fails

Services (see docs/operations.md):
  --mesh, --no-mesh          serve the routing mesh, or not (default --mesh: every published
                             port of every service listens here and forwards to its
                             endpoints)
  --mesh-listen-address ADDR where published ports listen (default 0.0.0.0: every address)
  --mesh-data-plane NAME     haproxy, builtin or auto (default auto: haproxy 2.5+ when
                             installed, supervised by the agent; else the built-in proxy)
  --dns-listen HOST:PORT     answer DNS for NAME.service.flotilla here, UDP and TCP
                             (default none: no DNS)
  --dns-recursor HOST:PORT   forward other names there (default: answer them REFUSED)

Images (see docs/operations.md):
  --image-store-max SIZE     collect unused images past this size, bytes or K/M/G/T
                             (default: a quarter of the disk holding --state-dir)
${REGISTRY_USAGE}`;

const agentFlags = {
  config: { type: 'string' },
  'machine-id': { type: 'string' },
  metadata: { type: 'string' },
  'public-ip': { type: 'string' },
  cpu: { type: 'string' },
  memory: { type: 'string' },
  driver: { type: 'string' },
  'userns-remap': { type: 'string' },
  'state-dir': { type: 'string' },
  'lease-ttl': { type: 'string' },
  'logs-listen': { type: 'string' },
  'keep-units-on-exit': { type: 'boolean' },
  tick: { type: 'string' },
  'image-store-max': { type: 'string' },
  mesh: { type: 'boolean' },
  'no-mesh': { type: 'boolean' },
  'mesh-listen-address': { type: 'string' },
  'mesh-data-plane': { type: 'string' },
  'dns-listen': { type: 'string' },
  'dns-recursor': { type: 'string' },
  'port-range': { type: 'string' },
  'logs-token-file': { type: 'string' },
  'tls-client-names': { type: 'string' },
  'allow-insecure-clients': { type: 'boolean' },
  'secrets-key-file': { type: 'string' },
  ...serverTlsFlags,
  ...registryFlags,
} as const;

/** Every flag the agent accepts, for the config file's key check. */
const KNOWN_KEYS: ReadonlySet<string> = new Set(
  [...Object.keys(commonFlags), ...Object.keys(agentFlags)].filter(
    (k) => k !== 'help' && k !== 'config',
  ),
);

/** What the host tells us, injectable so tests do not depend on the machine they run on. */
export interface HostFacts {
  readonly env: NodeJS.ProcessEnv;
  readFile(path: string): string;
  cpuMillicores(): number;
  memoryBytes(): number;
  publicIp(): string;
}

/** The real host. */
export const HOST: HostFacts = {
  env: process.env,
  readFile: (path) => readFileSync(path, 'utf8'),
  cpuMillicores: () => availableParallelism() * 1000,
  memoryBytes: () => totalmem(),
  publicIp: firstPublicIpv4,
};

/** The first non-internal IPv4 address, else 127.0.0.1. */
export function firstPublicIpv4(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const addr of list ?? []) {
      if (addr.family === 'IPv4' && !addr.internal) return addr.address;
    }
  }
  return '127.0.0.1';
}

/** Parses argv, env and config file; `help` is true when usage was asked for. Throws UsageError. */
export function parseAgentArgs(
  argv: readonly string[],
  host: HostFacts = HOST,
): { help: true } | { help: false; options: AgentOptions } {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: [...argv],
      options: { ...commonFlags, ...agentFlags },
      allowPositionals: false,
      strict: true,
    }).values as Record<string, string | boolean | undefined>;
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  const bare = new DaemonArgs(values, host.env);
  if (bare.boolean('help')) return { help: true };
  const configPath = bare.string('config');
  const fileEnv: Record<string, string> = {};
  if (configPath !== undefined) {
    for (const [key, value] of Object.entries(readConfigFile(configPath, host.readFile))) {
      if (!KNOWN_KEYS.has(key)) throw new UsageError(`${configPath}: unknown key ${key}`);
      fileEnv[envName(key)] = value;
    }
  }
  const definedEnv = Object.fromEntries(
    Object.entries(host.env).filter(([, v]) => v !== undefined && v !== ''),
  );
  return {
    help: false,
    options: resolve(new DaemonArgs(values, { ...fileEnv, ...definedEnv }), host),
  };
}

function resolve(args: DaemonArgs, host: HostFacts): AgentOptions {
  const machineId = args.string('machine-id') ?? readMachineId(host);
  if (!/^[A-Za-z0-9_.:-]{1,128}$/.test(machineId)) {
    throw new UsageError(
      `--machine-id=${machineId}: expected 1-128 letters, digits, '_', '.', ':' or '-'`,
    );
  }
  const ttlMs = args.durationMs('lease-ttl', AGENT_DEFAULTS.leaseTtlSeconds * 1000);
  if (ttlMs < 1000 || ttlMs % 1000 !== 0) {
    throw new UsageError('--lease-ttl: expected whole seconds, at least 1s');
  }
  const driver = args.stringOr('driver', 'auto');
  if (driver !== 'runc' && driver !== 'process' && driver !== 'auto') {
    throw new UsageError(`--driver=${driver}: expected runc, process or auto`);
  }
  let usernsRemap: UsernsSetting;
  try {
    usernsRemap = parseUsernsRemap(args.stringOr('userns-remap', 'auto'));
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  const endpoints = args.list('etcd-endpoints', defaultEtcdEndpoints);
  if (endpoints.length === 0) throw new UsageError('--etcd-endpoints: no endpoint given');
  const tickMs = args.durationMs('tick', AGENT_DEFAULTS.tickMs);
  if (tickMs < 10) throw new UsageError('--tick: expected at least 10ms');
  const logsListen = args.stringOr('logs-listen', AGENT_DEFAULTS.logsListen);
  if (!/^.+:\d+$/.test(logsListen)) {
    throw new UsageError(`--logs-listen=${logsListen}: expected HOST:PORT`);
  }
  const cpu = args.string('cpu');
  const memory = args.string('memory');
  const etcdTls = parseEtcdTls(args, endpoints, host.readFile);
  const etcdAuth = parseEtcdAuth(args, host.readFile);
  const logsTls = parseServerTls(args, host.readFile);
  const logsAuth = parseLogsAuth(args, logsTls, host.readFile);
  const metricsListen = parseMetricsListen(args.string('metrics-listen'));
  const options: AgentOptions = {
    machineId,
    metadata: parseMetadata(args.string('metadata') ?? ''),
    publicIp: args.string('public-ip') ?? host.publicIp(),
    cpuMillicores: cpu === undefined ? host.cpuMillicores() : parseCpu(cpu),
    memoryBytes: memory === undefined ? host.memoryBytes() : parseMemory(memory),
    endpoints,
    prefix: args.stringOr('prefix', defaultPrefix),
    driver,
    usernsRemap,
    stateDir: args.string('state-dir') ?? AGENT_DEFAULTS.stateRoot,
    leaseTtlSeconds: ttlMs / 1000,
    logsListen,
    keepUnitsOnExit: args.boolean('keep-units-on-exit'),
    logLevel: args.stringOr('log-level', AGENT_DEFAULTS.logLevel),
    tickMs,
    ...(etcdTls === undefined ? {} : { etcdTls }),
    ...(etcdAuth === undefined ? {} : { etcdAuth }),
    ...(logsTls === undefined ? {} : { logsTls }),
    ...(logsAuth === undefined ? {} : { logsAuth }),
    ...(metricsListen === undefined ? {} : { metricsListen }),
    registry: parseRegistryFlags(args, host.readFile),
    imageStoreMaxBytes: imageStoreMax(args.string('image-store-max')),
    ...serviceOptions(args),
    portRange: parsePortRange(args.string('port-range')),
    ...readSecretsKey(args.string('secrets-key-file'), host.readFile),
  };
  // Last, so a mistyped flag is named before the missing client check.
  refuseUncheckedLogs(args, logsTls, logsAuth);
  return options;
}

/** The routing mesh's and DNS's flags. */
function serviceOptions(args: DaemonArgs): {
  mesh: boolean;
  meshListenAddress?: string;
  meshDataPlane?: DataPlaneChoice;
  dnsListen?: string;
  dnsRecursor?: string;
} {
  if (args.boolean('mesh') && args.boolean('no-mesh')) {
    throw new UsageError('--mesh and --no-mesh: give one of them');
  }
  const mesh = !args.boolean('no-mesh');
  const meshListenAddress = args.string('mesh-listen-address');
  if (meshListenAddress !== undefined && !/^[0-9A-Fa-f.:]+$/.test(meshListenAddress)) {
    throw new UsageError(
      `--mesh-listen-address=${meshListenAddress}: expected an IP address (e.g. 0.0.0.0)`,
    );
  }
  const meshDataPlane = args.string('mesh-data-plane');
  if (meshDataPlane !== undefined && !(DATA_PLANES as readonly string[]).includes(meshDataPlane)) {
    throw new UsageError(
      `--mesh-data-plane=${meshDataPlane}: expected ${DATA_PLANES.join(', ')} (default auto)`,
    );
  }
  const hostPort = (flag: string): string | undefined => {
    const value = args.string(flag);
    if (value !== undefined && !/^(\[[0-9A-Fa-f:]+\]|[^:\s]+):\d{1,5}$/.test(value)) {
      throw new UsageError(`--${flag}=${value}: expected HOST:PORT (e.g. 127.0.0.1:5353)`);
    }
    return value;
  };
  const dnsListen = hostPort('dns-listen');
  const dnsRecursor = hostPort('dns-recursor');
  return {
    mesh,
    ...(meshListenAddress === undefined ? {} : { meshListenAddress }),
    ...(meshDataPlane === undefined ? {} : { meshDataPlane: meshDataPlane as DataPlaneChoice }),
    ...(dnsListen === undefined ? {} : { dnsListen }),
    ...(dnsRecursor === undefined ? {} : { dnsRecursor }),
  };
}

/** `--port-range FIRST-LAST`: 1 <= FIRST <= LAST <= 65535. */
export function parsePortRange(text: string | undefined): { first: number; last: number } {
  if (text === undefined) return { ...AGENT_DEFAULTS.portRange };
  const m = /^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$/.exec(text);
  const first = Number(m?.[1]);
  const last = Number(m?.[2]);
  if (m === null || first < 1 || last > 65535 || first > last) {
    throw new UsageError(
      `--port-range=${text}: expected FIRST-LAST with 1 <= FIRST <= LAST <= 65535, e.g. 20000-32767`,
    );
  }
  return { first, last };
}

/**
 * `--logs-token-file`, `--tls-client-names` and `--allow-insecure-clients`. A Logs service
 * without any client check lets anyone who reaches it (a unit on this machine, too) read every
 * unit's log: refused unless said so, in plaintext as with a certificate (which would also
 * look secure). `flotilla cluster up` always gives its agents a token.
 */
function parseLogsAuth(
  args: DaemonArgs,
  tls: ServerTls | undefined,
  readFile: (path: string) => string,
): LogsClientAuth | undefined {
  const tokenPath = args.string('logs-token-file');
  let token: Buffer | undefined;
  if (tokenPath !== undefined) {
    try {
      token = parseTokenFile(readFile(tokenPath));
    } catch (err) {
      throw new UsageError(
        `--logs-token-file=${tokenPath}: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  }
  const names = args.list('tls-client-names', []);
  if (names.length > 0 && tls?.clientCa === undefined) {
    throw new UsageError('--tls-client-names needs --tls-client-ca-file (and --tls-cert-file)');
  }
  if (
    tls !== undefined &&
    tls.clientCa === undefined &&
    token === undefined &&
    !args.boolean('allow-insecure-clients')
  ) {
    throw new UsageError(
      "--tls-cert-file without --tls-client-ca-file or --logs-token-file lets any client read every unit's log: add --tls-client-ca-file (with --tls-client-names) or --logs-token-file, or say --allow-insecure-clients",
    );
  }
  if (token === undefined && names.length === 0) return undefined;
  return {
    ...(token === undefined ? {} : { token }),
    ...(names.length > 0 ? { clientNames: names } : {}),
  };
}

/** Plaintext Logs without a token: refused, as a certificate without a client check is. */
function refuseUncheckedLogs(
  args: DaemonArgs,
  tls: ServerTls | undefined,
  auth: LogsClientAuth | undefined,
): void {
  if (tls !== undefined || auth?.token !== undefined) return; // parseLogsAuth judged TLS
  if (args.boolean('allow-insecure-clients')) return;
  throw new UsageError(
    "a plaintext Logs service without --logs-token-file lets any client that reaches it (units on this machine too) read every unit's log: give --logs-token-file FILE (the schedulers' --agent-token-file), or --tls-cert-file with --tls-client-ca-file, or say --allow-insecure-clients",
  );
}

function imageStoreMax(text: string | undefined): number {
  if (text === undefined) return 0;
  try {
    const bytes = parseMemoryBytes('--image-store-max', text, 0);
    if (bytes > 0) return bytes;
  } catch {
    // Reported below.
  }
  throw new UsageError(`--image-store-max=${text}: expected bytes or a K/M/G/T size`);
}

function readMachineId(host: HostFacts): string {
  let text: string;
  try {
    text = host.readFile(AGENT_DEFAULTS.machineIdFile);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new UsageError(
      `no --machine-id given and ${AGENT_DEFAULTS.machineIdFile} cannot be read (${why})`,
    );
  }
  const id = text.trim();
  if (id === '') {
    throw new UsageError(`no --machine-id given and ${AGENT_DEFAULTS.machineIdFile} is empty`);
  }
  return id;
}

/** `k=v,k2=v2` (spaces around items ignored; a repeated key keeps the last value). */
export function parseMetadata(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of text.split(',')) {
    const pair = item.trim();
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const key = eq < 0 ? '' : pair.slice(0, eq).trim();
    if (key === '') throw new UsageError(`--metadata: "${pair}" is not key=value`);
    out[key] = pair.slice(eq + 1).trim();
  }
  return out;
}

/** Cores (`2`, `1.5`) or millicores (`1500m`), as Kubernetes writes CPU amounts. */
export function parseCpu(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(m?)$/.exec(text.trim());
  const millicores = m === null ? NaN : Number(m[1]) * (m[2] === 'm' ? 1 : 1000);
  if (!Number.isSafeInteger(Math.round(millicores)) || millicores <= 0) {
    throw new UsageError(`--cpu=${text}: expected cores (2, 1.5) or millicores (1500m)`);
  }
  return Math.round(millicores);
}

/** Bytes with an optional K, M, G or T suffix (powers of 1024, as MemoryMax=). */
export function parseMemory(text: string): number {
  let bytes: number;
  try {
    bytes = parseMemoryBytes('--memory', text, 0);
  } catch {
    bytes = 0;
  }
  if (bytes <= 0) throw new UsageError(`--memory=${text}: expected bytes or a K/M/G/T size`);
  return bytes;
}

// ---- the config file ----

/** Reads and parses `path`; every problem is a UsageError naming the file (and line). */
export function readConfigFile(
  path: string,
  readFile: (path: string) => string,
): Record<string, string> {
  let text: string;
  try {
    text = readFile(path);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new UsageError(`--config=${path}: cannot read it (${why})`);
  }
  return parseConfigText(path, text);
}

/** Parses the text of a config file (JSON when it starts with `{`, else key=value lines). */
export function parseConfigText(path: string, text: string): Record<string, string> {
  return text.trimStart().startsWith('{') ? parseJson(path, text) : parseLines(path, text);
}

function parseJson(path: string, text: string): Record<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new UsageError(`${path}: not valid JSON (${why})`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new UsageError(`${path}: expected a JSON object`);
  }
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(parsed as Record<string, unknown>)) {
    out[key] = jsonValue(path, key, value);
  }
  return out;
}

function jsonValue(path: string, key: string, value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value.join(',');
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.every(([, v]) => typeof v === 'string')) {
      return entries.map(([k, v]) => `${k}=${String(v)}`).join(',');
    }
  }
  throw new UsageError(`${path}: "${key}" must be a string, number, boolean, list or map`);
}

function parseLines(path: string, text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? '').trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const eq = line.indexOf('=');
    const key = eq < 0 ? '' : line.slice(0, eq).trim();
    if (key === '') throw new UsageError(`${path}:${i + 1}: expected key=value`);
    out[key] = unquote(line.slice(eq + 1).trim());
  }
  return out;
}

/** `"a b"` and `'a b'` lose their quotes; anything else is kept as written. */
function unquote(value: string): string {
  if (value.length >= 2) {
    const q = value[0];
    if ((q === '"' || q === "'") && value.endsWith(q)) return value.slice(1, -1);
  }
  return value;
}
