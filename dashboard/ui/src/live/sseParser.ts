// An incremental text/event-stream parser (the WHATWG rules): fed text as it arrives, in chunks
// cut anywhere, it returns every complete event. We read the stream with fetch rather than
// EventSource so that the client controls reconnection (backoff, Retry-After on 503, a watchdog)
// and sees the status of each attempt.

export interface SseEvent {
  /** The event's `id:` if it carried one (the stream's last id also persists in the client). */
  id: string | null;
  event: string;
  data: string;
}

export interface ParseResult {
  events: SseEvent[];
  /** A `retry:` field, in milliseconds, if one was seen in this chunk. */
  retryMs: number | null;
}

export class SseParser {
  private buffer = "";
  private data: string[] = [];
  private eventType = "";
  private id: string | null = null;
  private sawField = false;
  private firstChunk = true;

  feed(chunk: string): ParseResult {
    if (this.firstChunk && chunk.length > 0) {
      this.firstChunk = false;
      if (chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1);
    }
    this.buffer += chunk;
    const result: ParseResult = { events: [], retryMs: null };
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      if (!match) break;
      // A lone CR at the very end may be the first half of a CRLF: wait for the next chunk.
      if (match[0] === "\r" && match.index === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      this.line(line, result);
    }
    return result;
  }

  private line(line: string, result: ParseResult): void {
    if (line === "") {
      if (this.sawField && this.data.length > 0) {
        result.events.push({ id: this.id, event: this.eventType || "message", data: this.data.join("\n") });
      }
      this.data = [];
      this.eventType = "";
      this.id = null;
      this.sawField = false;
      return;
    }
    if (line.startsWith(":")) return; // a comment
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    this.sawField = true;
    switch (field) {
      case "data":
        this.data.push(value);
        break;
      case "event":
        this.eventType = value;
        break;
      case "id":
        if (!value.includes("\0")) this.id = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) result.retryMs = Number(value);
        break;
      default:
        break;
    }
  }
}
