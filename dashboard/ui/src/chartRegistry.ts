// A read-only handle on the page's charts at `window.__zaiDashboard`, so the real-browser tests
// and the render benchmark can check what was drawn (each series' data and the canvas pixels
// under it) rather than only that some DOM exists. It holds no data of its own.
import type uPlot from "uplot";

export interface ChartHandle {
  charts: Record<string, uPlot>;
  /** Times each chart finished a draw (performance.now() of the latest draw). */
  drawnAt: Record<string, number>;
  /** Series loads applied to the charts (initial load, range change, reset). */
  loads: number;
}

declare global {
  interface Window {
    __zaiDashboard?: ChartHandle;
  }
}

export function chartHandle(): ChartHandle {
  if (!window.__zaiDashboard) window.__zaiDashboard = { charts: {}, drawnAt: {}, loads: 0 };
  return window.__zaiDashboard;
}

export function registerChart(id: string, plot: uPlot): () => void {
  const handle = chartHandle();
  handle.charts[id] = plot;
  const onDraw = () => {
    handle.drawnAt[id] = performance.now();
  };
  plot.hooks.draw = [...(plot.hooks.draw ?? []), onDraw];
  onDraw();
  return () => {
    if (handle.charts[id] === plot) {
      delete handle.charts[id];
      delete handle.drawnAt[id];
    }
  };
}
