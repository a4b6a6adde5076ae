// The live connection to /api/events: one fetch-read stream at a time, resumed after any drop
// with the last event id it saw (`Last-Event-ID`), so the service replays every missed tick.
// Reconnects back off exponentially with jitter; a 503 waits at least its Retry-After; a
// stream that goes silent (no tick and no heartbeat) is abandoned by a watchdog and resumed.
import { SseParser, type SseEvent } from "./sseParser";

export type ConnectionState =
  | { kind: "connecting"; attempt: number }
  | { kind: "live"; since: number }
  | { kind: "waiting"; attempt: number; retryAt: number; reason: string }
  | { kind: "stopped" };

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface LiveStreamOptions {
  url: string;
  /** The id to resume after on the first connection (e.g. the last tick already loaded). */
  initialLastId?: string | null;
  onEvent(event: SseEvent): void;
  onState(state: ConnectionState): void;
  fetch?: typeof fetch;
  timers?: Timers;
  now?: () => number;
  random?: () => number;
  /** First reconnect delay; the stream's `retry:` field replaces it. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** No byte for this long and the connection is abandoned and resumed. */
  silenceMs?: number;
}

/** Delay before reconnect attempt `attempt` (1, 2, …): base × 2^(attempt-1), capped, jittered to 50–100 %. */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(exp * (0.5 + 0.5 * random()));
}

/** Retry-After as seconds or an HTTP date, in milliseconds from `nowMs`; null when absent or bad. */
export function retryAfterMs(header: string | null, nowMs: number): number | null {
  if (header == null || header.trim() === "") return null;
  const text = header.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? null : Math.max(0, date - nowMs);
}

const defaultTimers: Timers = {
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export class LiveStream {
  lastEventId: string | null;
  private attempt = 0;
  private baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly silenceMs: number;
  private readonly fetchFn: typeof fetch;
  private readonly timers: Timers;
  private readonly now: () => number;
  private readonly random: () => number;
  private controller: AbortController | null = null;
  private retryTimer: unknown = null;
  private watchdog: unknown = null;
  private stopped = true;
  private generation = 0;

  constructor(private readonly options: LiveStreamOptions) {
    this.lastEventId = options.initialLastId ?? null;
    this.baseDelayMs = options.baseDelayMs ?? 1000;
    this.maxDelayMs = options.maxDelayMs ?? 30_000;
    this.silenceMs = options.silenceMs ?? 40_000;
    this.fetchFn = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.timers = options.timers ?? defaultTimers;
    this.now = options.now ?? (() => Date.now());
    this.random = options.random ?? Math.random;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    void this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.generation++;
    this.clearRetry();
    this.clearWatchdog();
    this.controller?.abort();
    this.controller = null;
    this.options.onState({ kind: "stopped" });
  }

  /** Skip the wait and try now (the "reconnect now" button). */
  reconnectNow(): void {
    if (this.stopped) return;
    this.clearRetry();
    this.generation++;
    this.controller?.abort();
    void this.connect();
  }

  private async connect(): Promise<void> {
    const generation = ++this.generation;
    this.clearRetry();
    const controller = new AbortController();
    this.controller = controller;
    this.options.onState({ kind: "connecting", attempt: this.attempt });
    const headers: Record<string, string> = { Accept: "text/event-stream" };
    if (this.lastEventId !== null) headers["Last-Event-ID"] = this.lastEventId;
    let response: Response;
    try {
      this.armWatchdog(generation);
      response = await this.fetchFn(this.options.url, { headers, signal: controller.signal, cache: "no-store" });
    } catch (error) {
      if (generation === this.generation) this.scheduleRetry(`connection failed: ${describe(error)}`, null);
      return;
    }
    if (generation !== this.generation) return;
    if (!response.ok || !response.body) {
      const wait = retryAfterMs(response.headers.get("Retry-After"), this.now());
      this.scheduleRetry(`HTTP ${response.status}`, wait);
      return;
    }
    const parser = new SseParser();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (generation !== this.generation) return;
        if (done) break;
        this.armWatchdog(generation);
        const { events, retryMs } = parser.feed(value);
        if (retryMs !== null) this.baseDelayMs = retryMs;
        for (const event of events) {
          if (event.id !== null) this.lastEventId = event.id;
          if (event.event === "hello") {
            this.attempt = 0;
            this.options.onState({ kind: "live", since: this.now() });
          }
          this.options.onEvent(event);
          if (generation !== this.generation) return;
        }
      }
    } catch (error) {
      if (generation === this.generation) this.scheduleRetry(`stream broke: ${describe(error)}`, null);
      return;
    }
    if (generation === this.generation) this.scheduleRetry("stream closed by the server", null);
  }

  private scheduleRetry(reason: string, atLeastMs: number | null): void {
    if (this.stopped) return;
    this.clearWatchdog();
    this.controller?.abort();
    this.controller = null;
    this.attempt += 1;
    let delay = backoffDelay(this.attempt, this.baseDelayMs, this.maxDelayMs, this.random);
    if (atLeastMs !== null) delay = Math.max(delay, atLeastMs);
    const generation = this.generation;
    this.options.onState({ kind: "waiting", attempt: this.attempt, retryAt: this.now() + delay, reason });
    this.retryTimer = this.timers.setTimeout(() => {
      this.retryTimer = null;
      if (!this.stopped && generation === this.generation) void this.connect();
    }, delay);
  }

  private armWatchdog(generation: number): void {
    this.clearWatchdog();
    this.watchdog = this.timers.setTimeout(() => {
      this.watchdog = null;
      if (generation !== this.generation || this.stopped) return;
      this.generation++;
      this.scheduleRetry("no data or heartbeat", null);
    }, this.silenceMs);
  }

  private clearRetry(): void {
    if (this.retryTimer !== null) this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private clearWatchdog(): void {
    if (this.watchdog !== null) this.timers.clearTimeout(this.watchdog);
    this.watchdog = null;
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
