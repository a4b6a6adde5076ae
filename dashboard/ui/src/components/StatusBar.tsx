// Connection, freshness and each variant's health. It re-renders every second from a clock
// (useNow), so "updated … ago", stale states and the reconnect countdown move on their own.
import type { DashboardStatus, TickEvent } from "../api/types";
import type { ConnectionState } from "../live/liveStream";
import { formatAge, formatPercent, formatRate, formatSeconds } from "../format";
import { isStale, shownState } from "../freshness";

export interface StatusBarProps {
  variants: string[];
  intervalS: number;
  now: number;
  connection: ConnectionState;
  latestTick: TickEvent | null;
  lastTickMs: number | null;
  status: DashboardStatus | null;
  statusError: string | null;
  onReconnect: () => void;
}

function connectionText(connection: ConnectionState, now: number): string {
  switch (connection.kind) {
    case "live":
      return "live";
    case "connecting":
      return connection.attempt ? `connecting (attempt ${connection.attempt + 1})…` : "connecting…";
    case "waiting":
      return `reconnecting in ${formatAge(Math.max(0, (connection.retryAt - now) / 1000))} (${connection.reason})`;
    case "stopped":
      return "stopped";
  }
}

export function StatusBar(props: StatusBarProps) {
  const { variants, intervalS, now, connection, latestTick, lastTickMs, status, statusError } = props;
  const stale = isStale(lastTickMs, now, intervalS);
  return (
    <section className="status-bar" data-testid="status-bar">
      <div className={`connection connection-${connection.kind}`} data-testid="connection" data-state={connection.kind}>
        <span className="dot" aria-hidden="true" />
        <span>{connectionText(connection, now)}</span>
        {connection.kind === "waiting" ? (
          <button type="button" onClick={props.onReconnect}>
            Reconnect now
          </button>
        ) : null}
      </div>
      <div className={`freshness ${stale ? "is-stale" : ""}`} data-testid="freshness" data-stale={stale ? "true" : "false"}>
        {lastTickMs === null ? "no data yet" : `updated ${formatAge((now - lastTickMs) / 1000)} ago`}
        {stale && lastTickMs !== null ? " · STALE" : ""}
      </div>
      {variants.map((variant) => {
        const vs = status?.variants[variant];
        const state = shownState(latestTick?.states[variant] ?? vs?.state, lastTickMs, now, intervalS);
        const figures = latestTick?.variants[variant] ?? vs?.last_60s ?? null;
        return (
          <div className={`variant variant-${state}`} key={variant} data-testid={`variant-${variant}`} data-state={state}>
            <span className="variant-name">{variant}</span>
            <span className={`badge badge-${state}`}>{state}</span>
            {vs ? (
              <span title="pods that answered the last scrape / pods found">
                pods {vs.pods_up}/{vs.pods_total}
              </span>
            ) : null}
            <span title="requests per second">{formatRate(figures?.requests_per_s ?? null, "req/s")}</span>
            <span title="5xx / all requests">5xx {formatPercent(figures?.error_ratio ?? null)}</span>
            <span title="latency p95">p95 {formatSeconds(figures?.latency_p95_s ?? null)}</span>
            {vs?.build?.version ? <span className="build">v{vs.build.version}</span> : null}
            {vs?.error ? <span className="variant-error" title={vs.error}>⚠</span> : null}
          </div>
        );
      })}
      {status?.storage.state === "degraded" ? (
        <div className="storage-warning">storage degraded: serving live data from memory</div>
      ) : null}
      {status?.storage.reset ? (
        <div className="storage-warning">
          database reset at start ({status.storage.reset.reason}); old file kept as {status.storage.reset.moved_to}
        </div>
      ) : null}
      {statusError ? <div className="storage-warning">status unavailable: {statusError}</div> : null}
    </section>
  );
}
