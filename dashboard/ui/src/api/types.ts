// The shapes of dashboard/API.md. Keys are the contract's: never rename one here.
// Every time is a unix time in seconds, UTC; a figure that cannot be computed is null.

export type Num = number | null;

export const FIGURE_KEYS = [
  "requests_per_s",
  "requests_2xx_per_s",
  "requests_3xx_per_s",
  "requests_4xx_per_s",
  "requests_5xx_per_s",
  "error_ratio",
  "latency_p50_s",
  "latency_p95_s",
  "latency_p99_s",
  "ttfb_p50_s",
  "ttfb_p95_s",
  "input_tokens_per_s",
  "output_tokens_per_s",
  "estimated_tokens_per_s",
  "cost_usd_per_h",
  "cost_usd",
  "in_flight",
  "max_workers",
  "utilization_ratio",
  "rate_limit_per_s",
  "rate_limit_wait_p95_s",
  "rate_limit_rejections_per_s",
  "upstream_errors_per_s",
  "retries_per_s",
  "quota_five_hour_used_ratio",
  "quota_weekly_used_ratio",
  "pods_up",
] as const;

export type FigureKey = (typeof FIGURE_KEYS)[number];
export type Figures = Partial<Record<FigureKey, Num>>;
export type Columns = Partial<Record<FigureKey, Num[]>>;

export type VariantState = "up" | "degraded" | "stale" | "down";

export interface Thresholds {
  error_ratio_factor: number;
  error_ratio_margin: number;
  latency_p95_factor: number;
  latency_p95_margin_s: number;
  min_requests_per_s: number;
}

export interface DashboardConfig {
  version: string;
  variants: string[];
  source: string;
  scrape_interval_s: number;
  verdict_window_s: number;
  ranges: string[];
  retention: { raw_s: number; rollup_s: number; rollup_step_s: number };
  thresholds: Thresholds;
}

export interface QuotaStatus {
  five_hour_used_ratio: Num;
  five_hour_reset: Num;
  weekly_used_ratio: Num;
  weekly_reset: Num;
}

export interface VariantStatus {
  state: VariantState;
  pods_up: number;
  pods_total: number;
  last_scrape: Num;
  last_success: Num;
  error: string | null;
  build: { version?: string; commit?: string } | null;
  last_60s: Figures | null;
  quota?: QuotaStatus | null;
}

export interface StorageReset {
  at: number;
  reason: string;
  moved_to: string;
}

export interface DashboardStatus {
  now: number;
  storage: { state: "ok" | "degraded"; path_ok: boolean; reset: StorageReset | null };
  variants: Record<string, VariantStatus>;
}

export interface SeriesResponse {
  from: number;
  to: number;
  step_s: number;
  resolution: string;
  t: number[];
  variants: Record<string, Columns>;
}

export type BreakdownBy = "model" | "status" | "error_type" | "zai_class" | "retry_reason";

export interface BreakdownRow {
  variant: string;
  key: string;
  requests?: number;
  count?: number;
  input_tokens?: number;
  output_tokens?: number;
  estimated_tokens?: number;
  cost_usd?: number;
}

export interface BreakdownResponse {
  by: BreakdownBy;
  from: number;
  to: number;
  rows: BreakdownRow[];
}

export type Verdict = "promote" | "hold" | "rollback";

export interface VerdictReason {
  check: string;
  status: "pass" | "fail" | "insufficient";
  message: string;
  production?: Num;
  canary?: Num;
  threshold?: Num;
}

export interface VerdictResponse {
  verdict: Verdict;
  evaluated_at: number;
  window_s: number;
  reasons: VerdictReason[];
  figures?: Record<string, Record<string, Num>>;
}

export interface TickEvent {
  t: number;
  variants: Record<string, Figures>;
  states: Record<string, VariantState>;
}

export interface HelloEvent {
  variants: string[];
  scrape_interval_s: number;
  last_id: string | null;
}
