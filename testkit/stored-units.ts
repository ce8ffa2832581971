/**
 * The units etcd holds, read directly as tests and simulated processes need them: records
 * under `units/`, and the instances each `instance-counts/<template>` record holds (a scale
 * writes its instances as one such record; every reader sees them as units). A real record
 * wins over a counted number, as in the scheduler's mirror.
 */
import type { Unit } from '../proto/flotilla/v1/records.js';
import { codecs, instanceOf, templateOf, type Store } from '../store/index.js';

/** Every unit: its own record, or the one its template's count record gives it. */
export async function storedUnits(store: Store): Promise<Map<string, Unit>> {
  const [records, counts] = await Promise.all([
    store.listRecords(codecs.unit, store.keys.dir('unit')),
    store.listRecords(codecs['instance-count'], store.keys.dir('instance-count')),
  ]);
  const units = new Map<string, Unit>();
  for (const c of counts.items) {
    const { template, file, hash, desiredState } = c.value;
    for (const r of c.value.ranges) {
      for (let n = r.first; n <= r.last; n++) {
        const name = instanceOf(template, n);
        units.set(name, { name, file, hash, desiredState });
      }
    }
  }
  for (const r of records.items) units.set(r.value.name, r.value);
  return units;
}

/** Unit `name`: its own record, or what its template's count record gives it. */
export async function storedUnit(store: Store, name: string): Promise<Unit | undefined> {
  const own = await store.getRecord(codecs.unit, store.keys.unit(name));
  if (own !== undefined) return own.value;
  const template = templateOf(name);
  if (template === undefined) return undefined;
  const n = Number(name.slice(name.indexOf('@') + 1, name.lastIndexOf('.')));
  const count = await store.getRecord(codecs['instance-count'], store.keys.instanceCount(template));
  if (count === undefined || instanceOf(template, n) !== name) return undefined;
  if (!count.value.ranges.some((r) => r.first <= n && n <= r.last)) return undefined;
  const { file, hash, desiredState } = count.value;
  return { name, file, hash, desiredState };
}

/** How many instances of `template` exist: numbered records and counted numbers. */
export async function storedInstances(store: Store, template: string): Promise<number> {
  const units = await storedUnits(store);
  let n = 0;
  for (const name of units.keys()) if (name !== template && templateOf(name) === template) n++;
  return n;
}
