// Same-origin JSON requests to the dashboard service (never another host).
import type {
  BreakdownBy,
  BreakdownResponse,
  DashboardConfig,
  DashboardStatus,
  SeriesResponse,
  VerdictResponse,
} from "./types";

export class ApiError extends Error {
  constructor(
    readonly path: string,
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function getJson<T>(path: string, signal?: AbortSignal): Promise<T> {
  const response = await fetch(path, { headers: { Accept: "application/json" }, signal, cache: "no-store" });
  if (!response.ok) {
    let detail = response.statusText;
    try {
      const body = (await response.json()) as { error?: string };
      if (body.error) detail = body.error;
    } catch {
      // not JSON: keep the status text
    }
    throw new ApiError(path, response.status, `${path}: ${response.status} ${detail}`);
  }
  return (await response.json()) as T;
}

export const api = {
  config: (signal?: AbortSignal) => getJson<DashboardConfig>("/api/config", signal),
  status: (signal?: AbortSignal) => getJson<DashboardStatus>("/api/status", signal),
  verdict: (signal?: AbortSignal) => getJson<VerdictResponse>("/api/verdict", signal),
  series: (range: string, step: number | null, signal?: AbortSignal) =>
    getJson<SeriesResponse>(
      `/api/series?range=${encodeURIComponent(range)}&variant=all${step === null ? "" : `&step=${step}`}`,
      signal,
    ),
  breakdown: (by: BreakdownBy, range: string, signal?: AbortSignal) =>
    getJson<BreakdownResponse>(`/api/breakdown?by=${by}&range=${encodeURIComponent(range)}`, signal),
};

export function exportCsvUrl(range: string): string {
  return `/api/export.csv?range=${encodeURIComponent(range)}&variant=all`;
}
