import { describe, expect, it } from "vitest";
import { modelRows, pivot } from "./breakdown";

describe("breakdown tables", () => {
  it("pivots rows to one line per key with a column per variant, largest first", () => {
    const rows = pivot(
      [
        { variant: "production", key: "timeout", count: 2 },
        { variant: "canary", key: "upstream_5xx", count: 30 },
        { variant: "canary", key: "timeout", count: 1 },
        { variant: "other", key: "ignored", count: 99 },
      ],
      ["production", "canary"],
    );
    expect(rows).toEqual([
      { key: "upstream_5xx", values: { canary: 30 }, total: 30 },
      { key: "timeout", values: { production: 2, canary: 1 }, total: 3 },
    ]);
  });

  it("uses requests where there is no count", () => {
    expect(pivot([{ variant: "canary", key: "500", requests: 4 }], ["canary"])[0].total).toBe(4);
  });

  it("orders model rows by variant, then cost", () => {
    const rows = modelRows(
      [
        { variant: "canary", key: "glm-4.7", requests: 1, cost_usd: 0.5 },
        { variant: "production", key: "glm-4.5", requests: 9, cost_usd: 0.1 },
        { variant: "production", key: "glm-4.7", requests: 2, cost_usd: 0.3 },
      ],
      ["production", "canary"],
    );
    expect(rows.map((r) => `${r.variant}/${r.key}`)).toEqual(["production/glm-4.7", "production/glm-4.5", "canary/glm-4.7"]);
  });
});
