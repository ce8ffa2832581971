/**
 * Image benchmark: a real registry (docker-registry on 127.0.0.1), a 3-layer image of about
 * 20 MB built offline (busybox-static plus two layers of incompressible data), and the runc
 * runtime of one agent (UnitManager). Measures, against issue 12's targets:
 *
 * 1. cold: pull + unpack + start of the image on an empty store (target <= 2 s);
 * 2. warm: start of a second unit of the image, against a host-binary unit (<= +100 ms);
 * 3. the disk cost of that second unit (< 1 MB);
 * 4. 100 units of the image started at once on an empty store: pulls made, time until all
 *    run (one pull, <= 10 s).
 *
 * Prints a table, then one JSON line. `npm run bench:images` (root, runc, skopeo, umoci,
 * docker-registry). Everything it starts is removed at the end, also on failure.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { unmountUnder } from '../agent/runtime/mounts.js';
import { UnitManager } from '../agent/index.js';
import { buildImage, busyboxRoot, initLayout, pushImage } from '../deploy/images/build.js';
import { REGISTRY_DEFAULTS } from '../registry/skopeo.js';
import { parseUnit } from '../unit/index.js';
import type { UnitDefinition } from '../unit/model.js';
import { startRegistry, type TestRegistry } from '../testkit/registry.js';
import { killUnits } from '../testkit/unit-cleanup.js';

const run = promisify(execFile);
const MANY = Number(process.env['FLOTILLA_BENCH_IMAGE_UNITS'] ?? 100);

function imageUnit(name: string, image: string): UnitDefinition {
  return parseUnit(name, `[Container]\nImage=${image}\nExec=/bin/sleep 3600\n`);
}

async function manager(
  stateDir: string,
  machineId: string,
  reg: TestRegistry,
): Promise<UnitManager> {
  return UnitManager.create({
    machineId,
    stateDir,
    driver: 'runc',
    images: { registry: { ...REGISTRY_DEFAULTS, insecureRegistries: [reg.addr] }, maxBytes: 0 },
  });
}

/** Resolves with the ms from now until every one of `names` runs. */
function untilRunning(
  m: UnitManager,
  names: readonly string[],
  timeoutMs = 120_000,
): Promise<number> {
  const start = Date.now();
  const want = new Set(names);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`not all running after ${timeoutMs} ms`)),
      timeoutMs,
    );
    const check = (): void => {
      for (const n of want) {
        const s = m.get(n);
        if (s?.activeState === 'active' && s.subState === 'running') want.delete(n);
        if (s?.activeState === 'failed') reject(new Error(`${n} failed: ${s.message}`));
      }
      if (want.size === 0) {
        clearTimeout(timer);
        unsubscribe();
        resolve(Date.now() - start);
      }
    };
    const unsubscribe = m.onState(check);
    check();
  });
}

async function du(dir: string): Promise<number> {
  return Number((await run('du', ['-sxb', dir])).stdout.split('\t')[0]);
}

async function main(): Promise<void> {
  const reg = await startRegistry();
  const stateDir = await mkdtemp(join(tmpdir(), 'flotilla-bench-images-'));
  const ids = ['benchimg1', 'benchimg2'];
  const managers: UnitManager[] = [];
  try {
    await initLayout(reg.layout);
    await buildImage(reg.layout, null, 'big', busyboxRoot);
    for (const n of [1, 2]) {
      await buildImage(reg.layout, 'big', 'big', async (rootfs) => {
        await writeFile(join(rootfs, `data${n}`), randomBytes(9 * 1024 * 1024));
      });
    }
    const image = `${reg.addr}/bench/big:1`;
    await pushImage(reg.layout, 'big', image, true);

    const m = await manager(stateDir, ids[0] ?? '', reg);
    managers.push(m);
    await m.start(imageUnit('cold.service', image));
    const cold = await untilRunning(m, ['cold.service']);
    const before = await du(stateDir);
    await m.start(imageUnit('warm.service', image));
    const warm = await untilRunning(m, ['warm.service']);
    const secondUnitBytes = (await du(stateDir)) - before;
    await m.start(parseUnit('host.service', '[Service]\nExecStart=/bin/sleep 3600\n'));
    const host = await untilRunning(m, ['host.service']);

    const many = await manager(stateDir, ids[1] ?? '', reg);
    managers.push(many);
    const names = Array.from({ length: MANY }, (_, i) => `many@${i + 1}.service`);
    const started = Date.now();
    await Promise.all(names.map((n) => many.start(imageUnit(n, image))));
    await untilRunning(many, names, 300_000);
    const manyMs = Date.now() - started;
    const layouts = (await readdir(join(stateDir, ids[1] ?? '', 'images', 'oci'))).length;

    const rows: [string, string, string][] = [
      ['cold: pull + unpack + start (3 layers, ~20 MB)', `${cold} ms`, '<= 2000 ms'],
      ['warm: start, image present', `${warm} ms`, `<= host + 100 ms`],
      ['host-binary unit start', `${host} ms`, ''],
      ['disk cost of a second unit', `${secondUnitBytes} bytes`, '< 1 MB'],
      [`${MANY} units of one image: all running`, `${manyMs} ms`, '<= 10000 ms'],
      [`${MANY} units of one image: pulls`, String(layouts), '1'],
    ];
    for (const [what, value, target] of rows)
      console.log(`${what.padEnd(48)} ${value.padStart(14)}  ${target}`);
    console.log(
      JSON.stringify({
        coldMs: cold,
        warmMs: warm,
        hostMs: host,
        secondUnitBytes,
        units: MANY,
        manyMs,
        pulls: layouts,
      }),
    );
  } finally {
    for (const mgr of managers) {
      await Promise.all(mgr.list().map((s) => mgr.stop(s.name).catch(() => undefined)));
      await mgr.close();
    }
    for (const id of ids) await killUnits(stateDir, id);
    await unmountUnder(stateDir);
    await rm(stateDir, { recursive: true, force: true });
    await reg.stop();
  }
}

await main();
