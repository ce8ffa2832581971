/** The colour of each state a unit's cell shows, on the map, in its legend and in tests. */
import type { CellState } from '../model.js';

export const CELL_COLOURS: Readonly<Record<CellState, string>> = {
  running: '#2e9d57',
  changing: '#e0a526',
  failed: '#d8413a',
  unhealthy: '#9b4dca',
  stopped: '#9aa3ad',
};
