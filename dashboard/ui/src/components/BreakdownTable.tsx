// Breakdown tables from /api/breakdown: per-model spend, and counts per key and variant.
import type { BreakdownResponse } from "../api/types";
import { modelRows, pivot } from "../data/breakdown";
import { formatCount, formatUsd } from "../format";

export function PivotTable({ title, unit, response, variants }: { title: string; unit: string; response: BreakdownResponse | undefined; variants: string[] }) {
  const rows = response ? pivot(response.rows, variants) : [];
  return (
    <table className="breakdown" data-breakdown={response?.by}>
      <caption>
        {title} <span className="unit">({unit} over the range)</span>
      </caption>
      <thead>
        <tr>
          <th scope="col">{response?.by?.replace("_", " ") ?? "key"}</th>
          {variants.map((v) => (
            <th scope="col" key={v}>
              {v}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>
        {rows.length === 0 ? (
          <tr>
            <td colSpan={variants.length + 1} className="empty">
              {response ? "none in this range" : "loading…"}
            </td>
          </tr>
        ) : (
          rows.map((row) => (
            <tr key={row.key}>
              <th scope="row">{row.key}</th>
              {variants.map((v) => (
                <td key={v}>{formatCount(row.values[v] ?? 0)}</td>
              ))}
            </tr>
          ))
        )}
      </tbody>
    </table>
  );
}

export function ModelTable({ response, variants }: { response: BreakdownResponse | undefined; variants: string[] }) {
  const rows = response ? modelRows(response.rows, variants) : [];
  // The proxy counts requests per model only where its metrics carry a model label.
  const showRequests = rows.some((row) => row.requests !== null && row.requests !== undefined);
  const columns = showRequests ? 7 : 6;
  return (
    <table className="breakdown" data-breakdown="model">
      <caption>
        Per model <span className="unit">(over the range; ≈ marks estimated tokens)</span>
      </caption>
      <thead>
        <tr>
          <th scope="col">variant</th>
          <th scope="col">model</th>
          {showRequests ? <th scope="col">requests</th> : null}
          <th scope="col">input tokens</th>
          <th scope="col">output tokens</th>
          <th scope="col">≈ estimated tokens</th>
          <th scope="col">cost (USD)</th>
        </tr>
      </thead>
      <tbody>
        {rows.length === 0 ? (
          <tr>
            <td colSpan={columns} className="empty">
              {response ? "no requests in this range" : "loading…"}
            </td>
          </tr>
        ) : (
          rows.map((row) => (
            <tr key={`${row.variant}/${row.key}`}>
              <td>{row.variant}</td>
              <th scope="row">{row.key}</th>
              {showRequests ? <td>{formatCount(row.requests ?? null)}</td> : null}
              <td>{formatCount(row.input_tokens ?? null)}</td>
              <td>{formatCount(row.output_tokens ?? null)}</td>
              <td>{row.estimated_tokens ? `≈ ${formatCount(row.estimated_tokens)}` : formatCount(row.estimated_tokens ?? null)}</td>
              <td>{formatUsd(row.cost_usd ?? null)}</td>
            </tr>
          ))
        )}
      </tbody>
    </table>
  );
}
