/**
 * The writes the console makes, one function per action, each the API route that serves the
 * matching flotctl verb (docs/http-api.md). Views call these and nothing else writes.
 */
import { call, enc } from './api.js';
import type { PlanJson, RolloutStatusJson } from './types.js';

export interface UnitFile {
  readonly name: string;
  readonly contents: string;
}

/** start (launched), stop (loaded) or unload (inactive) the named units. */
export function setDesired(names: readonly string[], verb: 'start' | 'stop' | 'unload') {
  return call<{ changed?: string[] }>('POST', `/api/v1/actions/${verb}`, { names });
}

export function destroy(names: readonly string[]) {
  return call<{ destroyed?: string[] }>('POST', '/api/v1/actions/destroy', { names });
}

export function submit(
  files: readonly UnitFile[],
  desiredState: '' | 'launched',
  replace: boolean,
) {
  return call<{ created?: string[]; updated?: string[]; unchanged?: string[] }>(
    'POST',
    '/api/v1/units',
    { files, replace, desiredState },
  );
}

export function plan(files: readonly UnitFile[]) {
  return call<PlanJson>('POST', '/api/v1/plan', { files });
}

export function scale(template: string, count: number) {
  return call<unknown>('POST', `/api/v1/units/${enc(template)}/scale`, { count });
}

export function rollback(name: string) {
  return call<RolloutStatusJson>('POST', `/api/v1/rollouts/${enc(name)}/rollback`, {});
}

export function drain(machine: string, on: boolean) {
  return call<unknown>('POST', `/api/v1/machines/${enc(machine)}/${on ? 'drain' : 'undrain'}`, {});
}
