// The canary verdict from /api/verdict, at the top of the page, with the checks behind it.
import type { VerdictResponse } from "../api/types";
import { formatAge, formatTime, type TimeZoneMode } from "../format";

const HEADLINE: Record<string, string> = {
  promote: "Promote the canary",
  hold: "Hold: not enough to decide",
  rollback: "Roll the canary back",
};

const MARK: Record<string, string> = { pass: "✓", fail: "✗", insufficient: "…" };

export interface VerdictBannerProps {
  verdict: VerdictResponse | null;
  error: string | null;
  tz: TimeZoneMode;
}

export function VerdictBanner({ verdict, error, tz }: VerdictBannerProps) {
  if (!verdict) {
    return (
      <section className="verdict verdict-none" data-testid="verdict" aria-live="polite">
        <h2>Canary verdict</h2>
        <p>{error ? `Verdict unavailable: ${error}` : "Evaluating…"}</p>
      </section>
    );
  }
  return (
    <section className={`verdict verdict-${verdict.verdict}`} data-testid="verdict" data-verdict={verdict.verdict} aria-live="polite">
      <div className="verdict-head">
        <span className="verdict-word">{verdict.verdict.toUpperCase()}</span>
        <h2>{HEADLINE[verdict.verdict] ?? verdict.verdict}</h2>
        <span className="verdict-meta">
          over the last {formatAge(verdict.window_s)} · evaluated {formatTime(verdict.evaluated_at, tz)}
          {error ? ` · refresh failed: ${error}` : ""}
        </span>
      </div>
      <ul className="verdict-reasons">
        {verdict.reasons.map((reason) => (
          <li key={reason.check} className={`reason reason-${reason.status}`} data-check={reason.check}>
            <span className="reason-mark" aria-label={reason.status}>
              {MARK[reason.status] ?? "?"}
            </span>
            <span className="reason-check">{reason.check.replace(/_/g, " ")}</span>
            <span className="reason-message">{reason.message}</span>
          </li>
        ))}
      </ul>
    </section>
  );
}
