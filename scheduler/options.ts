/**
 * `flotilla scheduler` flags. Every flag also reads `FLOTILLA_<FLAG>` from the environment
 * (daemon/options.ts): the flag wins over the environment, the environment over the
 * default.
 */
import { readFileSync, statSync } from 'node:fs';
import { parseRegistryFlags, registryFlags, REGISTRY_USAGE } from '../daemon/registry-flags.js';
import type { RegistryOptions } from '../registry/skopeo.js';
import type { SecretsKey } from '../lib/secret-box.js';
import { readSecretsKey } from '../daemon/secrets-key-flag.js';
import { hostname } from 'node:os';
import {
  defaultEtcdEndpoints,
  defaultPrefix,
  parseDaemonArgs,
  UsageError,
  type DaemonArgs,
} from '../daemon/options.js';
import {
  parseEtcdTls,
  parseServerTls,
  pemFlag,
  serverTlsFlags,
  type ReadFile,
} from '../daemon/tls-flags.js';
import type { ClientTls, ServerTls } from '../daemon/tls.js';
import { parseTokenFile } from '../daemon/agent-token.js';
import { parseMetricsListen } from '../daemon/metrics-server.js';
import type { StoreAuth, StoreTls } from '../store/index.js';
import { parseEtcdAuth } from '../daemon/etcd-auth-flags.js';
import { MAX_POLICY_BYTES, parsePolicy, PolicyError, type Policy } from './gate/auth-policy.js';
import { DEFAULT_MAX_INSTANCES } from './api/admission.js';
import { QUOTA_DEFAULTS } from './api/quota.js';
import { MAX_INSTANCES_LIMIT } from '../unit/index.js';

/** The scheduler's settings, every default applied ({@link parseSchedulerArgs} fills them). */
export interface SchedulerOptions {
  readonly endpoints: readonly string[];
  readonly prefix: string;
  /** API address (host:port; port 0 picks one), or undefined to run without the API. */
  readonly listen: string | undefined;
  /** Election lease TTL, whole seconds. */
  readonly electionTtlSeconds: number;
  readonly logLevel: string;
  /** This replica's name in the election. */
  readonly name: string;
  /**
   * Moves of already-placed units per second; 0 means unlimited; `auto` sizes it to the
   * cluster (see {@link autoRescheduleRate}).
   */
  readonly rescheduleRate: number | 'auto';
  /** Machine losses within this window count as "at once". */
  readonly lossWindowMs: number;
  /** A rescheduling pause ends by itself after this long; 0 means never. */
  readonly pauseTimeoutMs: number;
  /** After a machine loss, moves wait this long for further losses. */
  readonly lossSettleMs: number;
  /** Periodic pass interval. */
  readonly tickMs: number;
  /** TLS towards etcd (`--etcd-cafile` ...); absent: plaintext or public roots. */
  readonly etcdTls?: StoreTls;
  /** etcd's user and password (`--etcd-user-file`); absent: etcd without auth. */
  readonly etcdAuth?: StoreAuth;
  /** The API's certificate and key, and the client CA for mutual TLS; absent: plaintext. */
  readonly apiTls?: ServerTls;
  /**
   * TLS towards the agents' Logs services (`--agent-ca-file`), presenting the API's own
   * certificate as client certificate; absent: plaintext.
   */
  readonly agentTls?: ClientTls;
  /** The secret that signs requests to the agents' Logs services (`--agent-token-file`). */
  readonly agentToken?: Buffer;
  /**
   * The HTTP listener's address (`--http-listen`, or its alias `--metrics-listen`): the JSON
   * API, its event stream, /metrics, /healthz and /readyz; absent: not served (the default).
   */
  readonly httpListen?: string;
  /** Who may do what through the API (`--auth-policy`); absent: everyone everything. */
  readonly policy?: Policy;
  /** File of the API's audit log (`--audit-log`); absent: none. */
  readonly auditLog?: string;
  /** Unix socket serving fleet's API v1 (`--fleet-api-socket`); absent: none. */
  readonly fleetApiSocket?: string;
  /** How submits reach registries to pin image tags (`--registry-auth-file` ...). */
  readonly registry?: RegistryOptions;
  /** The cluster's secrets key (`--secrets-key-file`); absent: secrets cannot be created. */
  readonly secretsKey?: SecretsKey;
  /** The ceiling of every template's instances (`--max-instances`; api/admission.ts). */
  readonly maxInstances: number;
  /** etcd's `--quota-backend-bytes`, as `--etcd-quota-bytes` tells it (api/quota.ts). */
  readonly etcdQuotaBytes: number;
  /** The API refuses writes past this share of {@link etcdQuotaBytes} (`--etcd-quota-share`). */
  readonly etcdQuotaShare: number;
}

