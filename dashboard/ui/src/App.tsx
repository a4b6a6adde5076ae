// The page: verdict, status bar, toolbar, then the charts. Wiring only; the data lives in
// useDashboard and the view state in the URL (useViewState).
import { useEffect, useMemo, useState } from "react";
import { api } from "./api/client";
import type { DashboardConfig } from "./api/types";
import { Panels } from "./components/Panels";
import { StatusBar } from "./components/StatusBar";
import { Toolbar } from "./components/Toolbar";
import { VerdictBanner } from "./components/VerdictBanner";
import { useNow } from "./freshness";
import { useDashboard } from "./useDashboard";
import { useViewState } from "./useViewState";
import { RANGES, rangeSeconds, type Theme } from "./urlState";

function systemTheme(): Theme {
  return window.matchMedia?.("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

export function App() {
  const [config, setConfig] = useState<DashboardConfig | null>(null);
  const [configError, setConfigError] = useState<string | null>(null);
  const [view, setView] = useViewState(config?.ranges);
  const theme: Theme = view.theme ?? systemTheme();
  const dashboard = useDashboard(config, view.range, view.step);
  const now = useNow(1000);

  useEffect(() => {
    let cancelled = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const load = () =>
      api.config().then(
        (c) => !cancelled && setConfig(c),
        (error: unknown) => {
          if (cancelled) return;
          setConfigError(error instanceof Error ? error.message : String(error));
          timer = setTimeout(load, 3000);
        },
      );
    void load();
    return () => {
      cancelled = true;
      clearTimeout(timer);
    };
  }, []);

  useEffect(() => {
    document.documentElement.dataset.theme = theme;
  }, [theme]);

  const series = dashboard.series;
  const seconds = rangeSeconds(view.range) ?? 3600;
  const xWindow = useMemo<[number, number]>(() => {
    const end = series && series.t.length ? series.t[series.t.length - 1] + series.stepS : Math.floor(Date.now() / 1000);
    return [end - seconds, end];
  }, [series, dashboard.version, seconds]); // the series object is mutated in place; version marks changes

  if (!config) {
    return (
      <main className="app">
        <h1>zai-proxy dashboard</h1>
        <p>{configError ? `Cannot reach the dashboard service: ${configError} (retrying)` : "Loading…"}</p>
      </main>
    );
  }

  return (
    <main className="app">
      <header className="app-header">
        <h1>zai-proxy: {config.variants.join(" vs ")}</h1>
        <span className="meta">
          dashboard v{config.version} · scrape every {config.scrape_interval_s} s · source {config.source}
          {series ? ` · ${view.range} at ${series.stepS} s steps (${series.resolution})` : ""}
        </span>
      </header>
      <VerdictBanner verdict={dashboard.verdict} error={dashboard.verdictError} tz={view.tz} />
      <StatusBar
        variants={config.variants}
        intervalS={config.scrape_interval_s}
        now={now}
        connection={dashboard.connection}
        latestTick={dashboard.latestTick}
        lastTickMs={dashboard.lastTickMs}
        status={dashboard.status}
        statusError={dashboard.statusError}
        onReconnect={dashboard.reconnectNow}
      />
      <Toolbar
        ranges={config.ranges.length ? config.ranges : [...RANGES]}
        range={view.range}
        tz={view.tz}
        theme={theme}
        loading={dashboard.loading}
        onRange={(range) => setView({ range, step: null })}
        onTz={(tz) => setView({ tz })}
        onTheme={(t) => setView({ theme: t })}
      />
      {dashboard.seriesError ? <p className="error" role="alert">Series unavailable: {dashboard.seriesError} (retrying)</p> : null}
      {series ? (
        <Panels
          series={series}
          version={dashboard.version}
          variants={config.variants}
          window={xWindow}
          theme={theme}
          tz={view.tz}
          now={now}
          status={dashboard.status}
          breakdowns={dashboard.breakdowns}
        />
      ) : (
        <p>Loading the {view.range} series…</p>
      )}
      <footer className="app-footer">
        Times in {view.tz === "utc" ? "UTC" : "local time"}. Production solid, canary dashed. A gap in a line means no data was collected.
      </footer>
    </main>
  );
}
