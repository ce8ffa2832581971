/**
 * Machines: every machine with its metadata, capacity, reservations and units, drained and
 * lost ones marked, and drain/undrain for a role that may; a machine's own page lists its
 * units.
 */
import { useState } from 'preact/hooks';
import { drain } from '../actions.js';
import { ApiFailure } from '../api.js';
import { cellState } from '../model.js';
import { linkProps } from '../router.js';
import { may, model, useModel } from '../session.js';

/** Rows the machines table shows at most (search narrows it). */
const ROWS_MAX = 500;

const GiB = 1024 ** 3;
const cores = (m: number) => (m / 1000).toFixed(m % 1000 === 0 ? 0 : 1);
const gib = (b: number) => (b / GiB).toFixed(1);

function DrainButton({ id, drained }: { id: string; drained: boolean }) {
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  if (!may('drain')) return null;
  return (
    <span>
      <button
        disabled={busy}
        data-test={drained ? 'undrain' : 'drain'}
        onClick={async () => {
          setBusy(true);
          setError('');
          try {
            await drain(id, !drained);
          } catch (e) {
            setError(e instanceof ApiFailure ? e.message : String(e));
          } finally {
            setBusy(false);
          }
        }}
      >
        {drained ? 'Undrain' : 'Drain'}
      </button>
      {error !== '' && <span class="error">{error}</span>}
    </span>
  );
}

export function MachinesView() {
  useModel(1_000);
  const [q, setQ] = useState('');
  const list = [...model.machines.values()]
    .filter(
      (m) => q === '' || m.id.includes(q) || Object.values(m.metadata).some((v) => v.includes(q)),
    )
    .sort((a, b) => (a.id < b.id ? -1 : 1));
  return (
    <div>
      <div class="toolbar">
        <input
          type="search"
          placeholder="id or metadata"
          value={q}
          onInput={(e) => setQ((e.target as HTMLInputElement).value)}
        />
        <span class="counts">{list.length} machines</span>
      </div>
      <table class="grid plain">
        <thead>
          <tr>
            <th>machine</th>
            <th>address</th>
            <th>metadata</th>
            <th>CPU reserved / capacity</th>
            <th>memory GiB</th>
            <th>units</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {list.slice(0, ROWS_MAX).map((m) => (
            <tr data-machine={m.id} class={m.lost ? 'lost' : m.drained ? 'drained' : ''}>
              <td>
                <a {...linkProps(`machines/${m.id}`)}>{m.id.slice(0, 12)}</a>
                {m.lost && <span class="pill s-failed">lost</span>}
                {m.drained && <span class="pill s-stopped">drained</span>}
              </td>
              <td>{m.address}</td>
              <td>
                {Object.entries(m.metadata)
                  .map(([k, v]) => `${k}=${v}`)
                  .join(', ')}
              </td>
              <td>
                {cores(m.reservedCpu)} / {cores(m.cpuMillicores)}
              </td>
              <td>
                {gib(m.reservedMemory)} / {gib(m.memoryBytes)}
              </td>
              <td>{m.units.size}</td>
              <td>{!m.lost && <DrainButton id={m.id} drained={m.drained} />}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {list.length > ROWS_MAX && (
        <p class="muted">{list.length - ROWS_MAX} more: search to narrow</p>
      )}
    </div>
  );
}

export function MachineView({ id }: { id: string }) {
  useModel(500);
  const m = model.machines.get(id);
  if (m === undefined) return <p>No machine {id} is known.</p>;
  const units = [...m.units].sort();
  return (
    <div>
      <h2>
        {m.id} {m.lost && <span class="pill s-failed">lost</span>}{' '}
        {m.drained && <span class="pill s-stopped">drained</span>}
      </h2>
      <DrainButton id={m.id} drained={m.drained} />
      <dl class="facts">
        <dt>address</dt>
        <dd>{m.address}</dd>
        <dt>metadata</dt>
        <dd>
          {Object.entries(m.metadata)
            .map(([k, v]) => `${k}=${v}`)
            .join(', ')}
        </dd>
        <dt>CPU</dt>
        <dd>
          {cores(m.reservedCpu)} of {cores(m.cpuMillicores)} cores reserved
        </dd>
        <dt>memory</dt>
        <dd>
          {gib(m.reservedMemory)} of {gib(m.memoryBytes)} GiB reserved
        </dd>
      </dl>
      <h3>Units ({units.length})</h3>
      <ul class="unit-list">
        {units.slice(0, 1000).map((n) => {
          const u = model.units.get(n);
          const s = u !== undefined ? cellState(u, m.id) : 'changing';
          return (
            <li>
              <span class={`pill s-${s}`}>{s}</span> <a {...linkProps(`units/${n}`)}>{n}</a>
            </li>
          );
        })}
      </ul>
    </div>
  );
}