/** Defaults, in one place. */
export const SCHEDULER_DEFAULTS = {
  listen: '127.0.0.1:4700',
  electionTtlSeconds: 5,
  logLevel: 'info',
  rescheduleRate: 'auto',
  lossWindowMs: 30_000,
  pauseTimeoutMs: 300_000,
  lossSettleMs: 500,
  tickMs: 1_000,
  maxInstances: DEFAULT_MAX_INSTANCES,
  etcdQuotaBytes: QUOTA_DEFAULTS.quotaBytes,
  etcdQuotaShare: QUOTA_DEFAULTS.share,
} as const;

/** The help text of `flotilla scheduler`. */
export const SCHEDULER_USAGE = `Usage: flotilla scheduler [flags]

Runs one scheduler replica: serves the gRPC API, campaigns for leadership in etcd and, while
leader, places units on machines. Every flag also reads FLOTILLA_<FLAG> (e.g.
FLOTILLA_ETCD_ENDPOINTS); flags win over the environment.

Flags:
  --etcd-endpoints URLS        comma-separated etcd client URLs (default ${defaultEtcdEndpoints.join(',')})
  --prefix PREFIX              cluster key prefix in etcd (default ${defaultPrefix})
  --listen HOST:PORT           API address, or "none" for no API (default ${SCHEDULER_DEFAULTS.listen})
  --election-ttl DURATION      leader lease TTL, whole seconds (default 5s)
  --name NAME                  replica name in the election (default hostname:pid)
  --reschedule-rate N|auto     moves of running units per second, 0 = unlimited; auto = 2% of
                               the placed units per second, at least 20 (default auto)
  --loss-window DURATION       machine losses this close together count as at once (default 30s)
  --loss-settle DURATION       after a machine loss, wait this long for more before moving units (default 500ms)
  --reschedule-pause-timeout DURATION
                               a pause after a mass loss ends by itself after this, 0 = never (default 5m)
  --tick DURATION              plan at least this often (default 1s)
  --log-level LEVEL            fatal, error, warn, info, debug, trace or silent (default info)
  -h, --help                   show this help

Operations (see docs/operations.md):
  --http-listen HOST:PORT      the HTTP listener: the JSON API /api/v1/ (docs/http-api.md) and
                               its event stream, the console, Prometheus /metrics, /healthz
                               and /readyz; TLS and --auth-policy as for the API (default none:
                               not served; e.g. 127.0.0.1:4646)
  --metrics-listen HOST:PORT   the same as --http-listen (its former name)
  --auth-policy FILE           authorize API calls by this JSON policy (identities -> roles ->
                               verbs on unit globs); default: every caller may do everything
  --audit-log FILE             append one JSON line per API write to FILE (rotated at 64 MiB,
                               5 kept); default: none
  --fleet-api-socket PATH      also serve fleet's API v1 (fleetctl) on this unix socket, e.g.
                               /var/run/fleet.sock (docs/fleet-api.md); default: none

Admission (see docs/operations.md, "Limits"):
  --max-instances N            at most N instances of one template (a template's MaxInstances=
                               may lower it); 1 to ${MAX_INSTANCES_LIMIT} (default ${DEFAULT_MAX_INSTANCES})
  --etcd-quota-bytes BYTES     etcd's --quota-backend-bytes (default ${QUOTA_DEFAULTS.quotaBytes}, etcd's default)
  --etcd-quota-share SHARE     refuse writes that would fill etcd past this share of its quota,
                               above 0 and at most 1 (default ${QUOTA_DEFAULTS.share})

TLS (PEM files; see docs/operations.md):
  --etcd-cafile FILE           CA of etcd's certificate (with https:// endpoints)
  --etcd-certfile FILE         client certificate for etcd --client-cert-auth, with:
  --etcd-keyfile FILE          its key
  --etcd-user-file FILE        etcd auth: one line user:password (the schedulers' user), 0600
  --tls-cert-file FILE         serve the API over TLS with this certificate, with:
  --tls-key-file FILE          its key
  --tls-client-ca-file FILE    require client certificates signed by this CA (mutual TLS)
  --agent-ca-file FILE         reach the agents' Logs services over TLS, trusting this CA;
                               --tls-cert-file is presented to them as client certificate
  --agent-token-file FILE      sign requests to the agents' Logs services with this shared
                               secret (the agents' --logs-token-file; 32+ characters, 0600)

${REGISTRY_USAGE}  --allowed-registries HOST[:PORT][,...]
                               the only registries a submit may name in Image= (docker.io for
                               names without a host); others are refused before any lookup
  --secrets-key-file FILE      the cluster's secrets key (64 hex digits; openssl rand -hex 32),
                               the same file on every scheduler and agent; without it,
                               flotctl secret create is refused
`;

