// The series the charts draw: what /api/series answered, extended tick by tick from the live
// stream. Times are bucket starts aligned to the step; a tick for a bucket already present
// replaces it (a replayed tick is never counted twice); a tick after a hole first adds an
// all-null row so the hole is drawn as a gap rather than bridged by a line.
import { FIGURE_KEYS, type Columns, type FigureKey, type Num, type SeriesResponse, type TickEvent } from "../api/types";

export interface SeriesData {
  t: number[];
  stepS: number;
  resolution: string;
  variants: Record<string, Columns>;
}

export function fromResponse(response: SeriesResponse, variants: string[]): SeriesData {
  const length = response.t.length;
  const out: SeriesData = { t: response.t.slice(), stepS: response.step_s, resolution: response.resolution, variants: {} };
  for (const variant of variants) {
    const source = response.variants[variant] ?? {};
    const columns: Columns = {};
    for (const key of FIGURE_KEYS) {
      const column = source[key];
      columns[key] = column && column.length === length ? column.slice() : new Array<Num>(length).fill(null);
    }
    out.variants[variant] = columns;
  }
  return out;
}

/** The id to resume the live stream after: the last bucket in which any variant has a figure. */
export function lastCollectedTime(data: SeriesData): number | null {
  for (let i = data.t.length - 1; i >= 0; i--) {
    for (const columns of Object.values(data.variants)) {
      for (const key of FIGURE_KEYS) {
        const value = columns[key]?.[i];
        if (value !== null && value !== undefined) return data.t[i];
      }
    }
  }
  return null;
}

function pushRow(data: SeriesData, t: number, figures: (variant: string, key: FigureKey) => Num): void {
  data.t.push(t);
  for (const [variant, columns] of Object.entries(data.variants)) {
    for (const key of FIGURE_KEYS) (columns[key] as Num[]).push(figures(variant, key));
  }
}

function setRow(data: SeriesData, index: number, figures: (variant: string, key: FigureKey) => Num): void {
  for (const [variant, columns] of Object.entries(data.variants)) {
    for (const key of FIGURE_KEYS) (columns[key] as Num[])[index] = figures(variant, key);
  }
}

/**
 * Adds one tick. Returns false when the tick is older than the first bucket (nothing to do).
 * Ticks arrive in order; one that lands inside the series (a replay) overwrites its bucket.
 */
export function appendTick(data: SeriesData, tick: TickEvent): boolean {
  const t = Math.floor(tick.t / data.stepS) * data.stepS;
  const figures = (variant: string, key: FigureKey): Num => {
    const value = tick.variants[variant]?.[key];
    return value === undefined ? null : value;
  };
  const last = data.t.length ? data.t[data.t.length - 1] : null;
  if (last === null || t > last) {
    if (last !== null && t - last > data.stepS) pushRow(data, last + data.stepS, () => null);
    pushRow(data, t, figures);
    return true;
  }
  // Binary search for the bucket: a replayed or repeated tick.
  let lo = 0;
  let hi = data.t.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (data.t[mid] === t) {
      setRow(data, mid, figures);
      return true;
    }
    if (data.t[mid] < t) lo = mid + 1;
    else hi = mid - 1;
  }
  if (lo === 0) return false;
  // A bucket missing from the middle (an irregular series): insert it in order.
  data.t.splice(lo, 0, t);
  for (const [variant, columns] of Object.entries(data.variants)) {
    for (const key of FIGURE_KEYS) (columns[key] as Num[]).splice(lo, 0, figures(variant, key));
  }
  return true;
}

/** Drops buckets that started before `from` (the window slides as ticks arrive). */
export function trimBefore(data: SeriesData, from: number): void {
  let drop = 0;
  while (drop < data.t.length && data.t[drop] < from) drop++;
  if (drop === 0) return;
  data.t.splice(0, drop);
  for (const columns of Object.values(data.variants)) {
    for (const key of FIGURE_KEYS) (columns[key] as Num[]).splice(0, drop);
  }
}

/** The sum of a column's non-null values (e.g. cost_usd over the range), null when all are null. */
export function columnSum(data: SeriesData, variant: string, key: FigureKey): Num {
  const column = data.variants[variant]?.[key];
  if (!column) return null;
  let total = 0;
  let seen = false;
  for (const value of column) {
    if (value !== null && value !== undefined) {
      total += value;
      seen = true;
    }
  }
  return seen ? total : null;
}

/** The last non-null value of a column, null when there is none. */
export function lastValue(data: SeriesData, variant: string, key: FigureKey): Num {
  const column = data.variants[variant]?.[key];
  if (!column) return null;
  for (let i = column.length - 1; i >= 0; i--) {
    const value = column[i];
    if (value !== null && value !== undefined) return value;
  }
  return null;
}

/**
 * uPlot's AlignedData for one panel: [t, then one column per (variant, key)], variant-major.
 * Columns are the stored arrays themselves (no copy); null stays null, which uPlot draws as a gap.
 */
export function panelData(data: SeriesData, variants: string[], keys: FigureKey[]): (number | null)[][] {
  const out: (number | null)[][] = [data.t];
  for (const variant of variants) {
    for (const key of keys) {
      const column = (data.variants[variant]?.[key] ?? new Array<Num>(data.t.length).fill(null)) as Num[];
      out.push(column);
    }
  }
  return out;
}
