import { describe, expect, it } from "vitest";
import { backoffDelay, LiveStream, retryAfterMs, type ConnectionState, type Timers } from "./liveStream";
import type { SseEvent } from "./sseParser";

/** Timers run by hand: advance(ms) fires whatever falls due. */
class ManualTimers implements Timers {
  now = 0;
  private queue: { id: number; at: number; fn: () => void }[] = [];
  private next = 1;
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.next++;
    this.queue.push({ id, at: this.now + ms, fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.queue = this.queue.filter((t) => t.id !== handle);
  }
  pendingDelays(): number[] {
    return this.queue.map((t) => t.at - this.now);
  }
  async advance(ms: number): Promise<void> {
    const until = this.now + ms;
    for (;;) {
      this.queue.sort((a, b) => a.at - b.at);
      const due = this.queue[0];
      if (!due || due.at > until) break;
      this.queue.shift();
      this.now = due.at;
      due.fn();
      await flush();
    }
    this.now = until;
  }
}

async function flush(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
  await new Promise((resolve) => setTimeout(resolve, 0));
}

/** One server response whose SSE body the test writes to. */
function sseResponse() {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) });
  const encoder = new TextEncoder();
  return {
    response: new Response(body, { status: 200, headers: { "Content-Type": "text/event-stream" } }),
    push: (text: string) => controller.enqueue(encoder.encode(text)),
    close: () => controller.close(),
    fail: () => controller.error(new TypeError("network error")),
  };
}

type Call = { headers: Record<string, string> };

function harness(answers: (() => Promise<Response>)[], initialLastId: string | null = null) {
  const timers = new ManualTimers();
  const calls: Call[] = [];
  const events: SseEvent[] = [];
  const states: ConnectionState[] = [];
  const stream = new LiveStream({
    url: "/api/events",
    initialLastId,
    onEvent: (e) => events.push(e),
    onState: (s) => states.push(s),
    fetch: (async (_url: RequestInfo | URL, init?: RequestInit) => {
      calls.push({ headers: { ...(init?.headers as Record<string, string>) } });
      const answer = answers.shift();
      if (!answer) return new Promise<Response>(() => {}); // never answers
      return answer();
    }) as typeof fetch,
    timers,
    now: () => timers.now,
    random: () => 1, // no jitter: delays are exact
    baseDelayMs: 1000,
    maxDelayMs: 8000,
    silenceMs: 40_000,
  });
  return { timers, calls, events, states, stream };
}

const HELLO = 'event: hello\ndata: {"variants":["production","canary"],"scrape_interval_s":5,"last_id":null}\n\n';
const tickText = (id: number) => `id: ${id}\nevent: tick\ndata: {"t": ${id}, "variants": {}, "states": {}}\n\n`;

describe("backoff", () => {
  it("doubles from the base up to the cap, jittered down to half", () => {
    expect([1, 2, 3, 4, 5, 6].map((a) => backoffDelay(a, 1000, 8000, () => 1))).toEqual([1000, 2000, 4000, 8000, 8000, 8000]);
    expect(backoffDelay(3, 1000, 8000, () => 0)).toBe(2000);
  });

  it("reads Retry-After as seconds or a date", () => {
    expect(retryAfterMs("7", 0)).toBe(7000);
    expect(retryAfterMs(new Date(10_000).toUTCString(), 4_000)).toBe(6000);
    expect(retryAfterMs(null, 0)).toBeNull();
    expect(retryAfterMs("soon", 0)).toBeNull();
  });
});

describe("LiveStream", () => {
  it("resumes the first connection after the id it was given", async () => {
    const first = sseResponse();
    const { calls, stream } = harness([async () => first.response], "1765000000");
    stream.start();
    await flush();
    expect(calls[0].headers["Last-Event-ID"]).toBe("1765000000");
    stream.stop();
  });

  it("after a drop, reconnects with the last id it received, so the service replays the rest", async () => {
    const first = sseResponse();
    const second = sseResponse();
    const { timers, calls, events, stream } = harness([async () => first.response, async () => second.response]);
    stream.start();
    await flush();
    expect(calls[0].headers["Last-Event-ID"]).toBeUndefined();
    first.push(HELLO + tickText(1005) + tickText(1010));
    await flush();
    first.fail();
    await flush();
    expect(timers.pendingDelays()).toEqual([1000]);
    await timers.advance(1000);
    expect(calls).toHaveLength(2);
    expect(calls[1].headers["Last-Event-ID"]).toBe("1010");
    second.push(HELLO + tickText(1015));
    await flush();
    expect(events.filter((e) => e.event === "tick").map((e) => e.id)).toEqual(["1005", "1010", "1015"]);
    stream.stop();
  });

  it("backs off exponentially while the service is unreachable, and starts over once it answers", async () => {
    const refused = async () => {
      throw new TypeError("Failed to fetch");
    };
    const live = sseResponse();
    const { timers, calls, states, stream } = harness([refused, refused, refused, refused, async () => live.response]);
    stream.start();
    await flush();
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      delays.push(...timers.pendingDelays());
      await timers.advance(timers.pendingDelays()[0]);
    }
    expect(delays).toEqual([1000, 2000, 4000, 8000]);
    expect(calls).toHaveLength(5);
    live.push(HELLO);
    await flush();
    expect(states.at(-1)?.kind).toBe("live");
    live.close();
    await flush();
    // A clean close after a good connection waits only the base delay again.
    expect(timers.pendingDelays()).toEqual([1000]);
    stream.stop();
  });

  it("waits at least Retry-After when the service is over its client cap (503)", async () => {
    const full = async () => new Response("busy", { status: 503, headers: { "Retry-After": "5" } });
    const { timers, calls, states, stream } = harness([full]);
    stream.start();
    await flush();
    expect(timers.pendingDelays()).toEqual([5000]);
    const waiting = states.at(-1);
    expect(waiting?.kind === "waiting" && waiting.reason).toBe("HTTP 503");
    await timers.advance(4999);
    expect(calls).toHaveLength(1);
    await timers.advance(1);
    expect(calls).toHaveLength(2);
    stream.stop();
  });

  it("takes the stream's retry: field as its base delay", async () => {
    const first = sseResponse();
    const { timers, stream } = harness([async () => first.response]);
    stream.start();
    await flush();
    first.push("retry: 3000\n\n" + HELLO);
    await flush();
    first.close();
    await flush();
    expect(timers.pendingDelays()).toEqual([3000]);
    stream.stop();
  });

  it("abandons a silent connection (no tick, no heartbeat) and resumes it", async () => {
    const first = sseResponse();
    const second = sseResponse();
    const { timers, calls, stream } = harness([async () => first.response, async () => second.response]);
    stream.start();
    await flush();
    first.push(HELLO + tickText(2000));
    await flush();
    await timers.advance(30_000);
    first.push('event: heartbeat\ndata: {"now": 2030.0}\n\n'); // any byte re-arms the watchdog
    await flush();
    await timers.advance(39_999);
    expect(calls).toHaveLength(1);
    await timers.advance(1); // watchdog fires, then the base delay
    await timers.advance(1000);
    expect(calls).toHaveLength(2);
    expect(calls[1].headers["Last-Event-ID"]).toBe("2000");
    stream.stop();
  });

  it("stops for good: no timer left, no reconnect", async () => {
    const first = sseResponse();
    const { timers, calls, states, stream } = harness([async () => first.response]);
    stream.start();
    await flush();
    stream.stop();
    await timers.advance(60_000);
    expect(calls).toHaveLength(1);
    expect(timers.pendingDelays()).toEqual([]);
    expect(states.at(-1)?.kind).toBe("stopped");
  });
});
