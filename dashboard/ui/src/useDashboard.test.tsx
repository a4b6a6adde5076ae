// @vitest-environment jsdom
// useDashboard against a fetch that answers as dashboard/API.md says: the series, then the
// live stream resumed after the series' last bucket, held ticks, `reset`, and range changes.
import { act, cleanup, renderHook, waitFor } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { useDashboard } from "./useDashboard";
import { config, series, tick } from "./test/fixtures";
import type { SeriesResponse } from "./api/types";

interface Stream {
  headers: Record<string, string>;
  push(text: string): void;
}

function tickEvent(t: number, production: number, canary: number): string {
  return `id: ${t}\nevent: tick\ndata: ${JSON.stringify(tick(t, production, canary))}\n\n`;
}

class FakeService {
  seriesAnswers: SeriesResponse[] = [];
  seriesRequests: string[] = [];
  streams: Stream[] = [];
  /** Resolves the next /api/series answer; until then the request hangs. */
  private releaseSeries: (() => void)[] = [];
  holdSeries = false;

  fetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const url = String(input);
    const json = (body: unknown) => new Response(JSON.stringify(body), { status: 200, headers: { "Content-Type": "application/json" } });
    if (url.startsWith("/api/series")) {
      this.seriesRequests.push(url);
      if (this.holdSeries) await new Promise<void>((resolve) => this.releaseSeries.push(resolve));
      return json(this.seriesAnswers.shift());
    }
    if (url.startsWith("/api/events")) {
      let controller!: ReadableStreamDefaultController<Uint8Array>;
      const body = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) });
      const encoder = new TextEncoder();
      init?.signal?.addEventListener("abort", () => controller.error(new DOMException("aborted", "AbortError")));
      this.streams.push({ headers: { ...(init?.headers as Record<string, string>) }, push: (text) => controller.enqueue(encoder.encode(text)) });
      return new Response(body, { status: 200, headers: { "Content-Type": "text/event-stream" } });
    }
    if (url.startsWith("/api/breakdown")) return json({ by: "model", from: 0, to: 0, rows: [] });
    if (url.startsWith("/api/verdict")) return json({ verdict: "hold", evaluated_at: 0, window_s: 600, reasons: [] });
    return json({ now: 0, storage: { state: "ok", path_ok: true, reset: null }, variants: {} });
  };

  release(): void {
    this.holdSeries = false;
    for (const resolve of this.releaseSeries.splice(0)) resolve();
  }
}

let service: FakeService;

beforeEach(() => {
  service = new FakeService();
  vi.stubGlobal("fetch", service.fetch);
});

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const T0 = 1_765_000_000;

describe("useDashboard", () => {
  it("resumes the stream after the last bucket that holds a figure, and appends ticks", async () => {
    service.seriesAnswers.push(series(T0, 5, [1, 2, null], [3, 4, null]));
    const { result } = renderHook(() => useDashboard(config, "5m"));
    await waitFor(() => expect(service.streams).toHaveLength(1));
    expect(service.streams[0].headers["Last-Event-ID"]).toBe(String(T0 + 5));
    act(() => service.streams[0].push(tickEvent(T0 + 10, 5, 6) + tickEvent(T0 + 15, 7, 8)));
    await waitFor(() => expect(result.current.series?.t.at(-1)).toBe(T0 + 15));
    expect(result.current.series?.t).toEqual([T0, T0 + 5, T0 + 10, T0 + 15]);
    expect(result.current.series?.variants.production.requests_per_s).toEqual([1, 2, 5, 7]);
    expect(result.current.latestTick?.t).toBe(T0 + 15);
    expect(result.current.lastTickMs).not.toBeNull();
  });

  it("holds ticks that arrive while a reset refetches the series, then applies each once", async () => {
    service.seriesAnswers.push(series(T0, 5, [1, 2], [3, 4]));
    const { result } = renderHook(() => useDashboard(config, "5m"));
    await waitFor(() => expect(service.streams).toHaveLength(1));
    // The service says the id is too old: the page refetches, and ticks keep coming meanwhile.
    service.holdSeries = true;
    service.seriesAnswers.push(series(T0, 5, [1, 2, 9, 10], [3, 4, 11, 12]));
    act(() => service.streams[0].push("event: reset\ndata: {}\n\n"));
    await waitFor(() => expect(service.seriesRequests).toHaveLength(2));
    act(() => service.streams[0].push(tickEvent(T0 + 15, 10, 12) + tickEvent(T0 + 20, 13, 14)));
    await waitFor(() => expect(result.current.latestTick?.t).toBe(T0 + 20));
    expect(result.current.series?.t).toEqual([T0, T0 + 5]); // still the old series: ticks held
    act(() => service.release());
    await waitFor(() => expect(result.current.series?.t.at(-1)).toBe(T0 + 20));
    expect(result.current.series?.t).toEqual([T0, T0 + 5, T0 + 10, T0 + 15, T0 + 20]);
    expect(result.current.series?.variants.production.requests_per_s).toEqual([1, 2, 9, 10, 13]);
    expect(service.streams).toHaveLength(1); // no reconnect was needed
  });

  it("refetches the series when the range changes, keeping the stream", async () => {
    service.seriesAnswers.push(series(T0, 5, [1, 2], [3, 4]));
    service.seriesAnswers.push(series(T0 - 600, 5, [7, 8, 9], [1, 1, 1]));
    const { result, rerender } = renderHook(({ range }) => useDashboard(config, range), { initialProps: { range: "5m" } });
    await waitFor(() => expect(service.streams).toHaveLength(1));
    rerender({ range: "15m" });
    await waitFor(() => expect(result.current.series?.t[0]).toBe(T0 - 600));
    expect(service.seriesRequests).toEqual(["/api/series?range=5m&variant=all", "/api/series?range=15m&variant=all"]);
    expect(service.streams).toHaveLength(1);
  });
});
