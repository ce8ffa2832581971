/**
 * Who the page acts as: the shared model and its live feed, and whether the caller may write
 * (a read-only role's page shows no write controls; the server refuses its writes anyway).
 */
import { useEffect, useState } from 'preact/hooks';
import { call } from './api.js';
import { Live } from './live.js';
import { ClusterModel } from './model.js';

export const model = new ClusterModel();

/** What the API says of the caller. */
export interface Me {
  readonly subject: string;
  /** The verbs the caller's role grants (docs/operations.md#authorization). */
  readonly verbs: readonly string[];
}

export let me: Me = { subject: '', verbs: [] };

export async function loadMe(): Promise<void> {
  me = await call<Me>('GET', '/api/v1/whoami');
}

/** Whether the caller may use `verb` (`start-stop`, `submit`, `destroy`, `scale`, `drain`). */
export function may(verb: string): boolean {
  return me.verbs.includes(verb) || me.verbs.includes('admin');
}

let live: Live | undefined;
const statusListeners = new Set<() => void>();

export function startLive(): Live {
  live ??= new Live(model, () => statusListeners.forEach((fn) => fn()));
  return live;
}

/** Re-renders the caller when the model changes, at most every `ms` milliseconds. */
export function useModel(ms = 250): number {
  const [version, setVersion] = useState(model.version);
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const off = model.subscribe(() => {
      timer ??= setTimeout(() => {
        timer = undefined;
        setVersion(model.version);
      }, ms);
    });
    return () => {
      off();
      if (timer !== undefined) clearTimeout(timer);
    };
  }, [ms]);
  return version;
}

/** The live feed's status, re-rendering on change. */
export function useLiveStatus(): { status: string; problem: string } {
  const [, set] = useState(0);
  useEffect(() => {
    const fn = (): void => set((n) => n + 1);
    statusListeners.add(fn);
    return () => void statusListeners.delete(fn);
  }, []);
  return { status: live?.status ?? 'loading', problem: live?.problem ?? '' };
}