const schedulerFlags = {
  listen: { type: 'string' },
  'election-ttl': { type: 'string' },
  name: { type: 'string' },
  'reschedule-rate': { type: 'string' },
  'loss-window': { type: 'string' },
  'loss-settle': { type: 'string' },
  'reschedule-pause-timeout': { type: 'string' },
  tick: { type: 'string' },
  'agent-ca-file': { type: 'string' },
  'agent-token-file': { type: 'string' },
  'http-listen': { type: 'string' },
  'auth-policy': { type: 'string' },
  'audit-log': { type: 'string' },
  'fleet-api-socket': { type: 'string' },
  'max-instances': { type: 'string' },
  'etcd-quota-bytes': { type: 'string' },
  'etcd-quota-share': { type: 'string' },
  'allowed-registries': { type: 'string' },
  'secrets-key-file': { type: 'string' },
  ...serverTlsFlags,
  ...registryFlags,
} as const;

/**
 * Parses argv (and FLOTILLA_* env), reading the TLS files with `readFile`; `help` is true
 * when usage was asked for. Throws UsageError.
 */
export function parseSchedulerArgs(
  argv: readonly string[],
  readFile: ReadFile = readFileSync,
): { help: true } | { help: false; options: SchedulerOptions } {
  const args = parseDaemonArgs(argv, schedulerFlags);
  if (args.boolean('help')) return { help: true };
  const ttlMs = args.durationMs('election-ttl', SCHEDULER_DEFAULTS.electionTtlSeconds * 1000);
  if (ttlMs < 1000 || ttlMs % 1000 !== 0) {
    throw new UsageError(`--election-ttl: expected whole seconds, at least 1s`);
  }
  const listen = args.stringOr('listen', SCHEDULER_DEFAULTS.listen);
  const tickMs = args.durationMs('tick', SCHEDULER_DEFAULTS.tickMs);
  if (tickMs < 10) throw new UsageError(`--tick: expected at least 10ms`);
  const endpoints = args.list('etcd-endpoints', defaultEtcdEndpoints);
  if (endpoints.length === 0) throw new UsageError('--etcd-endpoints: no endpoint given');
  const etcdTls = parseEtcdTls(args, endpoints, readFile);
  const etcdAuth = parseEtcdAuth(args, readFile);
  const apiTls = parseServerTls(args, readFile);
  const agentCa = pemFlag(args, 'agent-ca-file', 'certificate', readFile);
  // The API's certificate doubles as the client certificate agents may require; it needs the
  // clientAuth extended key usage then (docs/operations.md).
  const agentTls: ClientTls | undefined =
    agentCa === undefined
      ? undefined
      : { ca: agentCa, ...(apiTls === undefined ? {} : { cert: apiTls.cert, key: apiTls.key }) };
  const agentToken = readAgentToken(args.string('agent-token-file'), readFile);
  const httpListen = parseHttpListen(args.string('http-listen'), args.string('metrics-listen'));
  const policy = readPolicy(args.string('auth-policy'), readFile);
  const auditLog = args.string('audit-log');
  const fleetApiSocket = args.string('fleet-api-socket');
  if (fleetApiSocket !== undefined && listen === 'none' && httpListen === undefined) {
    throw new UsageError(
      `--fleet-api-socket=${fleetApiSocket} serves the API's handlers, which --listen=none turns off: drop --listen=none (or give --http-listen)`,
    );
  }
  const maxInstances = args.integer('max-instances', SCHEDULER_DEFAULTS.maxInstances);
  if (maxInstances < 1 || maxInstances > MAX_INSTANCES_LIMIT) {
    throw new UsageError(`--max-instances=${maxInstances}: expected 1 to ${MAX_INSTANCES_LIMIT}`);
  }
  const etcdQuotaBytes = args.integer('etcd-quota-bytes', SCHEDULER_DEFAULTS.etcdQuotaBytes);
  if (etcdQuotaBytes < 1) {
    throw new UsageError(`--etcd-quota-bytes=0: give etcd's --quota-backend-bytes, in bytes`);
  }
  const etcdQuotaShare = parseShare(args.string('etcd-quota-share'));
  return {
    help: false,
    options: {
      endpoints,
      prefix: args.stringOr('prefix', defaultPrefix),
      listen: listen === 'none' ? undefined : listen,
      electionTtlSeconds: ttlMs / 1000,
      logLevel: args.stringOr('log-level', SCHEDULER_DEFAULTS.logLevel),
      name: args.stringOr('name', `${hostname()}:${process.pid}`),
      rescheduleRate:
        args.stringOr('reschedule-rate', 'auto') === 'auto'
          ? 'auto'
          : args.integer('reschedule-rate', 0),
      lossWindowMs: args.durationMs('loss-window', SCHEDULER_DEFAULTS.lossWindowMs),
      pauseTimeoutMs: args.durationMs(
        'reschedule-pause-timeout',
        SCHEDULER_DEFAULTS.pauseTimeoutMs,
      ),
      lossSettleMs: args.durationMs('loss-settle', SCHEDULER_DEFAULTS.lossSettleMs),
      tickMs,
      ...(etcdTls === undefined ? {} : { etcdTls }),
      ...(etcdAuth === undefined ? {} : { etcdAuth }),
      ...(apiTls === undefined ? {} : { apiTls }),
      ...(agentTls === undefined ? {} : { agentTls }),
      ...(agentToken === undefined ? {} : { agentToken }),
      ...(httpListen === undefined ? {} : { httpListen }),
      ...(policy === undefined ? {} : { policy }),
      ...(auditLog === undefined ? {} : { auditLog }),
      ...readSecretsKey(args.string('secrets-key-file'), readFile),
      ...(fleetApiSocket === undefined ? {} : { fleetApiSocket }),
      registry: { ...parseRegistryFlags(args, readFile), ...allowedRegistries(args) },
      maxInstances,
      etcdQuotaBytes,
      etcdQuotaShare,
    },
  };
}

