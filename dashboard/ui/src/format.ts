// Every number the UI shows goes through here, with its unit; null (no data) is shown as "–".
import type { Num } from "./api/types";

export const NO_DATA = "–";

export type Unit = "req/s" | "errors/s" | "retries/s" | "tok/s" | "ratio" | "seconds" | "usd" | "usd/h" | "requests" | "pods";

function trim(value: number, digits: number): string {
  return value.toFixed(digits);
}

/** A value with about three significant digits (1.23, 12.3, 123, 1,234). */
function sig(value: number): string {
  const abs = Math.abs(value);
  if (abs === 0) return "0";
  if (abs >= 1000) return Math.round(value).toLocaleString("en-US");
  if (abs >= 100) return trim(value, 0);
  if (abs >= 10) return trim(value, 1);
  if (abs >= 0.01) return trim(value, 2);
  return value.toPrecision(2);
}

/** A rate with its unit; no data still names the unit ("– req/s"). */
export function formatRate(value: Num | undefined, unit: string): string {
  if (value === null || value === undefined) return `${NO_DATA} ${unit}`;
  return `${sig(value)} ${unit}`;
}

export function formatPercent(ratio: Num | undefined): string {
  if (ratio === null || ratio === undefined) return NO_DATA;
  const pct = ratio * 100;
  if (pct === 0) return "0 %";
  if (Math.abs(pct) < 0.01) return "< 0.01 %";
  return `${Math.abs(pct) >= 10 ? pct.toFixed(1) : pct.toFixed(2)} %`;
}

export function formatSeconds(value: Num | undefined): string {
  if (value === null || value === undefined) return NO_DATA;
  if (value === 0) return "0 ms";
  if (Math.abs(value) < 1) {
    const ms = value * 1000;
    return `${ms >= 10 ? Math.round(ms) : ms.toPrecision(2)} ms`;
  }
  if (value < 120) return `${value.toFixed(2)} s`;
  return `${(value / 60).toFixed(1)} min`;
}

export function formatUsd(value: Num | undefined): string {
  if (value === null || value === undefined) return NO_DATA;
  if (value === 0) return "$0.00";
  if (Math.abs(value) < 0.01) return `$${value.toPrecision(2)}`;
  return `$${value.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
}

export function formatCount(value: Num | undefined, unit = ""): string {
  if (value === null || value === undefined) return NO_DATA;
  const text = Number.isInteger(value) ? value.toLocaleString("en-US") : sig(value);
  return unit ? `${text} ${unit}` : text;
}

/** A value in a unit, as the charts' legends and axes show it. */
export function formatUnit(value: Num | undefined, unit: Unit): string {
  switch (unit) {
    case "ratio":
      return formatPercent(value);
    case "seconds":
      return formatSeconds(value);
    case "usd":
      return formatUsd(value);
    case "usd/h":
      return value === null || value === undefined ? NO_DATA : `${formatUsd(value)}/h`;
    case "requests":
    case "pods":
      return formatCount(value, unit);
    default:
      return formatRate(value, unit);
  }
}

/** Axis tick labels: short, unit in the axis title. */
export function formatAxis(value: number, unit: Unit): string {
  switch (unit) {
    case "ratio":
      return `${+(value * 100).toPrecision(3)}%`;
    case "seconds":
      return value < 1 ? `${+(value * 1000).toPrecision(3)}ms` : `${+value.toPrecision(3)}s`;
    case "usd":
    case "usd/h":
      return `$${+value.toPrecision(3)}`;
    default:
      return sig(value);
  }
}

export type TimeZoneMode = "local" | "utc";

function pad(n: number): string {
  return String(n).padStart(2, "0");
}

/** "2025-12-06 14:05:09 UTC" or the same in local time with its offset ("… +01:00"). */
export function formatTime(unixSeconds: number, zone: TimeZoneMode): string {
  const d = new Date(unixSeconds * 1000);
  if (zone === "utc") {
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
  }
  const offset = -d.getTimezoneOffset();
  const sign = offset >= 0 ? "+" : "-";
  const abs = Math.abs(offset);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

/** "4 s", "2 min", "3 h" (for "updated … ago" and countdowns). */
export function formatAge(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}
