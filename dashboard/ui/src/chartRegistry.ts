// A read-only handle on the page's charts at `window.__zaiDashboard`, so the real-browser tests
// and the render benchmark can check what was drawn and when (each series' data and the canvas pixels
// under it) rather than only that some DOM exists. It holds no data of its own.
import type uPlot from "uplot";

export interface ChartHandle {
  charts: Record<string, uPlot>;
  /** Times each chart finished a draw (performance.now() of the latest draw). */
  drawnAt: Record<string, number>;
  /** Series loads applied to the charts (initial load, range change, reset). */
  loads: number;
  /** performance.now() when each load's answer was parsed and handed to the charts. */
  loadedAt: number[];
  /** The latest draws (at most DRAW_LOG), with the number of time buckets drawn. */
  draws: { id: string; at: number; buckets: number }[];
}

const DRAW_LOG = 2000;

declare global {
  interface Window {
    __zaiDashboard?: ChartHandle;
  }
}

export function chartHandle(): ChartHandle {
  if (!window.__zaiDashboard) window.__zaiDashboard = { charts: {}, drawnAt: {}, loads: 0, loadedAt: [], draws: [] };
  return window.__zaiDashboard;
}

/** A uPlot draw hook that records each draw of chart `id` (pass it in the options, so the
 * first draw, which may happen inside the constructor, is recorded too). */
export function drawRecorder(id: string): (plot: uPlot) => void {
  return (plot) => {
    const handle = chartHandle();
    const at = performance.now();
    handle.drawnAt[id] = at;
    handle.draws.push({ id, at, buckets: plot.data?.[0]?.length ?? 0 });
    if (handle.draws.length > DRAW_LOG) handle.draws.splice(0, handle.draws.length - DRAW_LOG);
  };
}

export function registerChart(id: string, plot: uPlot): () => void {
  const handle = chartHandle();
  handle.charts[id] = plot;
  return () => {
    if (handle.charts[id] === plot) {
      delete handle.charts[id];
      delete handle.drawnAt[id];
    }
  };
}
