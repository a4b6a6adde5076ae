import { describe, expect, it } from "vitest";
import { parseViewState, rangeSeconds, viewStateSearch } from "./urlState";

describe("URL state", () => {
  it("reads range, time zone and theme from the query", () => {
    expect(parseViewState("?range=6h&tz=utc&theme=dark&step=30")).toEqual({ range: "6h", tz: "utc", theme: "dark", step: 30 });
  });

  it("falls back to the defaults for missing or unknown values", () => {
    expect(parseViewState("")).toEqual({ range: "1h", tz: "local", theme: null, step: null });
    expect(parseViewState("?range=3y&tz=mars&theme=neon&step=-5")).toEqual({ range: "1h", tz: "local", theme: null, step: null });
    expect(parseViewState("?step=0").step).toBeNull();
    expect(parseViewState("?step=5s").step).toBeNull();
  });

  it("accepts only the ranges the service offers", () => {
    expect(parseViewState("?range=7d", ["5m", "1h"]).range).toBe("1h");
    expect(parseViewState("?range=5m", ["5m", "1h"]).range).toBe("5m");
  });

  it("writes only what differs from the defaults and keeps other parameters", () => {
    expect(viewStateSearch({ range: "1h", tz: "local", theme: null, step: null })).toBe("");
    expect(viewStateSearch({ range: "15m", tz: "utc", theme: null, step: null }, "?debug=1&range=1h&step=5")).toBe("?debug=1&range=15m&tz=utc");
    expect(viewStateSearch({ range: "24h", tz: "local", theme: null, step: 5 })).toBe("?range=24h&step=5");
  });

  it("round-trips every range", () => {
    for (const range of ["5m", "15m", "1h", "6h", "24h", "7d"]) {
      expect(parseViewState(viewStateSearch({ range, tz: "utc", theme: "light", step: null })).range).toBe(range);
    }
  });

  it("knows each range's length", () => {
    expect(["5m", "15m", "1h", "6h", "24h", "7d"].map(rangeSeconds)).toEqual([300, 900, 3600, 21600, 86400, 604800]);
    expect(rangeSeconds("1w")).toBeNull();
  });
});
