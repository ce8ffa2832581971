/**
 * Rollouts: the rolling updates of the cluster's templates (asked for when the page opens,
 * then live from the event stream), each with its phase
 * and progress (the batch in flight, failed instances), and rollback for a role that may.
 * A rollout pauses by itself on failure (`--failure-action pause`); there is no pause verb.
 */
import { useEffect, useState } from 'preact/hooks';
import { rollback } from '../actions.js';
import { ApiFailure, call, enc } from '../api.js';
import { isTemplateName } from '../model.js';
import { linkProps } from '../router.js';
import { may, model, useModel } from '../session.js';
import type { RolloutJson, RolloutStatusJson } from '../types.js';

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

/** Templates whose rollout the page asks for when it opens (the first, in name order). */
const ASK_MAX = 50;

/**
 * Rollouts that began before the page opened are in no event it has seen: ask for the
 * rollout of each template (at most {@link ASK_MAX}; a 404 means it has none).
 */
function useKnownRollouts(): void {
  useEffect(() => {
    const templates = [...model.units.keys()].filter(isTemplateName).sort().slice(0, ASK_MAX);
    for (const name of templates) {
      if (model.rollouts.has(name)) continue;
      call<RolloutStatusJson>('GET', `/api/v1/rollouts/${enc(name)}`)
        .then((s) => {
          if (s.rollout !== undefined && !model.rollouts.has(name)) {
            model.rollouts.set(name, s.rollout);
            model.notify();
          }
        })
        .catch(() => undefined);
    }
  }, []);
}

export function RolloutsView() {
  useModel(500);
  useKnownRollouts();
  const list = [...model.rollouts.values()];
  return (
    <div>
      <h2>Rollouts</h2>
      {list.length === 0 && <p class="muted">No rollouts. `flotctl update` starts one.</p>}
      {list.map((r) => (
        <Rollout r={r} />
      ))}
    </div>
  );
}
