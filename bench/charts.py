"""PNG charts for the summary (matplotlib, no display). Each returns the file name it wrote, or
None when its scenario did not run."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .contestants import LABELS, ORDER as NAMES  # noqa: E402

COLORS = {"direct": "#7f7f7f", "production": "#1f77b4", "baseline": "#9467bd",
          "canary": "#2ca02c",
          "litellm": "#d62728", "nginx": "#ff7f0e"}
MIB = 1024 * 1024


def _median(entry, key):
    value = entry.get(key)
    return value.get("median") if isinstance(value, dict) else value


def _bars(ax, table: dict, levels, key, names, log=True):
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        meds, lows, highs = [], [], []
        for level in levels:
            cell = table.get(name, {}).get(level, {}).get(key) or {}
            med = cell.get("median")
            meds.append(med if med is not None else 0)
            lows.append(max(0, (med or 0) - (cell.get("min") or med or 0)))
            highs.append(max(0, (cell.get("max") or med or 0) - (med or 0)))
        xs = [j + i * width for j in range(len(levels))]
        ax.bar(xs, meds, width, yerr=[lows, highs], capsize=2, color=COLORS[name],
               label=LABELS[name])
    ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(levels))])
    ax.set_xticklabels(levels)
    if log:
        ax.set_yscale("log")
    ax.grid(axis="y", alpha=0.3)


def _save(fig, out: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out / name, dpi=100)
    plt.close(fig)
    return name


def nonstreaming(figures: dict, out: Path) -> str | None:
    ns = figures.get("nonstreaming")
    if not ns:
        return None
    table = ns["table"]
    levels = list(next(iter(table.values())).keys())
    names = [n for n in NAMES if n in table]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    _bars(a, table, levels, "throughput_rps", names)
    a.set_title("Non-streaming throughput (req/s, log)")
    a.set_xlabel("concurrent clients")
    a.legend(fontsize=8)
    proxies = [n for n in names if n != "direct"]
    _bars(b, table, levels, "added_p99_ms", proxies)
    b.axhline(5, color="black", linestyle="--", linewidth=1, label="target at 16: 5 ms")
    b.set_title("Added p99 latency vs direct (ms, log)")
    b.set_xlabel("concurrent clients")
    b.legend(fontsize=8)
    return _save(fig, out, "nonstreaming.png")


def streaming(figures: dict, out: Path) -> str | None:
    st = figures.get("streaming")
    if not st:
        return None
    table = st["table"]
    levels = list(next(iter(table.values())).keys())
    proxies = [n for n in NAMES if n in table and n != "direct"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    _bars(a, table, levels, "added_ttft_p50_ms", proxies)
    a.axhline(2, color="black", linestyle="--", linewidth=1, label="target: 2 ms")
    a.set_title("Added time to first token, p50 (ms, log)")
    a.set_xlabel("concurrent streams")
    _bars(b, table, levels, "added_gap_p99_ms", proxies)
    b.axhline(1, color="black", linestyle="--", linewidth=1, label="target: 1 ms")
    b.set_title("Added inter-chunk gap, p99 (ms, log)")
    b.set_xlabel("concurrent streams")
    b.legend(fontsize=8)
    return _save(fig, out, "streaming.png")


def held(figures: dict, raw: dict, out: Path) -> str | None:
    hc = raw["scenarios"].get("held")
    if not hc:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, result in hc["results"].items():
        pts = [(lvl["level"], (lvl["rss_peak_bytes"] - result["rss_base_bytes"]) / MIB)
               for lvl in result["levels"] if "rss_peak_bytes" in lvl]
        if pts:
            ax.plot(*zip(*pts), marker="o", color=COLORS[name], label=LABELS[name])
        bad = [lvl for lvl in result["levels"] if lvl["error_count"]]
        for lvl in bad:
            if "rss_peak_bytes" in lvl:
                ax.plot(lvl["level"], (lvl["rss_peak_bytes"] - result["rss_base_bytes"]) / MIB,
                        marker="x", markersize=12, color="black")
    top = max(hc["levels"])
    ax.plot([0, top], [0, top * 256 / 1024], linestyle="--", color="black", linewidth=1,
            label="target: 256 KiB per stream")
    ax.set_title("Extra RSS while holding N slow streams (MiB; x = errors)")
    ax.set_xlabel("concurrent streams")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out, "held.png")


def token_cost(figures: dict, out: Path) -> str | None:
    tc = figures.get("token_cost")
    if not tc:
        return None
    table = tc["table"]
    names = [n for n in NAMES if n in table]
    kinds = ["long_prompt", "long_output"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        vals = [table[name][k]["cpu_us_per_request"]["median"] or 0 for k in kinds]
        ax.bar([j + i * width for j in range(len(kinds))], [v / 1000 for v in vals], width,
               color=COLORS[name], label=LABELS[name])
    ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(kinds))])
    ax.set_xticklabels(["long prompt (non-streaming)", "long output (streamed)"])
    ax.set_yscale("log")
    ax.set_title("Contestant CPU per request (ms, log)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out, "token_cost.png")


def steady(raw: dict, out: Path) -> str | None:
    sd = raw["scenarios"].get("steady")
    if not sd or not sd["points"]:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = [p["requests"] for p in sd["points"]]
    ax.plot(xs, [p["rss_bytes"] / MIB for p in sd["points"]], marker="o",
            color=COLORS[sd["contestant"]], label="RSS (master + worker)")
    ax.plot(xs, [p["pss_bytes"] / MIB for p in sd["points"]], marker=".", linestyle=":",
            color=COLORS[sd["contestant"]], label="PSS")
    ax.set_title(f"Steady state: {LABELS[sd['contestant']]} memory (MiB)")
    ax.set_xlabel("requests served")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out, "steady.png")


def write_all(raw: dict, out: Path) -> dict:
    figures = raw["figures"]
    return {"nonstreaming": nonstreaming(figures, out), "streaming": streaming(figures, out),
            "held": held(figures, raw, out), "token_cost": token_cost(figures, out),
            "steady": steady(raw, out)}
