/**
 * The verbs that follow streams, against the real API server over a real etcd: watch (live
 * lines, filters, resuming from a revision, -o json), list-units --watch (redraws), and
 * journal / status reading logs through the API's Logs relay from a stand-in agent Logs
 * service (sim-cluster.ts): the agent is another process, the relay is the real one.
 */
import test from 'ava';
import { codecs } from '../../store/index.js';
import { etcdForFile, unitText } from '../../testkit/index.js';
import { addMachine, EXAMPLES, parseJson, startTestApi, unitDir } from './cli-kit.js';
import { simulateCluster, startAgentLogs } from './sim-cluster.js';

const server = etcdForFile(test);

test('watch prints each change live as one line, and Ctrl-C ends it with exit 0', async (t) => {
  const api = await startTestApi(t, server());
  const m = await addMachine(api.store, { addresses: ['10.0.0.1'] });
  const watch = api.spawn(['watch']);
  // The stream is open once a machine change shows up; then every later change is seen.
  await retryUntilSeen(
    watch,
    () => addMachine(api.store, { id: m.id, addresses: ['10.0.0.1'] }),
    /machine/,
  );
  simulateCluster(t, api.store, { machines: [m] });
  const start = await api.run(['start', `${EXAMPLES}hello.service`]);
  t.is(start.code, 0, start.stdout + start.stderr);
  const short = `${m.id.slice(0, 8)}...`;
  const line = (kind: string, rest: string) =>
    new RegExp(
      `^\\d\\d:\\d\\d:\\d\\d\\.\\d{3}\\s+\\d+\\s+${kind}\\s+hello\\.service\\s+${rest}$`,
      'm',
    );
  await watch.waitFor(line('state', `${short.replace(/\./g, '\\.')}\\s+active/running`));
  const out = watch.stdout();
  // start submits a file it was given already launched: one write, one unit line.
  t.regex(out, line('unit', '-\\s+desired launched'));
  t.notRegex(out, line('unit', '-\\s+desired inactive'));
  t.regex(out, line('placement', `${short.replace(/\./g, '\\.')}\\s+placed \\(launched\\)`));
  t.true(out.indexOf('placed (launched)') < out.indexOf('active/running'), 'in revision order');
  t.is(await watch.stop('SIGINT'), 0);
});

test('watch --unit filters by glob, --from-revision replays history, -o json lines parse', async (t) => {
  const api = await startTestApi(t, server());
  const dir = await unitDir(t, { 'a.service': unitText(), 'b.service': unitText() });
  const first = await api.run(['-o', 'json', 'submit', `${dir}/a.service`, `${dir}/b.service`]);
  const revision = (parseJson(t, first.stdout) as { revision: string }).revision;
  await api.run(['start', '--no-block', 'a', 'b']);
  const replay = api.spawn(['watch', '--from-revision', revision, '--unit', 'b*', '-o', 'json']);
  const out = await replay.waitFor(/desiredState":"launched/);
  const events = out
    .trim()
    .split('\n')
    .map((l) => parseJson(t, l) as { kind: string; name: string; revision: string; time: string });
  t.true(events.length >= 2);
  t.true(
    events.every((e) => e.name === 'b.service'),
    'only b.service',
  );
  t.is(events[0]?.revision, revision, 'starts at the revision asked for');
  t.true(events.every((e) => !Number.isNaN(Date.parse(e.time))));
  t.is(await replay.stop(), 0);
});

test('watch --machine PREFIX keeps the changes of that machine only', async (t) => {
  const api = await startTestApi(t, server());
  const a = await addMachine(api.store, { addresses: ['10.0.0.1'] });
  const b = await addMachine(api.store, { addresses: ['10.0.0.2'] });
  const live = api.spawn(['watch', '--machine', a.id.slice(0, 6)]);
  await retryUntilSeen(
    live,
    () => addMachine(api.store, { id: a.id, addresses: ['10.0.0.1'] }),
    /machine/,
  );
  simulateCluster(t, api.store, { machines: [a, b] });
  const dir = await unitDir(t, { 'one.service': unitText(), 'two.service': unitText() });
  t.is(
    (await api.run(['start', `${dir}/one.service`])).code,
    0,
    'placed on a (least loaded, first)',
  );
  t.is((await api.run(['start', `${dir}/two.service`])).code, 0, 'placed on b');
  await live.waitFor(/one\.service\s+\S+\s+active\/running/);
  await new Promise((resolve) => setTimeout(resolve, 500)); // let any event of b arrive, wrongly
  const lines = live.stdout().trimEnd().split('\n');
  const short = (id: string) => `${id.slice(0, 8)}...`;
  t.true(
    lines.every((l) => l.includes(short(a.id))),
    lines.join('\n'),
  );
  t.false(live.stdout().includes(short(b.id)));
  t.false(live.stdout().includes('two.service'));
  t.is(await live.stop(), 0);
});

