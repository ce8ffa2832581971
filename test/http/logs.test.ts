/**
 * `GET /api/v1/units/{name}/logs` through the API's real relay to an agent's Logs service (a
 * stand-in agent process from sim-cluster.ts, as flotctl journal's tests use): the last
 * lines as JSON, `follow=1` as Server-Sent Events, and 404 for a unit that is not there.
 */
import test from 'ava';
import { assertEventually, EXAMPLES, etcdForFile } from '../../testkit/index.js';
import { addMachine } from '../cli/cli-kit.js';
import { simulateCluster, startAgentLogs } from '../cli/sim-cluster.js';
import { file, startHttp } from './http-kit.js';
import { readFile } from 'node:fs/promises';

const etcd = etcdForFile(test);

test('the last lines come as JSON, follow=1 streams new ones, an unknown unit is 404', async (t) => {
  const http = await startHttp(t, etcd());
  const logs = await startAgentLogs(t);
  const m = await addMachine(http.store, { agentEndpoint: logs.endpoint });
  simulateCluster(t, http.store, { machines: [m] });
  const hello = await readFile(`${EXAMPLES}hello.service`, 'utf8');
  const start = await http.fetch('/api/v1/units', {
    body: { files: [file('hello.service', hello)], desiredState: 'launched' },
  });
  t.is(start.status, 200, start.text);
  await assertEventually(async () => {
    const s = await http.fetch('/api/v1/units/hello.service');
    return s.json['currentState'] === 'launched';
  });
  for (let i = 1; i <= 5; i++) logs.push('hello.service', `line ${i}`);

  const last = await http.fetch('/api/v1/units/hello.service/logs?lines=3');
  t.is(last.status, 200, last.text);
  t.deepEqual(
    (last.json['lines'] as { text: string }[]).map((l) => l.text),
    ['line 3', 'line 4', 'line 5'],
  );

  const controller = new AbortController();
  t.teardown(() => controller.abort());
  const res = await fetch(`${http.url}/api/v1/units/hello.service/logs?follow=1&lines=0`, {
    signal: controller.signal,
  });
  t.is(res.status, 200);
  t.regex(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  let text = '';
  const reader = res.body?.getReader();
  const reading = (async () => {
    for (;;) {
      const chunk = await reader?.read();
      if (chunk === undefined || chunk.done) return;
      text += Buffer.from(chunk.value).toString();
    }
  })().catch(() => undefined);
  await assertEventually(() => {
    logs.push('hello.service', 'a new line');
    return text.includes('"text":"a new line"');
  });
  t.regex(text, /event: line\n/);
  controller.abort();
  await reading;

  const unknown = await http.fetch('/api/v1/units/nothing.service/logs?follow=1');
  t.is(unknown.status, 404, unknown.text);
  t.is(unknown.json.error?.code, 'NOT_FOUND');
  const bad = await http.fetch('/api/v1/units/hello.service/logs?lines=1000000');
  t.is(bad.status, 400);
});
