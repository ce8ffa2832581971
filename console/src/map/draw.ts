/**
 * Draws the cluster map's visible tiles on a canvas: each machine's name, its reserved CPU and
 * memory as two bars, its units as cells coloured by state, and drained or lost machines
 * marked. Only tiles in view are drawn, so a frame costs what the window shows (a few hundred
 * tiles), whatever the cluster's size.
 */
import { cellState, type ClusterModel, type MachineRow } from '../model.js';
import { CELL_COLOURS } from './colours.js';
import { TILE_HEADER, TILE_PAD, tileOrigin, visibleTiles, type MapLayout } from './layout.js';

/** A machine's units in the order their cells are drawn (name order). */
export function cellOrder(m: MachineRow): string[] {
  return [...m.units].sort();
}

function bar(ctx: CanvasRenderingContext2D, x: number, y: number, w: number, share: number) {
  ctx.fillStyle = '#e3e7ec';
  ctx.fillRect(x, y, w, 3);
  if (share > 0) {
    ctx.fillStyle = share > 0.9 ? '#d8413a' : '#4a78c2';
    ctx.fillRect(x, y, Math.max(1, Math.round(w * Math.min(1, share))), 3);
  }
}

function drawTile(
  ctx: CanvasRenderingContext2D,
  model: ClusterModel,
  layout: MapLayout,
  m: MachineRow,
  x: number,
  y: number,
): void {
  const { tileW, tileH, metrics } = layout;
  ctx.fillStyle = m.lost ? '#fbeaea' : m.drained ? '#eceff2' : '#ffffff';
  ctx.fillRect(x, y, tileW, tileH);
  ctx.strokeStyle = m.lost ? '#d8413a' : m.drained ? '#8a96a3' : '#c9d1da';
  ctx.setLineDash(m.lost || m.drained ? [3, 2] : []);
  ctx.strokeRect(x + 0.5, y + 0.5, tileW - 1, tileH - 1);
  ctx.setLineDash([]);
  ctx.fillStyle = m.lost ? '#a8322c' : '#27313b';
  const tag = m.lost ? ' LOST' : m.drained ? ' drained' : '';
  ctx.fillText(`${m.id.slice(0, 12)}${tag}`, x + TILE_PAD, y + TILE_PAD + 8, tileW - 2 * TILE_PAD);
  const barW = (tileW - 2 * TILE_PAD - 2) / 2;
  const cpu = m.cpuMillicores > 0 ? m.reservedCpu / m.cpuMillicores : 0;
  const mem = m.memoryBytes > 0 ? m.reservedMemory / m.memoryBytes : 0;
  bar(ctx, x + TILE_PAD, y + TILE_PAD + 11, barW, cpu);
  bar(ctx, x + TILE_PAD + barW + 2, y + TILE_PAD + 11, barW, mem);
  const step = metrics.cell + metrics.gap;
  const shown = metrics.columns * layout.rows;
  const names = m.units.size <= shown ? cellOrder(m) : cellOrder(m).slice(0, shown - 1);
  let i = 0;
  for (const name of names) {
    const u = model.units.get(name);
    if (u === undefined) continue;
    ctx.fillStyle = CELL_COLOURS[cellState(u, m.id)];
    const cx = x + TILE_PAD + (i % metrics.columns) * step;
    const cy = y + TILE_PAD + TILE_HEADER + Math.floor(i / metrics.columns) * step;
    ctx.fillRect(cx, cy, metrics.cell, metrics.cell);
    i += 1;
  }
  if (m.units.size > shown) {
    const cx = x + TILE_PAD + (i % metrics.columns) * step;
    const cy = y + TILE_PAD + TILE_HEADER + Math.floor(i / metrics.columns) * step;
    ctx.fillStyle = '#27313b';
    ctx.fillText('+', cx, cy + metrics.cell);
  }
}

/**
 * Draws the part of the map between `top` and `top + height` (CSS pixels) onto `ctx`, whose
 * canvas is that window. `only`, when given, limits the frame to those machines' tiles (the
 * ones that changed); otherwise the whole window is cleared and drawn.
 */
export function drawMap(
  ctx: CanvasRenderingContext2D,
  model: ClusterModel,
  layout: MapLayout,
  top: number,
  width: number,
  height: number,
  only?: ReadonlySet<string>,
): number {
  ctx.save();
  ctx.translate(0, -top);
  ctx.font = '9px system-ui, sans-serif';
  if (only === undefined) {
    ctx.fillStyle = '#f5f7f9';
    ctx.fillRect(0, top, width, height);
  }
  let drawn = 0;
  for (const { group, first, last } of visibleTiles(layout, top, top + height)) {
    if (only === undefined && group.y + 16 >= top - 20) {
      ctx.fillStyle = '#27313b';
      ctx.font = 'bold 12px system-ui, sans-serif';
      ctx.fillText(`${group.label}  (${group.machines.length} machines)`, 4, group.y + 15);
      ctx.font = '9px system-ui, sans-serif';
    }
    for (let i = first; i <= last; i += 1) {
      const m = group.machines[i] as MachineRow;
      if (only !== undefined && !only.has(m.id)) continue;
      const [x, y] = tileOrigin(layout, group, i);
      drawTile(ctx, model, layout, m, x, y);
      drawn += 1;
    }
  }
  ctx.restore();
  return drawn;
}
