import { describe, expect, it } from "vitest";
import { formatAge, formatAxis, formatPercent, formatRate, formatSeconds, formatTime, formatUnit, formatUsd, NO_DATA } from "./format";

describe("format", () => {
  it("shows null as no data, never as zero", () => {
    expect(formatRate(null, "req/s")).toBe("– req/s");
    for (const text of [formatPercent(null), formatSeconds(null), formatUsd(null), formatUnit(null, "usd/h")]) {
      expect(text).toBe(NO_DATA);
    }
    expect(formatPercent(0)).toBe("0 %");
  });

  it("states the unit of every value", () => {
    expect(formatRate(3.2, "req/s")).toBe("3.20 req/s");
    expect(formatRate(1234.4, "tok/s")).toBe("1,234 tok/s");
    expect(formatPercent(0.004)).toBe("0.40 %");
    expect(formatPercent(0.1957)).toBe("19.6 %");
    expect(formatSeconds(0.2334)).toBe("233 ms");
    expect(formatSeconds(0.0042)).toBe("4.2 ms");
    expect(formatSeconds(1.6)).toBe("1.60 s");
    expect(formatUsd(0.12)).toBe("$0.12");
    expect(formatUsd(0.0012)).toBe("$0.0012");
    expect(formatUnit(2.5, "usd/h")).toBe("$2.50/h");
    expect(formatUnit(3, "requests")).toBe("3 requests");
  });

  it("labels axes compactly", () => {
    expect(formatAxis(0.05, "ratio")).toBe("5%");
    expect(formatAxis(0.25, "seconds")).toBe("250ms");
    expect(formatAxis(2, "seconds")).toBe("2s");
  });

  it("formats times in UTC with the zone named", () => {
    expect(formatTime(1765000000, "utc")).toBe("2025-12-06 05:46:40 UTC");
    expect(formatTime(1765000000, "local")).toMatch(/^2025-12-0\d \d\d:\d\d:40 [+-]\d\d:\d\d$/);
  });

  it("formats ages", () => {
    expect(formatAge(4.4)).toBe("4 s");
    expect(formatAge(600)).toBe("10 min");
    expect(formatAge(7 * 86400)).toBe("7 d");
  });
});
