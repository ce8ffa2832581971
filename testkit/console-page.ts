/**
 * The web console in a real browser, for the browser tests and bench:console: Debian's
 * chromium (never a downloaded one) driven by playwright-core, and typed access to what the
 * console exposes on `window.flotilla` (its model, its probe of when it listed and drew, its
 * router). Functions passed to `page.evaluate` run in the page: they reach the page's globals
 * through `globalThis`, typed by {@link ConsoleGlobals}.
 */
import { chromium, type Browser, type Page } from 'playwright-core';
import type { ClusterModel } from '../console/src/model.js';
import {
  TILE_HEADER,
  TILE_PAD,
  tileOrigin,
  type MapGroup,
  type MapLayout,
} from '../console/src/map/layout.js';

/** The browser: FLOTILLA_CHROMIUM or Debian's package (`apt-get install chromium`). */
export const CHROMIUM = process.env.FLOTILLA_CHROMIUM ?? '/usr/bin/chromium';

/** What the console puts on `window` (console/src/session.ts). */
export interface ConsoleGlobals {
  flotilla?: {
    readonly model: ClusterModel;
    readonly probe: { listedAt: number; mapDrawnAt: number; frames: number; lastFrameAt: number };
    navigate(route: string): void;
  };
  drawnAt?: Record<string, number>;
  requestAnimationFrame(cb: () => void): number;
  readonly performance: { readonly timeOrigin: number; now(): number };
}

/** Headless chromium; `--no-sandbox` because tests run as root. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
    timeout: 60_000,
  });
}

/** Waits until the map drew its first frame after the full listing; the ms since navigation. */
export async function waitMapDrawn(page: Page, timeoutMs = 120_000): Promise<number> {
  await page.waitForFunction(
    () => ((globalThis as unknown as ConsoleGlobals).flotilla?.probe.mapDrawnAt ?? 0) > 0,
    null,
    { timeout: timeoutMs, polling: 50 },
  );
  return page.evaluate(() => {
    const g = globalThis as unknown as ConsoleGlobals;
    return (g.flotilla?.probe.mapDrawnAt ?? 0) - g.performance.timeOrigin;
  });
}

/** Waits until the console has its first full listing (any view). */
export async function waitListed(page: Page, timeoutMs = 120_000): Promise<void> {
  await page.waitForFunction(
    () => ((globalThis as unknown as ConsoleGlobals).flotilla?.probe.listedAt ?? 0) > 0,
    null,
    { timeout: timeoutMs, polling: 50 },
  );
}

/** Goes to a console route (below /ui/) without reloading the page. */
export async function goRoute(page: Page, route: string): Promise<void> {
  await page.evaluate(
    (r) => (globalThis as unknown as ConsoleGlobals).flotilla?.navigate(r),
    route,
  );
}

/** A unit's state as the page's model shows it ('' when the page does not know it). */
export function pageUnitState(page: Page, unit: string): Promise<string> {
  return page.evaluate((name) => {
    const m = (globalThis as unknown as ConsoleGlobals).flotilla?.model;
    const u = m?.units.get(name);
    if (u === undefined) return '';
    const st = u.state;
    return `${u.desired}/${st?.active ?? ''}/${st?.health ?? ''}`;
  }, unit);
}

/**
 * From now on, records in the page when each state event of a unit is first drawn (the frame
 * after the batch that carried it), in `window.drawnAt`, epoch ms.
 */
export async function recordDrawn(page: Page): Promise<void> {
  await page.evaluate(() => {
    const g = globalThis as unknown as ConsoleGlobals;
    const f = g.flotilla;
    if (f === undefined) throw new Error('the console did not start');
    const seen: Record<string, number> = {};
    g.drawnAt = seen;
    let last = f.model.revision;
    f.model.subscribe(() => {
      const names: string[] = [];
      const recent = f.model.recent;
      for (let i = recent.length - 1; i >= 0; i -= 1) {
        const e = recent[i];
        if (e === undefined || Number(e.revision) <= last) break;
        if (e.kind === 'state' && e.name !== undefined) names.push(e.name);
      }
      last = f.model.revision;
      // The map draws in its own animation frame callback, requested before this one.
      g.requestAnimationFrame(() => {
        const t = g.performance.timeOrigin + g.performance.now();
        for (const n of names) seen[n] ??= t;
      });
    });
  });
}

