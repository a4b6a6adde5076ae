// The view's state lives in the URL query (`?range=6h&tz=utc&theme=dark&step=5`), so a link shows the
// same view to whoever opens it. Defaults are left out of the URL; unknown values fall back.
import type { TimeZoneMode } from "./format";

export const RANGES = ["5m", "15m", "1h", "6h", "24h", "7d"] as const;
export const DEFAULT_RANGE = "1h";

export type Theme = "light" | "dark";

export interface ViewState {
  range: string;
  tz: TimeZoneMode;
  theme: Theme | null; // null: follow the system's preference
  /** A step in seconds asked of /api/series (e.g. 5 for full resolution over 24h); null: the service's default. */
  step: number | null;
}

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** "15m" → 900; null for anything that is not a number and one unit letter. */
export function rangeSeconds(range: string): number | null {
  const match = /^(\d+)([smhd])$/.exec(range);
  return match ? Number(match[1]) * UNIT_SECONDS[match[2]] : null;
}

export function parseViewState(search: string, allowedRanges: readonly string[] = RANGES): ViewState {
  const query = new URLSearchParams(search);
  const range = query.get("range");
  const tz = query.get("tz");
  const theme = query.get("theme");
  const step = query.get("step");
  return {
    range: range !== null && allowedRanges.includes(range) ? range : DEFAULT_RANGE,
    tz: tz === "utc" ? "utc" : "local",
    theme: theme === "dark" || theme === "light" ? theme : null,
    step: step !== null && /^[1-9]\d{0,5}$/.test(step) ? Number(step) : null,
  };
}

/** The query string for a state (other parameters in `search` are kept). */
export function viewStateSearch(state: ViewState, search = ""): string {
  const query = new URLSearchParams(search);
  const set = (key: string, value: string | null, fallback: string | null) => {
    if (value === null || value === fallback) query.delete(key);
    else query.set(key, value);
  };
  set("range", state.range, DEFAULT_RANGE);
  set("tz", state.tz, "local");
  set("theme", state.theme, null);
  set("step", state.step === null ? null : String(state.step), null);
  const text = query.toString();
  return text ? `?${text}` : "";
}
