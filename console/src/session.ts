/**
 * Who the page acts as: the shared model and its live feed, and whether the caller may write
 * (a read-only role's page shows no write controls; the server refuses its writes anyway).
 */
import { useEffect, useState } from 'preact/hooks';
import { call, setCsrfToken } from './api.js';
import { Live } from './live.js';
import { ClusterModel } from './model.js';
import { navigate } from './router.js';

export const model = new ClusterModel();

/**
 * When the page got where: read by the browser tests and the benchmark (bench/console.ts)
 * through `window.flotilla`, in the browser's epoch milliseconds.
 */
export const probe = {
  /** The first full listing is in the model. */
  listedAt: 0,
  /** The map's first frame drawn after that. */
  mapDrawnAt: 0,
  /** Map frames drawn, and when the last one was. */
  frames: 0,
  lastFrameAt: 0,
};

declare global {
  interface Window {
    flotilla?: { model: ClusterModel; probe: typeof probe; navigate: (route: string) => void };
  }
}
window.flotilla = { model, probe, navigate };

/** The browser's clock in epoch milliseconds (what the probe's times are in). */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

/** What `GET /api/v1/session` says of the caller. */
export interface Me {
  readonly identity?: string;
  readonly roles?: readonly string[];
  /** `off`: no auth policy, everyone may do everything. */
  readonly authorization?: 'policy' | 'off';
  /** What the caller's roles grant (docs/operations.md#authorization). */
  readonly grants?: readonly {
    readonly verbs: readonly string[];
    readonly units: readonly string[];
  }[];
  readonly csrfToken?: string;
}

export let me: Me = {};

/** Asks who the page acts as; a 401 means a login is needed. */
export async function loadMe(): Promise<void> {
  me = await call<Me>('GET', '/api/v1/session');
  if (me.csrfToken !== undefined) setCsrfToken(me.csrfToken);
}

/**
 * Whether the caller may use `verb` (`start-stop`, `submit`, `destroy`, `scale`, `drain`) on
 * some unit: controls for it are shown only then. Which units a grant covers is the
 * server's to judge (it answers 403); the page only hides what can never succeed.
 */
export function may(verb: string): boolean {
  if (me.authorization === 'off') return true;
  return (me.grants ?? []).some((g) => g.verbs.includes(verb) || g.verbs.includes('admin'));
}

let live: Live | undefined;
const statusListeners = new Set<() => void>();

export function startLive(): Live {
  live ??= new Live(
    model,
    () => statusListeners.forEach((fn) => fn()),
    () => {
      probe.listedAt = now();
      model.notify();
    },
  );
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
