import { describe, expect, it } from "vitest";
import { SseParser } from "./sseParser";

const STREAM =
  'retry: 3000\n\nevent: hello\ndata: {"variants":["production","canary"],"scrape_interval_s":5,"last_id":"1765000000"}\n\n' +
  'id: 1765000005\nevent: tick\ndata: {"t": 1765000005,\ndata:  "x": 1}\n\n: a comment\n\nevent: heartbeat\ndata: {"now": 1765000010.0}\n\n';

describe("SseParser", () => {
  it("parses named events, ids, multi-line data and retry", () => {
    const result = new SseParser().feed(STREAM);
    expect(result.retryMs).toBe(3000);
    expect(result.events.map((e) => [e.event, e.id])).toEqual([
      ["hello", null],
      ["tick", "1765000005"],
      ["heartbeat", null],
    ]);
    expect(result.events[1].data).toBe('{"t": 1765000005,\n "x": 1}');
  });

  it("gives the same events whatever the chunk boundaries", () => {
    const whole = new SseParser().feed(STREAM).events;
    for (const size of [1, 2, 3, 7, 16]) {
      const parser = new SseParser();
      const events = [];
      for (let i = 0; i < STREAM.length; i += size) events.push(...parser.feed(STREAM.slice(i, i + size)).events);
      expect(events).toEqual(whole);
    }
  });

  it("accepts CRLF and CR line ends, split between chunks", () => {
    const parser = new SseParser();
    const first = parser.feed("id: 7\r\nevent: tick\r\ndata: a\r");
    const second = parser.feed("\n\r\nevent: reset\rdata: {}\r\r");
    // A CR at the end of a chunk may be half a CRLF: its line ends when the next chunk comes.
    const third = parser.feed(": next\n");
    expect(first.events).toEqual([]);
    expect(second.events).toEqual([{ id: "7", event: "tick", data: "a" }]);
    expect(third.events).toEqual([{ id: null, event: "reset", data: "{}" }]);
  });

  it("defaults the event type to message and drops events without data", () => {
    const { events } = new SseParser().feed("event: nothing\n\ndata: x\n\n");
    expect(events).toEqual([{ id: null, event: "message", data: "x" }]);
  });
});
