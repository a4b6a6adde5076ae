// @vitest-environment jsdom
import { act, cleanup, render, screen } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { useNow } from "../freshness";
import { StatusBar } from "./StatusBar";
import { VerdictBanner } from "./VerdictBanner";
import { status, tick, verdict } from "../test/fixtures";
import type { TickEvent } from "../api/types";

/** The status bar as the app mounts it: its clock is useNow, nothing else re-renders it. */
function Clocked({ latestTick, lastTickMs }: { latestTick: TickEvent; lastTickMs: number }) {
  const now = useNow(1000);
  return (
    <StatusBar
      variants={["production", "canary"]}
      intervalS={5}
      now={now}
      connection={{ kind: "live", since: lastTickMs }}
      latestTick={latestTick}
      lastTickMs={lastTickMs}
      status={status}
      statusError={null}
      onReconnect={() => {}}
    />
  );
}

describe("status bar", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(new Date(1_765_000_000_000));
  });
  afterEach(() => {
    cleanup();
    vi.useRealTimers();
  });

  it("turns stale on its own clock when ticks stop, with no new data", () => {
    render(<Clocked latestTick={tick(1765000000, 3.2, 1.1)} lastTickMs={Date.now()} />);
    expect(screen.getByTestId("freshness").dataset.stale).toBe("false");
    expect(screen.getByTestId("variant-canary").dataset.state).toBe("up");
    act(() => void vi.advanceTimersByTime(10_000)); // exactly 2 intervals: not yet
    expect(screen.getByTestId("freshness").dataset.stale).toBe("false");
    act(() => void vi.advanceTimersByTime(1_000));
    expect(screen.getByTestId("freshness").dataset.stale).toBe("true");
    expect(screen.getByTestId("freshness").textContent).toContain("updated 11 s ago");
    expect(screen.getByTestId("variant-canary").dataset.state).toBe("stale");
  });

  it("shows the service's state of each variant from the latest tick", () => {
    render(<Clocked latestTick={tick(1765000000, 3.2, null, { production: "up", canary: "down" })} lastTickMs={Date.now()} />);
    expect(screen.getByTestId("variant-production").dataset.state).toBe("up");
    expect(screen.getByTestId("variant-canary").dataset.state).toBe("down");
    expect(screen.getByTestId("variant-canary").textContent).toContain("– req/s");
    expect(screen.getByTestId("variant-production").textContent).toContain("pods 2/2");
    expect(screen.getByTestId("variant-production").textContent).toContain("3.20 req/s");
  });

  it("counts the reconnect down", () => {
    const now = Date.now();
    render(
      <StatusBar
        variants={["production"]}
        intervalS={5}
        now={now}
        connection={{ kind: "waiting", attempt: 2, retryAt: now + 4000, reason: "HTTP 503" }}
        latestTick={null}
        lastTickMs={null}
        status={null}
        statusError={null}
        onReconnect={() => {}}
      />,
    );
    expect(screen.getByTestId("connection").textContent).toContain("reconnecting in 4 s (HTTP 503)");
    expect(screen.getByRole("button", { name: "Reconnect now" })).toBeTruthy();
  });
});

describe("verdict banner", () => {
  afterEach(cleanup);

  it("shows the verdict and every reason, failures marked", () => {
    render(<VerdictBanner verdict={verdict} error={null} tz="utc" />);
    const banner = screen.getByTestId("verdict");
    expect(banner.dataset.verdict).toBe("rollback");
    expect(banner.textContent).toContain("ROLLBACK");
    expect(banner.textContent).toContain("evaluated 2025-12-06 05:46:40 UTC");
    const failed = banner.querySelector('[data-check="error_ratio"]')!;
    expect(failed.className).toContain("reason-fail");
    expect(failed.textContent).toContain("limit 2 × (0.3 % + 1 %) = 2.6 %");
    expect(banner.querySelectorAll("li")).toHaveLength(4);
  });

  it("says when the verdict cannot be had", () => {
    render(<VerdictBanner verdict={null} error="/api/verdict: 500 boom" tz="local" />);
    expect(screen.getByTestId("verdict").textContent).toContain("Verdict unavailable: /api/verdict: 500 boom");
  });
});
