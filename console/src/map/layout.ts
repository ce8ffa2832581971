/**
 * Where the cluster map puts each machine: tiles in a grid, one section per value of the
 * grouping metadata key (zone by default), sections in name order, machines in id order. The
 * grid is regular within a section, so finding what is under the pointer or which tiles are
 * in view is arithmetic over the sections, never a walk over every tile. DOM-free.
 */
import type { MachineRow } from '../model.js';

/** Sizes in CSS pixels. */
export interface TileMetrics {
  /** A unit's cell, and the gap after it. */
  readonly cell: number;
  readonly gap: number;
  /** Cells per row of a tile. */
  readonly columns: number;
  /** Rows of cells a tile shows at most; more units are counted, not drawn. */
  readonly maxRows: number;
}

export const DEFAULT_METRICS: TileMetrics = { cell: 7, gap: 1, columns: 12, maxRows: 8 };

/** Tiles as large as the cluster allows: big cells for a few machines, small for thousands. */
export function metricsFor(machines: number): TileMetrics {
  if (machines <= 64) return { cell: 16, gap: 2, columns: 10, maxRows: 6 };
  if (machines <= 600) return { cell: 10, gap: 2, columns: 10, maxRows: 8 };
  return DEFAULT_METRICS;
}
/** A tile's header: its name and the CPU and memory bars. */
export const TILE_HEADER = 18;
export const TILE_PAD = 3;
export const TILE_MARGIN = 4;
export const GROUP_HEADER = 22;

export interface MapGroup {
  readonly label: string;
  /** Top of the section's header. */
  readonly y: number;
  /** Top of its first row of tiles. */
  readonly tilesY: number;
  readonly machines: readonly MachineRow[];
  readonly perRow: number;
  readonly height: number;
}

export interface MapLayout {
  readonly groups: readonly MapGroup[];
  readonly tileW: number;
  readonly tileH: number;
  readonly rows: number;
  readonly height: number;
  readonly metrics: TileMetrics;
}

/** Builds the layout for `width` pixels. O(machines log machines): run when machines change. */
export function layoutMap(
  machines: Iterable<MachineRow>,
  groupKey: string,
  width: number,
  metrics?: TileMetrics,
): MapLayout {
  const byGroup = new Map<string, MachineRow[]>();
  let most = 0;
  let count = 0;
  for (const m of machines) {
    count += 1;
    const label = m.metadata[groupKey] ?? `(no ${groupKey})`;
    let list = byGroup.get(label);
    if (list === undefined) byGroup.set(label, (list = []));
    list.push(m);
    if (m.units.size > most) most = m.units.size;
  }
  metrics ??= metricsFor(count);
  const step = metrics.cell + metrics.gap;
  const rows = Math.max(1, Math.min(metrics.maxRows, Math.ceil(most / metrics.columns)));
  const tileW = metrics.columns * step - metrics.gap + 2 * TILE_PAD;
  const tileH = TILE_HEADER + rows * step - metrics.gap + 2 * TILE_PAD;
  const perRow = Math.max(1, Math.floor((width - TILE_MARGIN) / (tileW + TILE_MARGIN)));
  const groups: MapGroup[] = [];
  let y = 0;
  for (const label of [...byGroup.keys()].sort()) {
    const list = (byGroup.get(label) as MachineRow[]).sort((a, b) =>
      a.id < b.id ? -1 : a.id > b.id ? 1 : 0,
    );
    const lines = Math.ceil(list.length / perRow);
    const height = GROUP_HEADER + lines * (tileH + TILE_MARGIN);
    groups.push({ label, y, tilesY: y + GROUP_HEADER, machines: list, perRow, height });
    y += height;
  }
  return { groups, tileW, tileH, rows, height: y, metrics };
}

/** Where a machine's tile is: its index in its group gives the grid cell. */
export function tileOrigin(layout: MapLayout, g: MapGroup, index: number): [number, number] {
  const col = index % g.perRow;
  const line = Math.floor(index / g.perRow);
  return [
    TILE_MARGIN + col * (layout.tileW + TILE_MARGIN),
    g.tilesY + line * (layout.tileH + TILE_MARGIN),
  ];
}

/** What is at (x, y): a machine, and the index of the unit cell under it (-1 for none). */
export function hitTest(
  layout: MapLayout,
  x: number,
  y: number,
): { machine: MachineRow; cell: number } | undefined {
  let lo = 0;
  let hi = layout.groups.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((layout.groups[mid] as MapGroup).y <= y) lo = mid;
    else hi = mid - 1;
  }
  const g = layout.groups[lo];
  if (g === undefined || y < g.tilesY) return undefined;
  const col = Math.floor((x - TILE_MARGIN) / (layout.tileW + TILE_MARGIN));
  const line = Math.floor((y - g.tilesY) / (layout.tileH + TILE_MARGIN));
  if (col < 0 || col >= g.perRow) return undefined;
  const machine = g.machines[line * g.perRow + col];
  if (machine === undefined) return undefined;
  const [tx, ty] = tileOrigin(layout, g, line * g.perRow + col);
  if (x > tx + layout.tileW || y > ty + layout.tileH) return undefined;
  const step = layout.metrics.cell + layout.metrics.gap;
  const cx = Math.floor((x - tx - TILE_PAD) / step);
  const cy = Math.floor((y - ty - TILE_PAD - TILE_HEADER) / step);
  const inCells = cx >= 0 && cx < layout.metrics.columns && cy >= 0 && cy < layout.rows;
  return { machine, cell: inCells ? cy * layout.metrics.columns + cx : -1 };
}

/** The groups (and line range within each) that intersect [top, bottom). */
export function visibleTiles(
  layout: MapLayout,
  top: number,
  bottom: number,
): { group: MapGroup; first: number; last: number }[] {
  const out: { group: MapGroup; first: number; last: number }[] = [];
  const lineH = layout.tileH + TILE_MARGIN;
  for (const g of layout.groups) {
    if (g.y + g.height < top) continue;
    if (g.y > bottom) break;
    const firstLine = Math.max(0, Math.floor((top - g.tilesY) / lineH));
    const lastLine = Math.floor((bottom - g.tilesY) / lineH);
    const first = firstLine * g.perRow;
    const last = Math.min(g.machines.length - 1, (lastLine + 1) * g.perRow - 1);
    if (last >= first) out.push({ group: g, first, last });
  }
  return out;
}
