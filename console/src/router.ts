/**
 * Client-side routes under /ui/: the path after /ui/ names the view, so a reload or a shared
 * link opens the same page (the server answers every /ui/ path without a file with
 * index.html).
 */
import { useEffect, useState } from 'preact/hooks';

export const BASE = '/ui';

/** The current route: the path below /ui/, without a leading or trailing slash. */
export function currentRoute(): string {
  const p = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) : '';
  return decodeURIComponent(p.replace(/^\/+|\/+$/g, ''));
}

const listeners = new Set<() => void>();
addEventListener('popstate', () => listeners.forEach((fn) => fn()));

/** Goes to `route` (below /ui/) without reloading. */
export function navigate(route: string): void {
  const path = `${BASE}/${route
    .split('/')
    .map((p) => encodeURIComponent(p))
    .join('/')}`;
  if (path !== location.pathname) history.pushState(null, '', path);
  listeners.forEach((fn) => fn());
}

/** Re-renders the caller on every navigation; returns the route. */
export function useRoute(): string {
  const [route, setRoute] = useState(currentRoute());
  useEffect(() => {
    const fn = (): void => setRoute(currentRoute());
    listeners.add(fn);
    return () => void listeners.delete(fn);
  }, []);
  return route;
}

/** An in-app link: a real href (open in a new tab works), navigation without a reload. */
export function linkProps(route: string): { href: string; onClick: (e: MouseEvent) => void } {
  return {
    href: `${BASE}/${route}`,
    onClick: (e: MouseEvent) => {
      if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
      e.preventDefault();
      navigate(route);
    },
  };
}
