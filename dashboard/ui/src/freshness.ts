// What the status bar shows for a variant, re-evaluated by a clock (useNow), not only when data
// arrives: a stream that stalls, or a service that dies, still turns the page stale.
import { useEffect, useState } from "react";
import type { VariantState } from "./api/types";

export type ShownState = VariantState | "unknown";

const SEVERITY: Record<ShownState, number> = { unknown: 0, up: 1, degraded: 2, stale: 3, down: 4 };

/** The worse of two states. */
export function worse(a: ShownState, b: ShownState): ShownState {
  return SEVERITY[a] >= SEVERITY[b] ? a : b;
}

/**
 * A variant's state as the page should show it at `nowMs`: the service's last word (the latest
 * tick's `states`), made at least stale when the page has heard no tick for more than 2 scrape
 * intervals (the service's own threshold for a target): then the page cannot vouch for it.
 */
export function shownState(
  serverState: VariantState | undefined,
  lastTickMs: number | null,
  nowMs: number,
  intervalS: number,
): ShownState {
  const server: ShownState = serverState ?? "unknown";
  if (lastTickMs === null) return server;
  return isStale(lastTickMs, nowMs, intervalS) ? worse(server, "stale") : server;
}

/** True when the page's data is older than 2 scrape intervals. */
export function isStale(lastHeardMs: number | null, nowMs: number, intervalS: number): boolean {
  return lastHeardMs === null || nowMs - lastHeardMs > 2 * intervalS * 1000;
}

/** The current time in ms, refreshed every `periodMs` so time-based indicators update on their own. */
export function useNow(periodMs = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const handle = setInterval(() => setNow(Date.now()), periodMs);
    return () => clearInterval(handle);
  }, [periodMs]);
  return now;
}
