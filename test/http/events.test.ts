/**
 * `GET /api/v1/events` over a real listener and etcd: a change arrives as a batch, a client
 * that resumes with Last-Event-ID gets what it missed, and a revision no longer kept is
 * answered with a reset telling the client to re-list.
 */
import test from 'ava';
import { codecs, openStore } from '../../store/index.js';
import {
  assertEventually,
  etcdForFile,
  makeUnit,
  uniquePrefix,
  unitText,
} from '../../testkit/index.js';
import { file, startHttp, type Http } from './http-kit.js';

const etcd = etcdForFile(test);

interface Message {
  readonly id?: string;
  readonly event: string;
  readonly data: string;
}

/** Reads an SSE stream into `messages` until aborted. */
function follow(http: Http, path: string, headers: Record<string, string> = {}) {
  const messages: Message[] = [];
  const controller = new AbortController();
  let ended = false;
  const done = (async () => {
    const res = await fetch(http.url + path, { headers, signal: controller.signal });
    const reader = res.body?.getReader();
    let buffer = '';
    for (;;) {
      const chunk = await reader?.read();
      if (chunk === undefined || chunk.done) break;
      buffer += Buffer.from(chunk.value).toString();
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const m: Record<string, string> = {};
        for (const line of block.split('\n')) {
          const colon = line.indexOf(':');
          if (colon <= 0) continue;
          m[line.slice(0, colon)] = line.slice(colon + 1).trimStart();
        }
        if (m['event'] !== undefined) {
          messages.push({
            event: m['event'],
            data: m['data'] ?? '',
            ...(m['id'] === undefined ? {} : { id: m['id'] }),
          });
        }
      }
    }
    ended = true;
  })().catch(() => {
    ended = true;
  });
  return {
    messages,
    get ended() {
      return ended;
    },
    names: () =>
      messages
        .filter((m) => m.event === 'batch')
        .flatMap((m) => (JSON.parse(m.data) as { events: { kind: string; name: string }[] }).events)
        .filter((e) => e.kind === 'unit')
        .map((e) => e.name),
    stop: async () => {
      controller.abort();
      await done;
    },
  };
}

test('a submitted unit arrives on the stream as a batch with its revision as id', async (t) => {
  const http = await startHttp(t, etcd());
  const s = follow(http, '/api/v1/events');
  t.teardown(() => s.stop());
  await assertEventually(() => s.messages.some((m) => m.event === 'ready'), { timeoutMs: 10_000 });
  await http.fetch('/api/v1/units', { body: { files: [file('web.service', unitText())] } });
  await assertEventually(() => s.names().includes('web.service'), { timeoutMs: 10_000 });
  const batch = s.messages.find((m) => m.event === 'batch');
  t.regex(batch?.id ?? '', /^\d+$/);
});

test('a client resuming with Last-Event-ID gets the changes it missed, and no earlier ones', async (t) => {
  const http = await startHttp(t, etcd());
  const first = follow(http, '/api/v1/events');
  await http.fetch('/api/v1/units', { body: { files: [file('a.service', unitText())] } });
  await assertEventually(() => first.names().includes('a.service'), { timeoutMs: 10_000 });
  const last = [...first.messages].reverse().find((m) => m.id !== undefined)?.id ?? '';
  await first.stop();
  await http.fetch('/api/v1/units', { body: { files: [file('b.service', unitText())] } });
  await http.fetch('/api/v1/units', { body: { files: [file('c.service', unitText())] } });
  const resumed = follow(http, '/api/v1/events', { 'last-event-id': last });
  t.teardown(() => resumed.stop());
  await assertEventually(() => resumed.names().includes('c.service'), { timeoutMs: 10_000 });
  t.deepEqual(resumed.names(), ['b.service', 'c.service']);
});

test('a revision older than the replica keeps is answered with a reset to re-list', async (t) => {
  // Changes made before the listener's mirror listed are not in its history.
  const other = openStore({ endpoints: etcd().endpoint, prefix: uniquePrefix('events-before') });
  for (const name of ['x.service', 'y.service', 'z.service']) {
    await other.putRecord(codecs.unit, other.keys.unit(name), makeUnit({ name }));
  }
  other.close();
  const http = await startHttp(t, etcd());
  const s = follow(http, '/api/v1/events?since=1');
  t.teardown(() => s.stop());
  await assertEventually(() => s.ended, { timeoutMs: 10_000 });
  const reset = s.messages.find((m) => m.event === 'reset');
  t.is((JSON.parse(reset?.data ?? '{}') as { code?: string }).code, 'OUT_OF_RANGE');
});

test('a client that stops reading is cut rather than buffered for without end', async (t) => {
  const http = await startHttp(t, etcd(), { streamBufferBytes: 64 * 1024 });
  const { request: raw } = await import('node:http');
  let ended = false;
  let body = '';
  let paused: (() => void) | undefined;
  const req = raw(`${http.url}/api/v1/events?files=1`, (res) => {
    res.setEncoding('utf8');
    res.once('data', (chunk: string) => {
      body += chunk;
      res.pause(); // a client that stops reading after the first message
      paused = () => {
        res.on('data', (c: string) => (body += c));
        res.resume();
      };
    });
    res.on('end', () => (ended = true));
    res.on('error', () => (ended = true));
    res.on('aborted', () => (ended = true));
  });
  req.on('error', () => (ended = true));
  req.end();
  t.teardown(() => req.destroy());
  await assertEventually(() => paused !== undefined, { timeoutMs: 10_000 });
  // About 13 MB of events with their files: more than the socket buffers on both sides hold.
  const big = `${unitText()}\n${'# padding padding padding padding padding padding padding\n'.repeat(4000)}`;
  for (let i = 0; i < 14; i++) {
    const files = [0, 1, 2, 3].map((j) => file(`big-${i}-${j}.service`, big));
    const res = await http.fetch('/api/v1/units', { body: { files } });
    t.is(res.status, 200, res.text);
  }
  paused?.();
  await assertEventually(() => ended, { timeoutMs: 20_000 });
  // It was cut before all 56 units arrived; a resume from its last id gets the rest.
  t.true((body.match(/"kind":"unit"/g) ?? []).length < 56);
});
