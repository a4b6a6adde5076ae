// /api/breakdown rows turned into tables: one row per key, one column per variant, the largest
// first. Error types and retry reasons carry `count`, the others `requests`.
import type { BreakdownRow } from "../api/types";

export interface PivotRow {
  key: string;
  values: Record<string, number>;
  total: number;
}

export function rowAmount(row: BreakdownRow): number {
  return row.count ?? row.requests ?? 0;
}

export function pivot(rows: BreakdownRow[], variants: string[]): PivotRow[] {
  const byKey = new Map<string, PivotRow>();
  for (const row of rows) {
    if (!variants.includes(row.variant)) continue;
    let entry = byKey.get(row.key);
    if (!entry) {
      entry = { key: row.key, values: {}, total: 0 };
      byKey.set(row.key, entry);
    }
    const amount = rowAmount(row);
    entry.values[row.variant] = (entry.values[row.variant] ?? 0) + amount;
    entry.total += amount;
  }
  return [...byKey.values()].sort((a, b) => b.total - a.total || a.key.localeCompare(b.key));
}

/** Model rows in variant order, then by cost (unknown cost last), then by requests. */
export function modelRows(rows: BreakdownRow[], variants: string[]): BreakdownRow[] {
  return rows
    .filter((row) => variants.includes(row.variant))
    .slice()
    .sort(
      (a, b) =>
        variants.indexOf(a.variant) - variants.indexOf(b.variant) ||
        (b.cost_usd ?? -1) - (a.cost_usd ?? -1) ||
        (b.requests ?? 0) - (a.requests ?? 0),
    );
}
