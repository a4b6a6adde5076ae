// The page's data: the series for the chosen range, kept current by the live stream, plus the
// status, the verdict and the breakdowns, each refreshed on its own timer.
//
// No gap between history and live data: the stream is opened after the first series load and
// resumes after the last bucket that holds a figure, so the service replays every tick since;
// ticks that arrive while a series is (re)loading are held and applied after it; a `reset`
// (the id is older than the service's replay ring) refetches the series.
import { useCallback, useEffect, useRef, useState } from "react";
import { api } from "./api/client";
import type {
  BreakdownBy,
  BreakdownResponse,
  DashboardConfig,
  DashboardStatus,
  TickEvent,
  VerdictResponse,
} from "./api/types";
import { appendTick, fromResponse, lastCollectedTime, trimBefore, type SeriesData } from "./data/liveSeries";
import { LiveStream, type ConnectionState } from "./live/liveStream";
import type { SseEvent } from "./live/sseParser";
import { rangeSeconds } from "./urlState";
import { chartHandle } from "./chartRegistry";

export const BREAKDOWNS: BreakdownBy[] = ["model", "error_type", "zai_class", "retry_reason"];

export interface DashboardData {
  series: SeriesData | null;
  version: number;
  seriesError: string | null;
  loading: boolean;
  connection: ConnectionState;
  latestTick: TickEvent | null;
  lastTickMs: number | null;
  lastHeardMs: number | null;
  status: DashboardStatus | null;
  statusError: string | null;
  verdict: VerdictResponse | null;
  verdictError: string | null;
  breakdowns: Partial<Record<BreakdownBy, BreakdownResponse>>;
  reconnectNow: () => void;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function isAbort(error: unknown): boolean {
  return error instanceof DOMException && error.name === "AbortError";
}

/** Calls `fn` now and every `periodMs` while mounted; `deps` restart it. */
function usePoll(fn: (signal: AbortSignal) => Promise<void>, periodMs: number, deps: unknown[]): void {
  useEffect(() => {
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      try {
        await fn(controller.signal);
      } finally {
        if (!controller.signal.aborted) timer = setTimeout(run, periodMs);
      }
    };
    void run();
    return () => {
      controller.abort();
      clearTimeout(timer);
    };
  }, deps); // `fn` is a fresh closure each render: only `deps` restart the poll
}

