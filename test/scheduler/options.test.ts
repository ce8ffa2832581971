/**
 * `flotilla scheduler` flags: defaults, the FLOTILLA_* environment as a fallback, flags over
 * the environment, and usage errors for values that make no sense.
 */
import test from 'ava';
import { UsageError } from '../../daemon/options.js';
import { REGISTRY_DEFAULTS, sourceFlags, sourceOf } from '../../registry/skopeo.js';
import {
  parseSchedulerArgs,
  SCHEDULER_DEFAULTS,
  SCHEDULER_USAGE,
} from '../../scheduler/options.js';
import type { SchedulerOptions } from '../../scheduler/options.js';

const ENV_KEYS = [
  'FLOTILLA_ETCD_ENDPOINTS',
  'FLOTILLA_PREFIX',
  'FLOTILLA_LISTEN',
  'FLOTILLA_ELECTION_TTL',
  'FLOTILLA_LOG_LEVEL',
  'FLOTILLA_NAME',
  'FLOTILLA_RESCHEDULE_RATE',
];

/** Runs `fn` with exactly `env` among the scheduler's variables, restoring them after. */
function withEnv<T>(env: Record<string, string>, fn: () => T): T {
  const saved = new Map(ENV_KEYS.map((k) => [k, process.env[k]]));
  for (const k of ENV_KEYS) delete process.env[k];
  Object.assign(process.env, env);
  try {
    return fn();
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

function options(argv: string[], env: Record<string, string> = {}): SchedulerOptions {
  const parsed = withEnv(env, () => parseSchedulerArgs(argv));
  if (parsed.help) throw new Error('unexpected help');
  return parsed.options;
}

test.serial('defaults: local etcd, /flotilla/, API on 127.0.0.1:4700, 5 s election TTL', (t) => {
  const o = options([]);
  t.deepEqual(o.endpoints, ['http://127.0.0.1:2379']);
  t.is(o.prefix, '/flotilla/');
  t.is(o.listen, '127.0.0.1:4700');
  t.is(o.electionTtlSeconds, 5);
  t.is(o.logLevel, 'info');
  t.regex(o.name, new RegExp(`:${process.pid}$`));
  t.is(o.rescheduleRate, SCHEDULER_DEFAULTS.rescheduleRate);
  t.is(o.lossSettleMs, 500);
});

test.serial('the environment fills in flags, and flags win over it', (t) => {
  const env = {
    FLOTILLA_ETCD_ENDPOINTS: 'http://10.0.0.1:2379, http://10.0.0.2:2379',
    FLOTILLA_PREFIX: '/env/',
    FLOTILLA_ELECTION_TTL: '7s',
    FLOTILLA_NAME: 'from-env',
    FLOTILLA_RESCHEDULE_RATE: '3',
  };
  const fromEnv = options([], env);
  t.deepEqual(fromEnv.endpoints, ['http://10.0.0.1:2379', 'http://10.0.0.2:2379']);
  t.is(fromEnv.prefix, '/env/');
  t.is(fromEnv.electionTtlSeconds, 7);
  t.is(fromEnv.name, 'from-env');
  t.is(fromEnv.rescheduleRate, 3);
  const flags = options(
    ['--prefix=/flag/', '--election-ttl', '3', '--name=flag', '--listen=none'],
    env,
  );
  t.is(flags.prefix, '/flag/');
  t.is(flags.electionTtlSeconds, 3);
  t.is(flags.name, 'flag');
  t.is(flags.listen, undefined, '--listen=none runs without the API');
});

test.serial('nonsense is a usage error; --help asks for the usage', (t) => {
  for (const argv of [
    ['--election-ttl=500ms'],
    ['--election-ttl=1.5s'],
    ['--election-ttl=soon'],
    ['--reschedule-rate=-1'],
    ['--tick=1ms'],
    ['--no-such-flag'],
    ['positional'],
  ]) {
    t.throws(() => options(argv), { instanceOf: UsageError }, argv.join(' '));
  }
  t.deepEqual(
    withEnv({}, () => parseSchedulerArgs(['--help'])),
    { help: true },
  );
  t.regex(SCHEDULER_USAGE, /--election-ttl/);
});

test('registry flags: insecure registries and an auth file that must be readable JSON', (t) => {
  const files: Record<string, string> = { '/auth.json': '{"auths": {}}' };
  const readFile = (path: string): string => {
    const text = files[path];
    if (text === undefined) throw new Error(`ENOENT: ${path}`);
    return text;
  };
  const parsed = withEnv({}, () =>
    parseSchedulerArgs(
      ['--registry-auth-file', '/auth.json', '--insecure-registry', '10.213.5.1:5000'],
      readFile,
    ),
  );
  if (parsed.help) return t.fail('unexpected help');
  t.is(parsed.options.registry?.authFile, '/auth.json');
  t.deepEqual(parsed.options.registry?.insecureRegistries, ['10.213.5.1:5000']);
  t.throws(
    () => withEnv({}, () => parseSchedulerArgs(['--registry-auth-file', '/nope'], readFile)),
    {
      instanceOf: UsageError,
      message: /--registry-auth-file=\/nope: cannot be read/,
    },
  );
  t.regex(SCHEDULER_USAGE, /--insecure-registry HOST:PORT/);
});

test('--registry-mirror: images named after FROM are looked up at TO, names unchanged; a bad pair is a usage error', (t) => {
  const parsed = withEnv({}, () =>
    parseSchedulerArgs([
      '--insecure-registry',
      '10.213.5.1:5000',
      '--registry-mirror',
      '127.0.0.1:5000=10.213.5.1:5000',
    ]),
  );
  if (parsed.help) return t.fail('unexpected help');
  const registry = parsed.options.registry ?? REGISTRY_DEFAULTS;
  t.deepEqual(registry.mirrors, { '127.0.0.1:5000': '10.213.5.1:5000' });
  const source = sourceOf(registry, '127.0.0.1:5000', '127.0.0.1:5000/examples/busybox:1');
  t.deepEqual(source, {
    registry: '10.213.5.1:5000',
    url: 'docker://10.213.5.1:5000/examples/busybox:1',
  });
  t.deepEqual(sourceFlags(registry, source.registry, true), ['--src-tls-verify=false']);
  t.deepEqual(sourceOf(registry, 'ghcr.io', 'ghcr.io/a/b:1'), {
    registry: 'ghcr.io',
    url: 'docker://ghcr.io/a/b:1',
  });
  t.throws(() => withEnv({}, () => parseSchedulerArgs(['--registry-mirror', '127.0.0.1:5000'])), {
    instanceOf: UsageError,
    message: /--registry-mirror: "127.0.0.1:5000" is not FROM=TO/,
  });
});

test.serial(
  'admission flags: --max-instances and the etcd quota guard, with their defaults',
  (t) => {
    const d = options([]);
    t.is(d.maxInstances, 10_000);
    t.is(d.etcdQuotaBytes, 2 * 1024 ** 3, "etcd's default --quota-backend-bytes");
    t.is(d.etcdQuotaShare, 0.8);
    const o = options([
      '--max-instances=100000',
      '--etcd-quota-bytes=8589934592',
      '--etcd-quota-share=0.9',
    ]);
    t.like(o, { maxInstances: 100_000, etcdQuotaBytes: 8 * 1024 ** 3, etcdQuotaShare: 0.9 });
    for (const [argv, message] of [
      [['--max-instances=0'], /--max-instances=0: expected 1 to 1000000/],
      [['--max-instances=1000001'], /expected 1 to 1000000/],
      [['--etcd-quota-bytes=0'], /--etcd-quota-bytes=0: give etcd's --quota-backend-bytes/],
      [['--etcd-quota-share=80'], /--etcd-quota-share=80: expected a share above 0 and at most 1/],
      [['--etcd-quota-share=0'], /above 0/],
    ] as const) {
      const err = t.throws(() => options([...argv]), { instanceOf: UsageError });
      t.regex(err?.message ?? '', message);
    }
    t.regex(SCHEDULER_USAGE, /--max-instances N .*\n.*\(default 10000\)/);
  },
);
