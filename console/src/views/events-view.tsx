/**
 * The event feed, like `flotctl watch`: the cluster's changes as they arrive, newest first,
 * one line each (revision, kind, name, machine, what happened). The page keeps the last
 * thousand; a glob narrows them.
 */
import { useState } from 'preact/hooks';
import { globMatcher } from '../glob.js';
import { model, useModel } from '../session.js';
import type { EventJson } from '../types.js';

function what(e: EventJson): string {
  if (e.type === 'delete') return 'deleted';
  switch (e.kind) {
    case 'unit':
      return `desired ${e.unit?.desiredState ?? ''}${e.global === true ? ' (global)' : ''}`;
    case 'placement':
      return `placed (${e.placement?.desiredState ?? ''})`;
    case 'state': {
      const s = e.state;
      const health = s?.health !== undefined ? ` health ${s.health}` : '';
      return `${s?.activeState ?? ''}/${s?.subState ?? ''}${health}${s?.message !== undefined ? ` ${s.message}` : ''}`;
    }
    case 'machine':
      return 'registered';
    case 'machine-config':
      return e.machineConfig?.drained === true ? 'drained' : 'config set';
    case 'unscheduled':
      return `waiting: ${e.unscheduled?.summary ?? ''}`;
    case 'rollout':
      return `rollout ${e.rollout?.phase ?? ''} ${e.rollout?.message ?? ''}`;
    default:
      return '';
  }
}

/** One event as a line of the feed. */
export function eventLine(e: EventJson): string {
  const machine = (e.machine ?? '').slice(0, 12);
  return `${(e.revision ?? '').padStart(8)}  ${(e.kind ?? '').padEnd(14)} ${(e.name ?? '').padEnd(28)} ${machine.padEnd(12)}  ${what(e)}`;
}

export function EventsView() {
  useModel(250);
  const [glob, setGlob] = useState('');
  const match = globMatcher(glob);
  const lines = model.recent
    .filter((e) => match(e.name ?? ''))
    .slice(-300)
    .reverse()
    .map(eventLine);
  return (
    <div>
      <div class="toolbar">
        <input
          type="search"
          placeholder="unit or machine glob"
          value={glob}
          onInput={(e) => setGlob((e.target as HTMLInputElement).value)}
        />
        <span class="muted">revision {model.revision}; newest first</span>
      </div>
      <pre class="events" data-test="events">
        {lines.join('\n') || 'No changes since the page opened.'}
      </pre>
    </div>
  );
}