/**
 * `--http-listen`, or `--metrics-listen`, its older name: the same listener. Both given,
 * they must agree.
 */
function parseHttpListen(
  http: string | undefined,
  metrics: string | undefined,
): string | undefined {
  const a = http === undefined ? undefined : parseMetricsListen(http, 'http-listen');
  const b = metrics === undefined ? undefined : parseMetricsListen(metrics, 'metrics-listen');
  if (a !== undefined && b !== undefined && a !== b) {
    throw new UsageError(
      `--http-listen=${a} and --metrics-listen=${b}: one listener serves both; give one of them`,
    );
  }
  return a ?? b;
}

/** `--allowed-registries HOST[:PORT],...`: the registries a submit may name; absent: any. */
function allowedRegistries(args: DaemonArgs): { allowedRegistries?: readonly string[] } {
  if (args.string('allowed-registries') === undefined) return {};
  const list = args.list('allowed-registries', []);
  const bad = list.find(
    (h) => !/^[A-Za-z0-9.-]+(?::[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?$/.test(h),
  );
  if (bad !== undefined || list.length === 0) {
    throw new UsageError(
      `--allowed-registries: "${bad ?? ''}" is not HOST or HOST:PORT (docker.io for names without a host)`,
    );
  }
  return { allowedRegistries: list };
}

/** `--etcd-quota-share`: a number above 0 and at most 1. */
function parseShare(raw: string | undefined): number {
  if (raw === undefined) return SCHEDULER_DEFAULTS.etcdQuotaShare;
  const n = /^[0-9]*\.?[0-9]+$/.test(raw) ? Number(raw) : NaN;
  if (!(n > 0 && n <= 1)) {
    throw new UsageError(
      `--etcd-quota-share=${raw}: expected a share above 0 and at most 1, e.g. 0.8`,
    );
  }
  return n;
}

/** Reads and checks `--auth-policy`; every problem is a UsageError naming the file. */
function readPolicy(path: string | undefined, readFile: ReadFile): Policy | undefined {
  if (path === undefined) return undefined;
  // Read whole only when small: the file is read into memory at start.
  const size = fileSize(path);
  if (size !== undefined && size > MAX_POLICY_BYTES) {
    throw new UsageError(
      `--auth-policy=${path}: ${size} bytes, more than the ${MAX_POLICY_BYTES} a policy may have`,
    );
  }
  let text: string;
  try {
    text = readFile(path).toString();
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new UsageError(`--auth-policy=${path}: cannot read it (${why})`);
  }
  try {
    return parsePolicy(path, text);
  } catch (err) {
    if (err instanceof PolicyError) throw new UsageError(`--auth-policy: ${err.message}`);
    throw err;
  }
}

/** The size of `path`, or undefined when it cannot be looked at (reading it will say why). */
function fileSize(path: string): number | undefined {
  try {
    return statSync(path).size;
  } catch {
    return undefined;
  }
}

/** `--agent-token-file`: the secret, or undefined when the flag is not given. */
function readAgentToken(
  path: string | undefined,
  readFile: (path: string) => string | Buffer,
): Buffer | undefined {
  if (path === undefined) return undefined;
  try {
    return parseTokenFile(readFile(path));
  } catch (err) {
    throw new UsageError(
      `--agent-token-file=${path}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}
