/**
 * flotctl's command line itself: help on every verb, usage errors (exit 2, with the usage),
 * and what happens when no API answers (exit 1, one line saying what to do). No cluster.
 */
import { createServer, type AddressInfo } from 'node:net';
import test from 'ava';
import { EXAMPLES, flotctl } from './cli-kit.js';

/**
 * Ports nothing listens on: privileged ones, which no test server is ever given (a free
 * ephemeral port could be taken by a test running beside this one before flotctl connects).
 */
const NOBODY = [1, 2, 3] as const;

const VERBS = [
  'submit',
  'load',
  'start',
  'stop',
  'unload',
  'destroy',
  'cat',
  'list-units',
  'list-unit-files',
  'list-machines',
  'status',
  'journal',
  'verify',
  'scale',
  'watch',
  'plan',
  'drain',
  'undrain',
  'update',
  'rollback',
  'rollout',
];

test('flotctl --help lists every verb and the global options, exit 0', async (t) => {
  const r = await flotctl(['--help']);
  t.is(r.code, 0, r.stdout + r.stderr);
  for (const verb of VERBS) t.regex(r.stdout, new RegExp(`^  ${verb}\\s+\\S`, 'm'), verb);
  t.regex(r.stdout, /--endpoint HOST:PORT/);
  t.regex(r.stdout, /--request-timeout/);
  t.regex(r.stdout, /-o, --output table\|json/);
  t.regex(r.stdout, /--ca-file FILE .*FLOTCTL_CA_FILE/);
  t.regex(r.stdout, /--cert-file FILE .*FLOTCTL_CERT_FILE/);
  t.regex(r.stdout, /--key-file FILE .*FLOTCTL_KEY_FILE/);
});

test('every verb has --help starting with its usage line, exit 0, without a cluster', async (t) => {
  const runs = await Promise.all(VERBS.map((verb) => flotctl([verb, '--help'])));
  runs.forEach((r, i) => {
    const verb = VERBS[i] ?? '';
    t.is(r.code, 0, `${verb}: ${r.stderr}`);
    t.true(r.stdout.startsWith(`Usage: flotctl ${verb}`), `${verb}: ${r.stdout}`);
    t.regex(r.stdout, /--endpoint/, `${verb} help shows the global options`);
  });
  const viaHelp = await flotctl(['help', 'start']);
  t.is(viaHelp.code, 0);
  t.true(viaHelp.stdout.startsWith('Usage: flotctl start'));
});

/** Command lines that are wrong in themselves; none of them may reach for the network. */
const USAGE_ERRORS: readonly (readonly string[])[] = [
  [],
  ['frobnicate'],
  ['submit'],
  ['start'],
  ['start', '--bogus', 'a.service'],
  ['start', '--timeout', 'soon', 'a.service'],
  ['start', '--timeout', '0', 'a.service'],
  ['stop', '--block-attempts', '-3', 'a.service'],
  ['cat'],
  ['cat', 'a.service', 'b.service'],
  ['journal'],
  ['journal', '-n', 'ten', 'a.service'],
  ['status'],
  ['scale'],
  ['scale', 'web'],
  ['scale', 'web', 'five'],
  ['scale', 'web.service=3'],
  ['scale', 'web@.service=-1'],
  ['list-units', '--fields', 'unit,colour'],
  ['list-units', 'a*', 'b*'],
  ['list-machines', '--fields', ''],
  ['list-machines', 'extra'],
  ['watch', '--from-revision', 'yesterday'],
  ['plan'],
  ['drain'],
  ['undrain', 'a', 'b'],
  ['update'],
  ['update', '--parallelism', '0', 'web@.service'],
  ['update', '--failure-action', 'retry', 'web@.service'],
  ['update', '--monitor', 'soon', 'web@.service'],
  ['update', '--order', 'sideways', 'web@.service'],
  ['update', '--timeout', '0', 'web@.service'],
  ['rollback'],
  ['rollback', 'a@.service', 'b@.service'],
  ['rollout', 'show', 'web@.service'],
  ['rollout', 'status'],
  ['-o', 'yaml', 'list-units'],
  ['list-units', '--endpoint'],
  ['--request-timeout', '-5s', 'list-units'],
  ['--cert-file', 'client.pem', 'list-units'],
  ['list-units', '--key-file', 'client.key'],
  ['list-units', '--ca-file'],
];

test('usage errors exit 2 with the usage on stderr and nothing on stdout', async (t) => {
  // A port nothing listens on: a usage error must be found before any call is made.
  const endpoint = `127.0.0.1:${NOBODY[0]}`;
  for (const args of USAGE_ERRORS) {
    const r = await flotctl(['--endpoint', endpoint, ...args]);
    const what = args.join(' ') || '(no arguments)';
    t.is(r.code, 2, `${what}: ${r.stderr}`);
    t.regex(r.stderr, /Usage: flotctl/, what);
    t.is(r.stdout, '', what);
    t.notRegex(r.stderr, /cannot reach/, what);
  }
});

