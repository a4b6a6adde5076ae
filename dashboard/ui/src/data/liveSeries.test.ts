import { describe, expect, it } from "vitest";
import { appendTick, columnSum, fromResponse, lastCollectedTime, lastValue, panelData, trimBefore } from "./liveSeries";
import { series, tick } from "../test/fixtures";

const VARIANTS = ["production", "canary"];

describe("series → uPlot data", () => {
  it("keeps null as null (a gap) and fills figures the response lacks with nulls", () => {
    const data = fromResponse(series(1000, 5, [1, null, 3], [null, 2, null]), VARIANTS);
    const plotted = panelData(data, VARIANTS, ["requests_per_s", "latency_p95_s"]);
    expect(plotted).toEqual([
      [1000, 1005, 1010],
      [1, null, 3],
      [null, null, null],
      [null, 2, null],
      [null, null, null],
    ]);
  });

  it("gives a variant missing from the response all-null columns of the right length", () => {
    const data = fromResponse(series(1000, 5, [1, 2], [3, 4]), [...VARIANTS, "shadow"]);
    expect(data.variants.shadow.requests_per_s).toEqual([null, null]);
  });

  it("resumes after the last bucket with a figure, not after trailing empty buckets", () => {
    expect(lastCollectedTime(fromResponse(series(1000, 5, [1, 2, null, null], [1, null, null, null]), VARIANTS))).toBe(1005);
    expect(lastCollectedTime(fromResponse(series(1000, 5, [null], [null]), VARIANTS))).toBeNull();
  });
});

describe("appending live ticks", () => {
  it("appends the next bucket", () => {
    const data = fromResponse(series(1000, 5, [1, 2], [3, 4]), VARIANTS);
    appendTick(data, tick(1010, 5, 6));
    expect(data.t).toEqual([1000, 1005, 1010]);
    expect(data.variants.production.requests_per_s).toEqual([1, 2, 5]);
    expect(data.variants.canary.requests_per_s).toEqual([3, 4, 6]);
  });

  it("puts a null row after the last bucket when ticks were missed, so the line breaks", () => {
    const data = fromResponse(series(1000, 5, [1, 2], [3, 4]), VARIANTS);
    appendTick(data, tick(1030, 5, 6));
    expect(data.t).toEqual([1000, 1005, 1010, 1030]);
    expect(data.variants.production.requests_per_s).toEqual([1, 2, null, 5]);
    expect(data.variants.canary.latency_p95_s).toEqual([null, null, null, 0.25]);
  });

  it("counts a replayed tick once: it replaces its bucket", () => {
    const data = fromResponse(series(1000, 5, [1, null, null], [3, null, null]), VARIANTS);
    appendTick(data, tick(1005, 7, 8));
    appendTick(data, tick(1005, 7, 8));
    appendTick(data, tick(1010, 9, 10));
    appendTick(data, tick(1010, 9, 10));
    expect(data.t).toEqual([1000, 1005, 1010]);
    expect(data.variants.production.requests_per_s).toEqual([1, 7, 9]);
  });

  it("aligns a tick to its bucket start", () => {
    const data = fromResponse(series(1000, 5, [1], [1]), VARIANTS);
    appendTick(data, tick(1007.4, 2, 2));
    expect(data.t).toEqual([1000, 1005]);
  });

  it("ignores a tick older than the series", () => {
    const data = fromResponse(series(1000, 5, [1, 2], [3, 4]), VARIANTS);
    expect(appendTick(data, tick(990, 5, 6))).toBe(false);
    expect(data.t).toEqual([1000, 1005]);
  });

  it("starts an empty series with the first tick", () => {
    const data = fromResponse(series(1000, 5, [], []), VARIANTS);
    appendTick(data, tick(1000, 1, 2));
    expect(data.t).toEqual([1000]);
    expect(data.variants.canary.requests_per_s).toEqual([2]);
  });

  it("slides the window: buckets before the range start are dropped from every column", () => {
    const data = fromResponse(series(1000, 5, [1, 2, 3, 4], [5, 6, 7, 8]), VARIANTS);
    trimBefore(data, 1010);
    expect(data.t).toEqual([1010, 1015]);
    expect(data.variants.production.requests_per_s).toEqual([3, 4]);
    expect(data.variants.canary.error_ratio).toEqual([null, null]);
  });
});

describe("column figures", () => {
  it("sums non-null values and says null when there are none", () => {
    const data = fromResponse(series(1000, 5, [1, null, 2.5], [null, null, null]), VARIANTS);
    expect(columnSum(data, "production", "requests_per_s")).toBe(3.5);
    expect(columnSum(data, "canary", "requests_per_s")).toBeNull();
    expect(lastValue(data, "production", "requests_per_s")).toBe(2.5);
    expect(lastValue(data, "canary", "requests_per_s")).toBeNull();
  });
});
