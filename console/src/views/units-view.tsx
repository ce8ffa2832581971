/**
 * Every unit in one virtualised table: only the rows in view are in the DOM (about 40 of
 * 100,000), over a spacer as tall as all of them. Search by glob, filters by state, machine,
 * template and health, sorting by any column. The filtered and sorted list is derived again
 * when the filters change or, at most every second, when the model does.
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { globMatcher } from '../glob.js';
import { unitSummary, type UnitRow } from '../model.js';
import { linkProps } from '../router.js';
import { model, useModel } from '../session.js';

const ROW_H = 24;
/** Rows drawn beyond the window on each side, so a fast scroll shows no blank. */
const OVERSCAN = 10;

type SortKey = 'name' | 'state' | 'machine' | 'health' | 'restarts';

interface Row {
  readonly unit: UnitRow;
  readonly state: string;
  readonly machine: string;
  readonly health: string;
  readonly restarts: number;
}

function rowOf(u: UnitRow): Row {
  const copies = u.global ? (u.copies?.size ?? 0) : 0;
  return {
    unit: u,
    state: unitSummary(u),
    machine: u.global ? `${copies} machines (global)` : u.machine,
    health: u.state?.health ?? '',
    restarts: u.state?.restarts ?? 0,
  };
}

const compare: Record<SortKey, (a: Row, b: Row) => number> = {
  name: (a, b) => (a.unit.name < b.unit.name ? -1 : a.unit.name > b.unit.name ? 1 : 0),
  state: (a, b) => a.state.localeCompare(b.state),
  machine: (a, b) => a.machine.localeCompare(b.machine),
  health: (a, b) => a.health.localeCompare(b.health),
  restarts: (a, b) => a.restarts - b.restarts,
};

export function UnitsView() {
  const version = useModel(1_000);
  const params = new URLSearchParams(location.search);
  const [glob, setGlob] = useState(params.get('q') ?? '');
  const [state, setState] = useState(params.get('state') ?? '');
  const [machine, setMachine] = useState(params.get('machine') ?? '');
  const [template, setTemplate] = useState('');
  const [health, setHealth] = useState('');
  const [sort, setSort] = useState<{ key: SortKey; desc: boolean }>({ key: 'name', desc: false });
  const box = useRef<HTMLDivElement>(null);
  const [top, setTop] = useState(0);
  const [viewH, setViewH] = useState(600);

  const rows = useMemo(() => {
    const match = globMatcher(glob);
    const out: Row[] = [];
    for (const u of model.units.values()) {
      if (!match(u.name)) continue;
      if (template !== '' && u.template !== template) continue;
      if (machine !== '' && !(u.machine.startsWith(machine) || u.copies?.has(machine) === true))
        continue;
      const r = rowOf(u);
      if (state !== '' && r.state !== state) continue;
      if (health !== '' && r.health !== health) continue;
      out.push(r);
    }
    const cmp = compare[sort.key];
    out.sort(
      sort.desc
        ? (a, b) => cmp(b, a) || compare.name(a, b)
        : (a, b) => cmp(a, b) || compare.name(a, b),
    );
    return out;
  }, [version, glob, state, machine, template, health, sort]);

  const templates = useMemo(() => {
    const t = new Set<string>();
    for (const u of model.units.values()) if (u.template !== '') t.add(u.template);
    return [...t].sort().slice(0, 500);
  }, [Math.floor(version / 20), model.units.size]);

  useEffect(() => {
    const el = box.current;
    if (el === null) return;
    const onScroll = (): void => setTop(el.scrollTop);
    const ro = new ResizeObserver(() => setViewH(el.clientHeight));
    el.addEventListener('scroll', onScroll, { passive: true });
    ro.observe(el);
    return () => {
      el.removeEventListener('scroll', onScroll);
      ro.disconnect();
    };
  }, []);

  const first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
  const last = Math.min(rows.length, Math.ceil((top + viewH) / ROW_H) + OVERSCAN);
  const header = (key: SortKey, label: string) => (
    <th
      onClick={() => setSort({ key, desc: sort.key === key ? !sort.desc : false })}
      class={sort.key === key ? 'sorted' : ''}
    >
      {label}
      {sort.key === key ? (sort.desc ? ' ▼' : ' ▲') : ''}
    </th>
  );
  const select = (value: string, set: (v: string) => void, options: string[], all: string) => (
    <select value={value} onChange={(e) => set((e.target as HTMLSelectElement).value)}>
      <option value="">{all}</option>
      {options.map((o) => (
        <option value={o}>{o}</option>
      ))}
    </select>
  );

  return (
    <div class="units-page">
      <div class="toolbar">
        <input
          type="search"
          placeholder="search: web@* or text"
          value={glob}
          onInput={(e) => setGlob((e.target as HTMLInputElement).value)}
          data-test="unit-search"
        />
        {select(
          state,
          setState,
          ['running', 'changing', 'failed', 'unhealthy', 'stopped', 'pending', 'inactive'],
          'any state',
        )}
        {select(template, setTemplate, templates, 'any template')}
        {select(health, setHealth, ['healthy', 'unhealthy', 'starting'], 'any health')}
        <input
          placeholder="machine"
          value={machine}
          onInput={(e) => setMachine((e.target as HTMLInputElement).value)}
        />
        <span class="counts" data-test="unit-count">
          {rows.length} of {model.units.size} units
        </span>
      </div>
      <table class="grid head">
        <colgroup>
          <col class="c-name" />
          <col class="c-state" />
          <col class="c-machine" />
          <col class="c-health" />
          <col class="c-restarts" />
        </colgroup>
        <thead>
          <tr>
            {header('name', 'unit')}
            {header('state', 'state')}
            {header('machine', 'machine')}
            {header('health', 'health')}
            {header('restarts', 'restarts')}
          </tr>
        </thead>
      </table>
      <div class="grid-scroll" ref={box}>
        <div style={{ height: `${rows.length * ROW_H}px`, position: 'relative' }}>
          <table class="grid" style={{ position: 'absolute', top: `${first * ROW_H}px` }}>
            <colgroup>
              <col class="c-name" />
              <col class="c-state" />
              <col class="c-machine" />
              <col class="c-health" />
              <col class="c-restarts" />
            </colgroup>
            <tbody>
              {rows.slice(first, last).map((r) => (
                <tr key={r.unit.name} data-unit={r.unit.name}>
                  <td>
                    <a {...linkProps(`units/${r.unit.name}`)}>{r.unit.name}</a>
                  </td>
                  <td>
                    <span class={`pill s-${r.state}`}>{r.state}</span>
                  </td>
                  <td>{r.machine}</td>
                  <td>{r.health}</td>
                  <td>{r.restarts}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </div>
    </div>
  );
}