test("a bad flag is one short line of flotctl's own naming it, then the usage lines, exit 2", async (t) => {
  const cases: [string[], string][] = [
    [
      ['list-units', '--bogus'],
      'flotctl list-units: unknown flag --bogus (see flotctl list-units --help)',
    ],
    [
      ['scale', 'api', '-1'],
      'flotctl scale: -1: expected a whole number of 0 or more (see flotctl scale --help)',
    ],
    [
      ['start', 'a.service', '--timeout'],
      'flotctl start: --timeout needs a value (see flotctl start --help)',
    ],
    [
      ['list-units', '--full=yes'],
      'flotctl list-units: --full takes no value (see flotctl list-units --help)',
    ],
  ];
  for (const [args, line] of cases) {
    const r = await flotctl(['--endpoint', `127.0.0.1:${NOBODY[0]}`, ...args]);
    t.is(r.code, 2, args.join(' '));
    const [first, blank, usage, ...rest] = r.stderr.split('\n');
    t.is(first, line, args.join(' '));
    t.is(blank, '');
    t.true(usage?.startsWith(`Usage: flotctl ${args[0] ?? ''} `), r.stderr);
    t.true(rest.length <= 3, `the usage lines only, not the whole help: ${r.stderr}`);
    t.notRegex(r.stderr, /positional argument|'--|Options:/, args.join(' '));
  }
});

test('an unreachable endpoint exits 1 with one line naming it and how to change it', async (t) => {
  const endpoint = `127.0.0.1:${NOBODY[0]}`;
  const expected = `cannot reach the Flotilla API at ${endpoint}: is a scheduler running? (set --endpoint or FLOTCTL_ENDPOINT)\n`;
  for (const args of [
    ['list-units'],
    ['list-machines'],
    ['start', '--timeout', '5s', 'hello.service'],
    ['submit', `${EXAMPLES}hello.service`],
    ['watch'],
    ['journal', '-f', 'hello.service'],
  ]) {
    const r = await flotctl(['--endpoint', endpoint, '--request-timeout', '5s', ...args]);
    t.is(r.code, 1, args.join(' '));
    t.is(r.stderr, expected, args.join(' '));
    t.is(r.stdout, '', args.join(' '));
  }
});

test('FLOTCTL_ENDPOINT is used when --endpoint is absent, and --endpoint wins over it', async (t) => {
  const [, a, b] = NOBODY;
  const fromEnv = await flotctl(['list-units'], { env: { FLOTCTL_ENDPOINT: `127.0.0.1:${a}` } });
  t.is(fromEnv.code, 1);
  t.regex(fromEnv.stderr, new RegExp(`at 127\\.0\\.0\\.1:${a}:`));
  const both = await flotctl(['--endpoint', `http://127.0.0.1:${b}/`, 'list-units'], {
    env: { FLOTCTL_ENDPOINT: `127.0.0.1:${a}` },
  });
  t.is(both.code, 1);
  t.regex(both.stderr, new RegExp(`at 127\\.0\\.0\\.1:${b}:`), 'http:// and / are dropped');
});

test('the default endpoint is 127.0.0.1:4700', async (t) => {
  // Port 4700 may be served (a developer's scheduler, another test run) or not: what flotctl
  // dials is seen instead. grpc-js goes through the HTTP proxy that grpc_proxy names, so this
  // test's own proxy, on a port the kernel picks, reads the CONNECT line naming the endpoint
  // flotctl asked for, and refuses it.
  const asked: string[] = [];
  const proxy = createServer((socket) => {
    let head = '';
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      asked.push(head.slice(0, head.indexOf('\r\n')));
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n');
    });
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  t.teardown(() => proxy.close());
  const { port } = proxy.address() as AddressInfo;
  const r = await flotctl(['list-units', '--request-timeout', '3s'], {
    env: {
      grpc_proxy: `http://127.0.0.1:${port}`,
      // Used for every host unless no_grpc_proxy (or, when that is empty, no_proxy) lists it.
      no_grpc_proxy: 'nothing.invalid',
      GRPC_VERBOSITY: 'NONE', // grpc-js would log the refused CONNECT on stderr
    },
  });
  t.true(asked.length > 0, `flotctl did not go through the proxy: ${r.stderr}`);
  t.deepEqual([...new Set(asked)], ['CONNECT 127.0.0.1:4700 HTTP/1.1']);
  t.is(r.code, 1, r.stderr);
  t.regex(r.stderr, /^cannot reach the Flotilla API at 127\.0\.0\.1:4700: /);
});

test('verify still works offline next to the new verbs', async (t) => {
  const ok = await flotctl(['verify', `${EXAMPLES}hello.service`]);
  t.is(ok.code, 0, ok.stdout + ok.stderr);
  const bad = await flotctl(['verify', `${EXAMPLES}bad/bad-memory.service`]);
  t.is(bad.code, 1);
  t.regex(bad.stdout, /bad-memory\.service:3: MemoryMax/);
});