export function useDashboard(config: DashboardConfig | null, range: string, step: number | null = null): DashboardData {
  const [version, setVersion] = useState(0);
  const [seriesError, setSeriesError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [connection, setConnection] = useState<ConnectionState>({ kind: "connecting", attempt: 0 });
  const [latestTick, setLatestTick] = useState<TickEvent | null>(null);
  const [lastTickMs, setLastTickMs] = useState<number | null>(null);
  const [lastHeardMs, setLastHeardMs] = useState<number | null>(null);
  const [status, setStatus] = useState<DashboardStatus | null>(null);
  const [statusError, setStatusError] = useState<string | null>(null);
  const [verdict, setVerdict] = useState<VerdictResponse | null>(null);
  const [verdictError, setVerdictError] = useState<string | null>(null);
  const [breakdowns, setBreakdowns] = useState<Partial<Record<BreakdownBy, BreakdownResponse>>>({});
  const [reloads, setReloads] = useState(0);

  const series = useRef<SeriesData | null>(null);
  const pending = useRef<TickEvent[] | null>([]); // non-null while a series load is in flight
  const stream = useRef<LiveStream | null>(null);
  const rangeRef = useRef(range);
  rangeRef.current = range;

  const intervalS = config?.scrape_interval_s ?? 5;

  const applyTick = useCallback(
    (tick: TickEvent) => {
      const data = series.current;
      // Coarser steps (rollups) are refetched on a timer instead of being extended tick by tick.
      if (!data || data.stepS !== intervalS) return false;
      appendTick(data, tick);
      const seconds = rangeSeconds(rangeRef.current);
      if (seconds !== null) trimBefore(data, Math.floor(tick.t / data.stepS) * data.stepS - seconds);
      return true;
    },
    [intervalS],
  );

  const onEvent = useCallback(
    (event: SseEvent) => {
      const now = Date.now();
      setLastHeardMs(now);
      if (event.event === "tick") {
        let tick: TickEvent;
        try {
          tick = JSON.parse(event.data) as TickEvent;
        } catch {
          return;
        }
        setLatestTick(tick);
        setLastTickMs(now);
        if (pending.current !== null) pending.current.push(tick);
        else if (applyTick(tick)) setVersion((v) => v + 1);
      } else if (event.event === "reset") {
        setReloads((n) => n + 1);
      }
    },
    [applyTick],
  );

  // The series for the range: on start, on a range change, on `reset`, and every step for
  // coarse (rollup) resolutions, which ticks do not extend.
  useEffect(() => {
    if (!config) return;
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const load = async () => {
      pending.current = pending.current ?? [];
      setLoading(true);
      try {
        const response = await api.series(range, step, controller.signal);
        const data = fromResponse(response, config.variants);
        series.current = data;
        const held = pending.current ?? [];
        pending.current = null;
        for (const tick of held) applyTick(tick);
        setSeriesError(null);
        // Data collected within the last few intervals is as fresh as a tick just received.
        const lastCollected = lastCollectedTime(data);
        if (lastCollected !== null && response.to - lastCollected <= 3 * config.scrape_interval_s) {
          const loadedAt = Date.now();
          setLastTickMs((previous) => previous ?? loadedAt);
        }
        const handle = chartHandle();
        handle.loads += 1;
        handle.loadedAt.push(performance.now());
        setVersion((v) => v + 1);
        if (!stream.current) {
          const lastId = lastCollectedTime(data);
          stream.current = new LiveStream({
            url: "/api/events",
            initialLastId: lastId === null ? null : String(lastId),
            onEvent,
            onState: setConnection,
          });
          stream.current.start();
        }
        if (data.stepS !== config.scrape_interval_s) {
          timer = setTimeout(load, Math.max(15, data.stepS) * 1000);
        }
      } catch (error) {
        if (isAbort(error)) return;
        pending.current = null;
        setSeriesError(message(error));
        timer = setTimeout(load, Math.max(2, config.scrape_interval_s) * 1000);
      } finally {
        if (!controller.signal.aborted) setLoading(false);
      }
    };
    void load();
    return () => {
      controller.abort();
      clearTimeout(timer);
    };
  }, [config, range, step, reloads, applyTick, onEvent]);

  useEffect(
    () => () => {
      stream.current?.stop();
      stream.current = null;
    },
    [],
  );

  usePoll(
    async (signal) => {
      if (!config) return;
      try {
        setStatus(await api.status(signal));
        setStatusError(null);
      } catch (error) {
        if (!isAbort(error)) setStatusError(message(error));
      }
    },
    Math.min(10, Math.max(2, intervalS)) * 1000,
    [config],
  );

  usePoll(
    async (signal) => {
      if (!config) return;
      try {
        setVerdict(await api.verdict(signal));
        setVerdictError(null);
      } catch (error) {
        if (!isAbort(error)) setVerdictError(message(error));
      }
    },
    Math.max(10, intervalS * 2) * 1000,
    [config],
  );

  usePoll(
    async (signal) => {
      if (!config) return;
      const results = await Promise.allSettled(BREAKDOWNS.map((by) => api.breakdown(by, range, signal)));
      if (signal.aborted) return;
      setBreakdowns((previous) => {
        const next = { ...previous };
        results.forEach((result, index) => {
          if (result.status === "fulfilled") next[BREAKDOWNS[index]] = result.value;
        });
        return next;
      });
    },
    30_000,
    [config, range],
  );

  const reconnectNow = useCallback(() => stream.current?.reconnectNow(), []);

  return {
    series: series.current,
    version,
    seriesError,
    loading,
    connection,
    latestTick,
    lastTickMs,
    lastHeardMs,
    status,
    statusError,
    verdict,
    verdictError,
    breakdowns,
    reconnectNow,
  };
}