test('list-units --watch redraws the table when the cluster changes', async (t) => {
  const api = await startTestApi(t, server());
  const m = await addMachine(api.store);
  simulateCluster(t, api.store, { machines: [m] });
  const live = api.spawn(['list-units', '--watch', '--fields', 'unit,active,sub']);
  await live.waitFor(/^UNIT\s+ACTIVE\s+SUB\n/m, 'the first (empty) table');
  const start = await api.run(['start', `${EXAMPLES}hello.service`]);
  t.is(start.code, 0, start.stdout + start.stderr);
  const out = await live.waitFor(/^hello\.service\s+active\s+running$/m);
  t.true(out.split('UNIT').length - 1 >= 2, 'the table was drawn again');
  t.is(await live.stop('SIGTERM'), 0);
});

test('journal prints the last lines through the API, -n limits them, -f follows', async (t) => {
  const api = await startTestApi(t, server());
  const logs = await startAgentLogs(t);
  const m = await addMachine(api.store, { agentEndpoint: logs.endpoint });
  simulateCluster(t, api.store, { machines: [m] });
  t.is((await api.run(['start', `${EXAMPLES}hello.service`])).code, 0);
  for (let i = 1; i <= 15; i++) logs.push('hello.service', `line ${i}`);
  const tail = await api.run(['journal', 'hello']);
  t.is(tail.code, 0, tail.stdout + tail.stderr);
  t.is(
    tail.stdout,
    Array.from({ length: 10 }, (_, i) => `line ${i + 6}\n`).join(''),
    'the last 10 by default',
  );
  const three = await api.run(['journal', '-n', '3', 'hello.service', '-o', 'json']);
  const lines = three.stdout
    .trim()
    .split('\n')
    .map((l) => parseJson(t, l) as { text: string; stream: string; time: string });
  t.deepEqual(
    lines.map((l) => l.text),
    ['line 13', 'line 14', 'line 15'],
  );
  t.true(lines.every((l) => l.stream === 'stdout' && /^\d+$/.test(l.time)));

  const follow = api.spawn(['journal', '-f', '-n', '1', 'hello']);
  await follow.waitFor(/^line 15\n$/);
  logs.push('hello.service', 'line 16');
  await follow.waitFor(/^line 15\nline 16\n$/);
  t.is(await follow.stop(), 0);

  const status = await api.run(['status', '-n', '2', 'hello']);
  t.is(status.code, 0, status.stdout + status.stderr);
  t.regex(status.stdout, /Last 2 log lines:\n {2}line 15\n {2}line 16\n$/);
});

test('journal of a unit that is not placed exits 1 with the reason; of an unknown unit too', async (t) => {
  const api = await startTestApi(t, server());
  await api.run(['submit', `${EXAMPLES}hello.service`]);
  const unplaced = await api.run(['journal', 'hello']);
  t.is(unplaced.code, 1);
  t.regex(unplaced.stderr, /hello\.service is not placed on any machine, so it has no logs/);
  const unknown = await api.run(['journal', 'ghost']);
  t.is(unknown.code, 1);
  t.regex(unknown.stderr, /ghost\.service is not a submitted unit/);
});

test('status says in one line when the agent holding the logs is gone, and exits 0', async (t) => {
  const api = await startTestApi(t, server());
  const m = await addMachine(api.store);
  simulateCluster(t, api.store, { machines: [m] });
  t.is((await api.run(['start', `${EXAMPLES}hello.service`])).code, 0);
  await api.store.delete(api.store.keys.machine(m.id)); // the agent's lease expired
  const status = await api.run(['status', 'hello']);
  t.is(status.code, 0, status.stdout + status.stderr);
  const logLines = status.stdout.split('\n').filter((l) => l.startsWith('Logs:'));
  t.is(logLines.length, 1);
  t.regex(logLines[0] ?? '', /^Logs: unavailable: .*not connected/);
  t.truthy(await api.store.getRecord(codecs.unit, api.store.keys.unit('hello.service')));
});

/**
 * Repeats `poke` until the live run prints `re`: the first write may land before the stream
 * is open ("from now" starts when the server's watch does), so later writes prove it open.
 */
async function retryUntilSeen(
  live: ReturnType<Awaited<ReturnType<typeof startTestApi>>['spawn']>,
  poke: () => Promise<unknown>,
  re: RegExp,
): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!re.test(live.stdout())) {
    if (Date.now() > deadline) throw new Error(`never printed ${String(re)}: ${live.stderr()}`);
    await poke();
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}
