/**
 * Rollouts: every rolling update the cluster holds (from the page's model, live), its phase
 * and progress (the batch in flight, failed instances), and rollback for a role that may.
 * A rollout pauses by itself on failure (`--failure-action pause`); there is no pause verb.
 */
import { useState } from 'preact/hooks';
import { rollback } from '../actions.js';
import { ApiFailure } from '../api.js';
import { linkProps } from '../router.js';
import { may, model, useModel } from '../session.js';
import type { RolloutJson } from '../types.js';

function Rollout({ r }: { r: RolloutJson }) {
  const [error, setError] = useState('');
  const name = r.unit ?? '';
  const total = r.total ?? 0;
  const failed = r.failed?.length ?? 0;
  const inFlight = r.batch?.length ?? 0;
  const active = r.phase === 'running' || r.phase === 'paused';
  return (
    <div class="rollout" data-rollout={name}>
      <h3>
        <a {...linkProps(`units/${name}`)}>{name}</a>{' '}
        <span class={`pill p-${r.phase ?? ''}`}>{r.phase}</span>
        {r.rollback === true && <span class="muted"> (rolling back)</span>}
      </h3>
      <div class="progress">
        <div style={{ width: `${total > 0 ? (100 * (total - inFlight - failed)) / total : 0}%` }} />
      </div>
      <p>
        {total} instances · {inFlight} in the current batch (parallelism {r.parallelism ?? 1}) ·{' '}
        {failed} failed {failed > 0 && `(${r.failed?.slice(0, 5).join(', ')})`}
      </p>
      {r.message !== undefined && <p class="muted">{r.message}</p>}
      {active && may('submit') && (
        <button
          onClick={() =>
            rollback(name).catch((e: unknown) =>
              setError(e instanceof ApiFailure ? e.message : String(e)),
            )
          }
        >
          Roll back
        </button>
      )}
      {error !== '' && <p class="error">{error}</p>}
    </div>
  );
}

export function RolloutsView() {
  useModel(500);
  const list = [...model.rollouts.values()];
  return (
    <div>
      <h2>Rollouts</h2>
      {list.length === 0 && (
        <p class="muted">No rollouts since the page opened. `flotctl update` starts one.</p>
      )}
      {list.map((r) => (
        <Rollout r={r} />
      ))}
    </div>
  );
}
