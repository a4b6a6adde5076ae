// The charts, in page order: which figures each draws, in which unit and colour. Every variant
// gets every series of a chart; production is drawn solid and the other variants dashed.
import type { FigureKey } from "./api/types";
import type { Unit } from "./format";
import type { Theme } from "./urlState";

export type ColorName = "green" | "teal" | "orange" | "red" | "blue" | "purple" | "magenta" | "gray" | "brown";

export interface SeriesSpec {
  key: FigureKey;
  label: string;
  color: ColorName;
  /** The unit of this series when it differs from the chart's. */
  unit?: Unit;
}

export interface ChartSpec {
  id: string;
  title: string;
  unit: Unit;
  /** The y axis title: the unit, spelled out. */
  axis: string;
  series: SeriesSpec[];
  note?: string;
}

export const CHARTS: ChartSpec[] = [
  {
    id: "requests",
    title: "Request rate by status class",
    unit: "req/s",
    axis: "requests / s",
    series: [
      { key: "requests_2xx_per_s", label: "2xx", color: "green" },
      { key: "requests_3xx_per_s", label: "3xx", color: "teal" },
      { key: "requests_4xx_per_s", label: "4xx", color: "orange" },
      { key: "requests_5xx_per_s", label: "5xx", color: "red" },
    ],
  },
  {
    id: "error_ratio",
    title: "Error ratio (5xx / all requests)",
    unit: "ratio",
    axis: "% of requests",
    series: [{ key: "error_ratio", label: "5xx ratio", color: "red" }],
  },
  {
    id: "latency",
    title: "Latency p50 / p95 / p99",
    unit: "seconds",
    axis: "seconds",
    series: [
      { key: "latency_p50_s", label: "p50", color: "blue" },
      { key: "latency_p95_s", label: "p95", color: "purple" },
      { key: "latency_p99_s", label: "p99", color: "magenta" },
    ],
  },
  {
    id: "ttfb",
    title: "Time to first byte p50 / p95",
    unit: "seconds",
    axis: "seconds",
    series: [
      { key: "ttfb_p50_s", label: "TTFB p50", color: "teal" },
      { key: "ttfb_p95_s", label: "TTFB p95", color: "brown" },
    ],
  },
  {
    id: "tokens",
    title: "Tokens by direction",
    unit: "tok/s",
    axis: "tokens / s",
    series: [
      { key: "input_tokens_per_s", label: "input", color: "blue" },
      { key: "output_tokens_per_s", label: "output", color: "green" },
      { key: "estimated_tokens_per_s", label: "≈ estimated (part of input + output)", color: "gray" },
    ],
    note:
      "Estimated tokens were counted by the proxy (tiktoken) because the upstream reported no usage; " +
      "they are included in input and output and drawn separately so they can be told apart.",
  },
  {
    id: "concurrency",
    title: "Concurrency against max workers",
    unit: "requests",
    axis: "requests in flight",
    series: [
      { key: "in_flight", label: "in flight", color: "blue" },
      { key: "max_workers", label: "max workers", color: "gray" },
    ],
  },
  {
    id: "cost",
    title: "Estimated cost",
    unit: "usd/h",
    axis: "USD / hour",
    series: [{ key: "cost_usd_per_h", label: "cost", color: "orange" }],
  },
  {
    id: "rate_limiter",
    title: "Rate limiter: admission rate and rejections",
    unit: "req/s",
    axis: "requests / s",
    series: [
      { key: "rate_limit_per_s", label: "admission rate", color: "blue" },
      { key: "rate_limit_rejections_per_s", label: "rejected", color: "red" },
    ],
  },
  {
    id: "rate_limit_wait",
    title: "Rate limiter: queue wait p95",
    unit: "seconds",
    axis: "seconds",
    series: [{ key: "rate_limit_wait_p95_s", label: "wait p95", color: "purple" }],
  },
  {
    id: "quota",
    title: "Z.AI quota used",
    unit: "ratio",
    axis: "% of quota",
    series: [
      { key: "quota_five_hour_used_ratio", label: "5-hour window", color: "orange" },
      { key: "quota_weekly_used_ratio", label: "weekly window", color: "brown" },
    ],
  },
  {
    id: "errors",
    title: "Upstream errors and retries",
    unit: "errors/s",
    axis: "events / s",
    series: [
      { key: "upstream_errors_per_s", label: "upstream errors", color: "red" },
      { key: "retries_per_s", label: "retries", color: "orange", unit: "retries/s" },
    ],
  },
];

const PALETTE: Record<Theme, Record<ColorName, string>> = {
  light: {
    green: "#1a7f37",
    teal: "#0f7b8a",
    orange: "#c2570c",
    red: "#cf222e",
    blue: "#0969da",
    purple: "#8250df",
    magenta: "#bf3989",
    gray: "#6e7781",
    brown: "#8a5a2b",
  },
  dark: {
    green: "#3fb950",
    teal: "#39c5cf",
    orange: "#f0883e",
    red: "#f85149",
    blue: "#58a6ff",
    purple: "#bc8cff",
    magenta: "#f778ba",
    gray: "#8b949e",
    brown: "#d29a62",
  },
};

export function colorOf(name: ColorName, theme: Theme): string {
  return PALETTE[theme][name];
}

/** Production (the first variant) solid; the others dashed, each in its own pattern. */
export function dashOf(variantIndex: number): number[] | undefined {
  if (variantIndex === 0) return undefined;
  return variantIndex === 1 ? [7, 4] : [2, 3];
}
