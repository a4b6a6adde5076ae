// One uPlot chart. It is rebuilt when its look changes (theme, time zone, variants) and only
// fed new data otherwise; a null value is a gap in the line (spanGaps is off).
import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { ChartSpec } from "../panels";
import { colorOf, dashOf } from "../panels";
import { formatAxis, formatUnit, type TimeZoneMode } from "../format";
import type { Theme } from "../urlState";
import { drawRecorder, registerChart } from "../chartRegistry";

export interface ChartProps {
  spec: ChartSpec;
  variants: string[];
  data: (number | null)[][];
  version: number;
  theme: Theme;
  tz: TimeZoneMode;
  /** The x range to show [from, to] in unix seconds (the chosen range ending now). */
  window: [number, number];
}

const HEIGHT = 190;

function axisColors(theme: Theme) {
  return theme === "dark" ? { text: "#c9d1d9", grid: "#30363d" } : { text: "#24292f", grid: "#e1e4e8" };
}

export function chartOptions(spec: ChartSpec, variants: string[], theme: Theme, tz: TimeZoneMode, width: number): uPlot.Options {
  const colors = axisColors(theme);
  const series: uPlot.Series[] = [{}];
  variants.forEach((variant, index) => {
    for (const s of spec.series) {
      const unit = s.unit ?? spec.unit;
      series.push({
        label: `${variant} ${s.label}`,
        stroke: colorOf(s.color, theme),
        width: index === 0 ? 2 : 1.75,
        dash: dashOf(index),
        spanGaps: false,
        points: { show: false },
        value: (_u, v) => formatUnit(v, unit),
      });
    }
  });
  return {
    width,
    height: HEIGHT,
    series,
    tzDate: tz === "utc" ? (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC") : undefined,
    scales: {
      x: { time: true },
      y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] },
    },
    axes: [
      // Time ticks at least 80 px apart, so a label that carries the date never overlaps the next.
      { stroke: colors.text, space: 80, grid: { stroke: colors.grid, width: 1 }, ticks: { stroke: colors.grid } },
      {
        stroke: colors.text,
        grid: { stroke: colors.grid, width: 1 },
        ticks: { stroke: colors.grid },
        label: spec.axis,
        labelSize: 18,
        size: 58,
        values: (_u, ticks) => ticks.map((v) => formatAxis(v, spec.unit)),
      },
    ],
    legend: { live: true },
    cursor: { drag: { x: false, y: false } },
  };
}

export function Chart({ spec, variants, data, version, theme, tz, window: xWindow }: ChartProps) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const latest = useRef({ data, xWindow });
  latest.current = { data, xWindow };

  useEffect(() => {
    const element = host.current;
    if (!element) return;
    const width = Math.max(320, element.clientWidth || 600);
    const options = chartOptions(spec, variants, theme, tz, width);
    options.hooks = { draw: [drawRecorder(spec.id)] };
    const u = new uPlot(options, latest.current.data as uPlot.AlignedData, element);
    u.setScale("x", { min: latest.current.xWindow[0], max: latest.current.xWindow[1] });
    plot.current = u;
    const unregister = registerChart(spec.id, u);
    const observer = new ResizeObserver(() => {
      const w = Math.max(320, element.clientWidth);
      if (w !== u.width) u.setSize({ width: w, height: HEIGHT });
    });
    observer.observe(element);
    return () => {
      observer.disconnect();
      unregister();
      u.destroy();
      plot.current = null;
    };
  }, [spec, variants, theme, tz]);

  useEffect(() => {
    const u = plot.current;
    if (!u) return;
    u.batch(() => {
      u.setData(data as uPlot.AlignedData, false);
      u.setScale("x", { min: xWindow[0], max: xWindow[1] });
    });
  }, [data, version, xWindow[0], xWindow[1]]); // the window by value: a new array each render

  return <div className="chart" data-chart={spec.id} ref={host} />;
}
