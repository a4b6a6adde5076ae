// The chart grid: one card per chart (title with its unit, the line-style key), with the
// cost totals, the per-model table, quota resets and the error tables beside their charts.
import { useMemo } from "react";
import type { BreakdownBy, BreakdownResponse, DashboardStatus } from "../api/types";
import { columnSum, panelData, type SeriesData } from "../data/liveSeries";
import { formatAge, formatPercent, formatUsd, type TimeZoneMode } from "../format";
import { CHARTS, type ChartSpec } from "../panels";
import type { Theme } from "../urlState";
import { Chart } from "./Chart";
import { ModelTable, PivotTable } from "./BreakdownTable";

export interface PanelsProps {
  series: SeriesData;
  version: number;
  variants: string[];
  window: [number, number];
  theme: Theme;
  tz: TimeZoneMode;
  now: number;
  status: DashboardStatus | null;
  breakdowns: Partial<Record<BreakdownBy, BreakdownResponse>>;
}

const UNIT_TITLE: Record<string, string> = {
  "req/s": "req/s",
  ratio: "%",
  seconds: "s",
  "tok/s": "tokens/s",
  "usd/h": "USD/h",
  requests: "requests",
  "errors/s": "per s",
};

function LineKey({ variants }: { variants: string[] }) {
  return (
    <span className="line-key">
      {variants.map((v, i) => (
        <span key={v} className={i === 0 ? "solid" : "dashed"}>
          {v}
        </span>
      ))}
    </span>
  );
}

function Extra({ spec, props }: { spec: ChartSpec; props: PanelsProps }) {
  const { series, variants, status, breakdowns, now } = props;
  if (spec.id === "cost") {
    return (
      <>
        <dl className="totals" data-testid="cost-totals">
          {variants.map((v) => (
            <div key={v}>
              <dt>{v}, total over the range</dt>
              <dd>{formatUsd(columnSum(series, v, "cost_usd"))}</dd>
            </div>
          ))}
        </dl>
        <ModelTable response={breakdowns.model} variants={variants} />
      </>
    );
  }
  if (spec.id === "quota") {
    return (
      <dl className="totals">
        {variants.map((v) => {
          const quota = status?.variants[v]?.quota;
          const until = (reset: number | null | undefined) => (reset ? `resets in ${formatAge(reset - now / 1000)}` : "reset unknown");
          return (
            <div key={v}>
              <dt>{v}</dt>
              <dd>
                {quota && (quota.five_hour_used_ratio !== null || quota.weekly_used_ratio !== null)
                  ? `5 h: ${formatPercent(quota.five_hour_used_ratio)} (${until(quota.five_hour_reset)}) · weekly: ${formatPercent(quota.weekly_used_ratio)} (${until(quota.weekly_reset)})`
                  : "no quota figures (the proxy's quota polling is off)"}
              </dd>
            </div>
          );
        })}
      </dl>
    );
  }
  if (spec.id === "errors") {
    return (
      <div className="tables">
        <PivotTable title="Upstream errors by type" unit="errors" response={breakdowns.error_type} variants={variants} />
        <PivotTable title="Z.AI errors by class" unit="errors" response={breakdowns.zai_class} variants={variants} />
        <PivotTable title="Retries by reason" unit="retries" response={breakdowns.retry_reason} variants={variants} />
      </div>
    );
  }
  return null;
}

function Panel({ spec, props }: { spec: ChartSpec; props: PanelsProps }) {
  const { series, version, variants, theme, tz } = props;
  const keys = useMemo(() => spec.series.map((s) => s.key), [spec]);
  // The columns grow in place as ticks arrive: `version` says when to hand uPlot new arrays.
  const data = useMemo(() => panelData(series, variants, keys), [series, version, variants, keys]);
  const wide = spec.id === "cost";
  return (
    <article className={`panel ${wide ? "panel-wide" : ""}`} data-panel={spec.id}>
      <header>
        <h3>
          {spec.title} <span className="unit">({UNIT_TITLE[spec.unit] ?? spec.unit})</span>
        </h3>
        <LineKey variants={variants} />
      </header>
      <Chart spec={spec} variants={variants} data={data} version={version} theme={theme} tz={tz} window={props.window} />
      {spec.note ? <p className="note">{spec.note}</p> : null}
      <Extra spec={spec} props={props} />
    </article>
  );
}

export function Panels(props: PanelsProps) {
  return (
    <div className="panels">
      {CHARTS.map((spec) => (
        <Panel key={spec.id} spec={spec} props={props} />
      ))}
    </div>
  );
}
