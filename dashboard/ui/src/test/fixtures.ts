// Answers shaped exactly as dashboard/API.md documents them, for the unit tests.
import { FIGURE_KEYS, type DashboardConfig, type DashboardStatus, type Figures, type SeriesResponse, type TickEvent, type VerdictResponse } from "../api/types";

export const config: DashboardConfig = {
  version: "0.1.0",
  variants: ["production", "canary"],
  source: "scrape",
  scrape_interval_s: 5,
  verdict_window_s: 600,
  ranges: ["5m", "15m", "1h", "6h", "24h", "7d"],
  retention: { raw_s: 86400, rollup_s: 604800, rollup_step_s: 60 },
  thresholds: {
    error_ratio_factor: 2.0,
    error_ratio_margin: 0.01,
    latency_p95_factor: 1.5,
    latency_p95_margin_s: 0.1,
    min_requests_per_s: 0.05,
  },
};

export function figures(overrides: Figures = {}): Figures {
  const out: Figures = {};
  for (const key of FIGURE_KEYS) out[key] = null;
  return { ...out, requests_per_s: 3.2, requests_2xx_per_s: 3.2, error_ratio: 0, latency_p95_s: 0.25, pods_up: 2, ...overrides };
}

/** A raw series: `t` from `from` every `step` s, `requests_per_s` given per bucket (null = gap). */
export function series(from: number, step: number, production: (number | null)[], canary: (number | null)[]): SeriesResponse {
  const t = production.map((_, i) => from + i * step);
  return {
    from,
    to: from + t.length * step,
    step_s: step,
    resolution: "raw",
    t,
    variants: {
      production: { requests_per_s: production, error_ratio: production.map((v) => (v === null ? null : 0)) },
      canary: { requests_per_s: canary },
    },
  };
}

export function tick(t: number, production: number | null, canary: number | null, states: TickEvent["states"] = { production: "up", canary: "up" }): TickEvent {
  return {
    t,
    variants: { production: figures({ requests_per_s: production }), canary: figures({ requests_per_s: canary }) },
    states,
  };
}

export const status: DashboardStatus = {
  now: 1765000000.0,
  storage: { state: "ok", path_ok: true, reset: null },
  variants: {
    production: {
      state: "up",
      pods_up: 2,
      pods_total: 2,
      last_scrape: 1764999998.0,
      last_success: 1764999998.0,
      error: null,
      build: { version: "0.1.0", commit: "abc123" },
      last_60s: figures({ requests_per_s: 3.2 }),
      quota: { five_hour_used_ratio: 0.4, five_hour_reset: 1765003600.0, weekly_used_ratio: 0.1, weekly_reset: 1765400000.0 },
    },
    canary: {
      state: "up",
      pods_up: 1,
      pods_total: 1,
      last_scrape: 1764999998.0,
      last_success: 1764999998.0,
      error: null,
      build: { version: "0.1.0", commit: "abc123" },
      last_60s: figures({ requests_per_s: 1.1 }),
      quota: null,
    },
  },
};

export const verdict: VerdictResponse = {
  verdict: "rollback",
  evaluated_at: 1765000000.0,
  window_s: 600,
  reasons: [
    { check: "traffic", status: "pass", message: "both variants above 0.05 req/s" },
    { check: "production_present", status: "pass", message: "production is up" },
    {
      check: "error_ratio",
      status: "fail",
      message: "canary 5xx 20 % vs production 0.3 % (limit 2 × (0.3 % + 1 %) = 2.6 %)",
      production: 0.003,
      canary: 0.2,
      threshold: 0.026,
    },
    { check: "latency_p95", status: "pass", message: "canary p95 0.31 s vs production 0.30 s (limit 0.6 s)" },
  ],
  figures: { production: { requests: 600 }, canary: { requests: 500 } },
};
