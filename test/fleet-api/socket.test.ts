/**
 * `--fleet-api-socket PATH`: the flag's checks, and the socket's life (a stale socket from an
 * earlier run is replaced, any other file is left alone and refused, closing removes it).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { pino } from 'pino';
import { UsageError } from '../../daemon/options.js';
import { openApiCore } from '../../scheduler/api/core.js';
import { FleetApi, startFleetSocket } from '../../scheduler/fleet-api/index.js';
import { parseSchedulerArgs } from '../../scheduler/options.js';
import { openStore } from '../../store/index.js';
import { etcdForFile, uniquePrefix } from '../../testkit/index.js';
import { fleetClient } from './fleet-kit.js';

const server = etcdForFile(test);
const quiet = pino({ level: 'silent' });

test('--fleet-api-socket is taken, and refused without the API it serves', (t) => {
  const parsed = parseSchedulerArgs(['--fleet-api-socket=/run/fleet.sock']);
  t.false(parsed.help);
  if (!parsed.help) t.is(parsed.options.fleetApiSocket, '/run/fleet.sock');
  const err = t.throws(() => parseSchedulerArgs(['--fleet-api-socket=/x.sock', '--listen=none']));
  t.true(err instanceof UsageError);
  t.regex(err?.message ?? '', /drop --listen=none/);
});

test('a stale socket is replaced, a served one or another file is refused and kept, and closing removes the socket', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'fleet-socket-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const store = openStore({ endpoints: server().endpoint, prefix: uniquePrefix('fleet-socket') });
  const core = openApiCore({ store, logger: quiet });
  t.teardown(async () => {
    await core.close();
    store.close();
  });
  const api = new FleetApi(core.cluster, quiet);

  const file = join(dir, 'not-a-socket');
  writeFileSync(file, 'keep me');
  const refused = await t.throwsAsync(startFleetSocket(file, api, core.gate, quiet));
  t.regex(refused?.message ?? '', /not a socket.*remove it or choose another path/);
  t.is(readFileSync(file, 'utf8'), 'keep me');

  // A socket served by another process is not taken over.
  const path = join(dir, 'fleet.sock');
  const other = createServer();
  await new Promise<void>((resolve) => other.listen(path, resolve));
  const busy = await t.throwsAsync(startFleetSocket(path, api, core.gate, quiet));
  t.regex(busy?.message ?? '', /another process serves this socket/);
  // One whose process died (SIGKILL: the file stays) is replaced.
  await new Promise<void>((resolve) => other.close(() => resolve()));
  const crashed = spawnSync(process.execPath, [
    '-e',
    `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`,
  ]);
  t.is(crashed.signal, 'SIGKILL');
  t.true(existsSync(path));
  const socket = await startFleetSocket(path, api, core.gate, quiet);
  const answer = await fleetClient(path)('GET', 'machines');
  t.is(answer.status, 200);
  t.deepEqual(answer.json, { machines: [] });
  await socket.close();
  t.false(existsSync(path));
});