/** What {@link recordDrawn} recorded. */
export function drawnTimes(page: Page): Promise<Record<string, number>> {
  return page.evaluate(() => (globalThis as unknown as ConsoleGlobals).drawnAt ?? {});
}

/** The page's JS heap in use after a full GC, bytes. */
export async function heapBytes(page: Page): Promise<number> {
  const cdp = await page.context().newCDPSession(page);
  try {
    await cdp.send('HeapProfiler.collectGarbage');
    const { usedSize } = await cdp.send('Runtime.getHeapUsage');
    return usedSize;
  } finally {
    await cdp.detach().catch(() => undefined);
  }
}

/** A map's layout as the page sends it: machine ids and their units in cell order. */
type SentLayout = Omit<MapLayout, 'groups'> & {
  readonly groups: readonly (Omit<MapGroup, 'machines'> & {
    readonly machines: readonly { readonly id: string; readonly units: readonly string[] }[];
  })[];
};

/**
 * The colour (`#rrggbb`) the map's canvas shows now at each unit's cell, by unit name, read
 * from the canvas's pixels (so a test sees what a user sees, not the page's model). Only
 * tiles in view are drawn: tests keep clusters small enough to fit.
 */
export async function mapCells(page: Page): Promise<Record<string, string>> {
  const geo = await page.evaluate(() => {
    const g = globalThis as unknown as {
      devicePixelRatio?: number;
      document: { querySelector(s: string): unknown };
    };
    const box = g.document.querySelector('.map-scroll') as {
      layout?: { groups: { machines: { id: string; units: Set<string> }[] }[] };
      scrollTop: number;
    } | null;
    if (box?.layout === undefined) return undefined;
    const l = box.layout;
    return {
      scrollTop: box.scrollTop,
      dpr: g.devicePixelRatio ?? 1,
      layout: {
        ...l,
        groups: l.groups.map((gr) => ({
          ...gr,
          machines: gr.machines.map((m) => ({ id: m.id, units: [...m.units].sort() })),
        })),
      },
    };
  });
  if (geo === undefined) return {};
  const layout = geo.layout as unknown as SentLayout;
  const { scrollTop, dpr } = geo;
  const points: { unit: string; x: number; y: number }[] = [];
  const { cell, gap, columns } = layout.metrics;
  const step = cell + gap;
  for (const group of layout.groups) {
    group.machines.forEach((m, i) => {
      const [tx, ty] = tileOrigin(layout as unknown as MapLayout, group as unknown as MapGroup, i);
      m.units.forEach((unit, k) => {
        const x = tx + TILE_PAD + (k % columns) * step + cell / 2;
        const y = ty + TILE_PAD + TILE_HEADER + Math.floor(k / columns) * step + cell / 2;
        points.push({ unit, x: Math.floor(x * dpr), y: Math.floor((y - scrollTop) * dpr) });
      });
    });
  }
  return page.evaluate((pts) => {
    type Ctx = {
      getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray };
    };
    const doc = (globalThis as unknown as { document: { querySelector(s: string): unknown } })
      .document;
    const canvas = doc.querySelector('canvas.map-canvas') as { getContext(k: '2d'): Ctx };
    const ctx = canvas.getContext('2d');
    const out: Record<string, string> = {};
    for (const p of pts) {
      const d = ctx.getImageData(p.x, p.y, 1, 1).data;
      const hex = [d[0], d[1], d[2]].map((v) => (v ?? 0).toString(16).padStart(2, '0'));
      out[p.unit] = `#${hex.join('')}`;
    }
    return out;
  }, points);
}
