/**
 * The cluster map: every machine a tile, grouped by a metadata key (zone by default), its
 * units as cells coloured by state, drawn on one canvas the size of the window. Scrolling
 * moves a tall empty spacer and the canvas draws the tiles in view; a batch of events redraws
 * only the tiles it touched (on the next animation frame), and the layout is rebuilt only
 * when machines come, go or change metadata. Pending units wait in a tray beside it, each
 * with the planner's reason.
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { CELL_COLOURS } from '../map/colours.js';
import { drawMap, cellOrder } from '../map/draw.js';
import { hitTest, layoutMap, type MapLayout } from '../map/layout.js';
import { linkProps, navigate } from '../router.js';
import { model, now, probe, useModel } from '../session.js';

/** Pending units the tray lists at most (the rest are counted). */
const TRAY_MAX = 200;

function metadataKeys(): string[] {
  const keys = new Set<string>(['zone']);
  let n = 0;
  for (const m of model.machines.values()) {
    for (const k of Object.keys(m.metadata)) keys.add(k);
    if ((n += 1) > 500) break;
  }
  return [...keys].sort();
}

export function MapView() {
  useModel(500);
  const [groupKey, setGroupKey] = useState(
    () => new URLSearchParams(location.search).get('group') ?? 'zone',
  );
  const scroller = useRef<HTMLDivElement>(null);
  const canvas = useRef<HTMLCanvasElement>(null);
  const [hover, setHover] = useState('');

  useEffect(() => {
    const box = scroller.current;
    const cv = canvas.current;
    if (box === null || cv === null) return;
    const ctx = cv.getContext('2d', { alpha: false });
    if (ctx === null) return;
    let layout: MapLayout | undefined;
    let width = 0;
    let height = 0;
    let full = true;
    let frame = 0;
    const spacer = box.firstElementChild as HTMLDivElement;

    const draw = (): void => {
      frame = 0;
      const w = box.clientWidth;
      const h = box.clientHeight;
      if (w !== width || h !== height) {
        const dpr = window.devicePixelRatio || 1;
        cv.width = Math.floor(w * dpr);
        cv.height = Math.floor(h * dpr);
        cv.style.width = `${w}px`;
        cv.style.height = `${h}px`;
        ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
        if (w !== width) model.layoutDirty = true;
        width = w;
        height = h;
        full = true;
      }
      if (model.layoutDirty || layout === undefined) {
        layout = layoutMap(model.machines.values(), groupKey, w);
        model.layoutDirty = false;
        spacer.style.height = `${layout.height}px`;
        full = true;
      }
      const dirty = model.takeDirty();
      drawMap(ctx, model, layout, box.scrollTop, w, h, full ? undefined : dirty);
      full = false;
      probe.frames += 1;
      probe.lastFrameAt = now();
      if (probe.mapDrawnAt === 0 && probe.listedAt > 0) probe.mapDrawnAt = probe.lastFrameAt;
      (box as HTMLElement & { layout?: MapLayout }).layout = layout;
    };
    const schedule = (all: boolean): void => {
      if (all) full = true;
      if (frame === 0) frame = requestAnimationFrame(draw);
    };
    model.layoutDirty = true;
    schedule(true);
    const off = model.subscribe(() => schedule(false));
    const onScroll = (): void => schedule(true);
    box.addEventListener('scroll', onScroll, { passive: true });
    const ro = new ResizeObserver(() => schedule(true));
    ro.observe(box);
    return () => {
      off();
      box.removeEventListener('scroll', onScroll);
      ro.disconnect();
      if (frame !== 0) cancelAnimationFrame(frame);
    };
  }, [groupKey]);

  const at = (e: MouseEvent) => {
    const box = scroller.current as (HTMLDivElement & { layout?: MapLayout }) | null;
    if (box?.layout === undefined) return undefined;
    const r = box.getBoundingClientRect();
    return hitTest(box.layout, e.clientX - r.left, e.clientY - r.top + box.scrollTop);
  };
  const onMove = (e: MouseEvent) => {
    const hit = at(e);
    if (hit === undefined) return setHover('');
    const unit = hit.cell >= 0 ? cellOrder(hit.machine)[hit.cell] : undefined;
    setHover(unit !== undefined ? `${unit} on ${hit.machine.id}` : hit.machine.id);
  };
  const onClick = (e: MouseEvent) => {
    const hit = at(e);
    if (hit === undefined) return;
    const unit = hit.cell >= 0 ? cellOrder(hit.machine)[hit.cell] : undefined;
    navigate(unit !== undefined ? `units/${unit}` : `machines/${hit.machine.id}`);
  };
  const keys = useMemo(metadataKeys, [model.machines.size]);
  const pending = [...model.pending.values()];

  return (
    <div class="map-page">
      <div class="toolbar">
        <label>
          group by{' '}
          <select
            value={groupKey}
            onChange={(e) => setGroupKey((e.target as HTMLSelectElement).value)}
            data-test="group-key"
          >
            {keys.map((k) => (
              <option value={k}>{k}</option>
            ))}
          </select>
        </label>
        <span class="counts" data-test="map-counts">
          {model.machines.size} machines · {model.units.size - model.templates} units ·{' '}
          {model.pending.size} pending
        </span>
        <span class="legend">
          {Object.entries(CELL_COLOURS).map(([k, c]) => (
            <span>
              <i style={{ background: c }} /> {k}
            </span>
          ))}
        </span>
        <span class="hover">{hover}</span>
      </div>
      <div class="map-body">
        <div class="map-area">
          <div class="map-scroll" ref={scroller} onMouseMove={onMove} onClick={onClick}>
            <div class="map-spacer" />
          </div>
          <canvas ref={canvas} class="map-canvas" data-test="map" />
        </div>
        <aside class="tray" data-test="pending-tray">
          <h3>Pending ({model.pending.size})</h3>
          {pending.length === 0 && <p class="muted">Every wanted unit is placed.</p>}
          {pending.slice(0, TRAY_MAX).map((p) => (
            <div class="tray-item">
              <a {...linkProps(`units/${p.name}`)}>{p.name}</a>
              {p.waiting > 0 && <span class="muted"> ({p.waiting} waiting)</span>}
              <div class="reason">{p.summary}</div>
            </div>
          ))}
          {pending.length > TRAY_MAX && (
            <p class="muted">and {pending.length - TRAY_MAX} more (see Units, state pending)</p>
          )}
        </aside>
      </div>
    </div>
  );
}
