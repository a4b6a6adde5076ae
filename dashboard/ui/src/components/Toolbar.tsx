// Range, time zone, theme and CSV export. The range is part of the URL (see urlState.ts).
import { exportCsvUrl } from "../api/client";
import type { TimeZoneMode } from "../format";
import type { Theme } from "../urlState";

export interface ToolbarProps {
  ranges: string[];
  range: string;
  tz: TimeZoneMode;
  theme: Theme;
  loading: boolean;
  onRange(range: string): void;
  onTz(tz: TimeZoneMode): void;
  onTheme(theme: Theme): void;
}

export function Toolbar({ ranges, range, tz, theme, loading, onRange, onTz, onTheme }: ToolbarProps) {
  return (
    <nav className="toolbar" aria-label="view">
      <div className="ranges" role="group" aria-label="time range">
        {ranges.map((r) => (
          <button key={r} type="button" className={r === range ? "active" : ""} aria-pressed={r === range} data-range={r} onClick={() => onRange(r)}>
            {r}
          </button>
        ))}
        {loading ? <span className="loading">loading…</span> : null}
      </div>
      <div className="toggles">
        <button type="button" data-testid="tz-toggle" onClick={() => onTz(tz === "utc" ? "local" : "utc")} title="time zone of the axes and times">
          {tz === "utc" ? "UTC" : "Local time"}
        </button>
        <button type="button" data-testid="theme-toggle" onClick={() => onTheme(theme === "dark" ? "light" : "dark")}>
          {theme === "dark" ? "Dark" : "Light"} theme
        </button>
        <a className="button" data-testid="csv-export" href={exportCsvUrl(range)} download>
          Export CSV
        </a>
      </div>
    </nav>
  );
}
