/**
 * `flotilla agent` settings: flags win over FLOTILLA_* environment, which wins over the
 * config file; what none gives is detected from the host or defaulted.
 */
import test from 'ava';
import { UsageError } from '../../daemon/options.js';
import {
  parseAgentArgs,
  parseConfigText,
  type AgentOptions,
  type HostFacts,
} from '../../agent/options.js';

function host(files: Record<string, string> = {}, env: NodeJS.ProcessEnv = {}): HostFacts {
  return {
    env,
    readFile: (path) => {
      const text = files[path];
      if (text === undefined) throw new Error(`ENOENT: ${path}`);
      return text;
    },
    cpuMillicores: () => 8000,
    memoryBytes: () => 16 * 1024 ** 3,
    publicIp: () => '192.0.2.7',
  };
}

/** Parsed with the Logs service's client check waived (agent-options-tls.test.ts tests it). */
function options(argv: string[], h: HostFacts): AgentOptions {
  const parsed = parseAgentArgs([...argv, '--allow-insecure-clients'], h);
  if (parsed.help) throw new Error('unexpected help');
  return parsed.options;
}

test('defaults come from the host: /etc/machine-id, CPUs, memory, address; runc when usable', (t) => {
  const o = options([], host({ '/etc/machine-id': 'abc123\n' }));
  t.like(o, {
    machineId: 'abc123',
    cpuMillicores: 8000,
    memoryBytes: 16 * 1024 ** 3,
    publicIp: '192.0.2.7',
    driver: 'auto',
    stateDir: '/var/lib/flotilla',
    leaseTtlSeconds: 10,
    logsListen: '127.0.0.1:4701',
    keepUnitsOnExit: false,
    prefix: '/flotilla/',
  });
  t.deepEqual(o.endpoints, ['http://127.0.0.1:2379']);
  t.deepEqual(o.metadata, {});
});

test('flags win over the environment, the environment over the config file', (t) => {
  const h = host(
    {
      '/etc/agent.conf':
        '# agent\nmachine-id = from-file\nmetadata = region=eu\ncpu = 2\nlease-ttl = 4s\nlogs-listen = 0.0.0.0:9\n',
    },
    { FLOTILLA_CONFIG: '/etc/agent.conf', FLOTILLA_MACHINE_ID: 'from-env', FLOTILLA_CPU: '1500m' },
  );
  const o = options(['--machine-id', 'from-flag'], h);
  t.is(o.machineId, 'from-flag');
  t.is(o.cpuMillicores, 1500, 'env over file');
  t.is(o.leaseTtlSeconds, 4, 'file over default');
  t.deepEqual(o.metadata, { region: 'eu' });
  t.is(o.logsListen, '0.0.0.0:9');
  const envOnly = options([], h);
  t.is(envOnly.machineId, 'from-env');
});

test('a JSON config file: maps, lists, numbers and booleans read like flags', (t) => {
  const json = JSON.stringify({
    'machine-id': 'm1',
    metadata: { region: 'us', disk: 'ssd' },
    'etcd-endpoints': ['http://10.0.0.1:2379', 'http://10.0.0.2:2379'],
    memory: '512M',
    'keep-units-on-exit': true,
    driver: 'process',
  });
  const o = options(['--config', '/c.json'], host({ '/c.json': json }));
  t.deepEqual(o.metadata, { region: 'us', disk: 'ssd' });
  t.deepEqual(o.endpoints, ['http://10.0.0.1:2379', 'http://10.0.0.2:2379']);
  t.is(o.memoryBytes, 512 * 1024 ** 2);
  t.true(o.keepUnitsOnExit);
  t.is(o.driver, 'process');
});

test('metadata, cpu and memory flags parse as documented', (t) => {
  const h = host({ '/etc/machine-id': 'x' });
  const o = options(['--metadata', 'a=1, b=two,c=', '--cpu', '1.5', '--memory', '2G'], h);
  t.deepEqual(o.metadata, { a: '1', b: 'two', c: '' });
  t.is(o.cpuMillicores, 1500);
  t.is(o.memoryBytes, 2 * 1024 ** 3);
});

test('bad settings are usage errors that name the flag or file line', (t) => {
  const h = host({
    '/etc/machine-id': 'x',
    '/bad.conf': 'machine-id=x\nnonsense\n',
    '/k.conf': 'colour=red\n',
  });
  const cases: [string[], RegExp][] = [
    [['--lease-ttl', '1500ms'], /--lease-ttl/],
    [['--driver', 'docker'], /--driver=docker/],
    [['--metadata', 'novalue'], /--metadata/],
    [['--cpu', 'lots'], /--cpu=lots/],
    [['--memory', '0'], /--memory=0/],
    [['--machine-id', 'a/b'], /--machine-id/],
    [['--logs-listen', 'nowhere'], /--logs-listen/],
    [['--config', '/bad.conf'], /\/bad.conf:2/],
    [['--config', '/k.conf'], /unknown key colour/],
    [['--config', '/missing.conf'], /cannot read/],
    [['--bogus'], /bogus/],
  ];
  for (const [argv, message] of cases) {
    const err = t.throws(() => parseAgentArgs(argv, h), { instanceOf: UsageError }, argv.join(' '));
    t.regex(err?.message ?? '', message);
  }
  t.throws(() => parseAgentArgs([], host()), { message: /machine-id/ }, 'no machine id anywhere');
});

test('--help asks for usage without reading anything', (t) => {
  t.deepEqual(parseAgentArgs(['--help'], host()), { help: true });
});

test('key=value config lines: comments, quotes, blank lines', (t) => {
  t.deepEqual(parseConfigText('f', '; c\n\n a = "b c" \nd=e=f\n'), { a: 'b c', d: 'e=f' });
  t.throws(() => parseConfigText('f', '[1]'), { message: /f:1: expected key=value/ });
});

test('registry flags: an auth file read at start, insecure registries, the image store budget', (t) => {
  const h = host({
    '/etc/machine-id': 'x',
    '/auth.json': '{"auths": {"reg.example:5000": {"auth": "dTpw"}}}',
    '/broken.json': 'not json',
  });
  const o = options(
    [
      '--registry-auth-file',
      '/auth.json',
      '--insecure-registry',
      '10.213.1.1:5000, localhost:5001',
      '--image-store-max',
      '2G',
    ],
    h,
  );
  t.is(o.registry?.authFile, '/auth.json');
  t.deepEqual(o.registry?.insecureRegistries, ['10.213.1.1:5000', 'localhost:5001']);
  t.is(o.imageStoreMaxBytes, 2 * 1024 ** 3);
  t.is(
    options([], h).imageStoreMaxBytes,
    0,
    'default: a quarter of the disk, decided by the store',
  );
  const cases: [string[], RegExp][] = [
    [
      ['--registry-auth-file', '/missing.json'],
      /--registry-auth-file=\/missing.json: cannot be read/,
    ],
    [['--registry-auth-file', '/broken.json'], /not JSON/],
    [['--insecure-registry', 'http://x'], /--insecure-registry: "http:\/\/x"/],
    [['--image-store-max', 'lots'], /--image-store-max=lots/],
  ];
  for (const [argv, message] of cases) {
    const err = t.throws(() => parseAgentArgs(argv, h), { instanceOf: UsageError }, argv.join(' '));
    t.regex(err?.message ?? '', message);
  }
});
