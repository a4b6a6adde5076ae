"""summary.md from latest.json: targets first, then one section per scenario, each figure with
its range over repetitions and its ratio to the direct path and to the peers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .contestants import LABELS, ORDER as NAMES

MIB = 1024 * 1024


def _n(value, digits=2):
    if value is None:
        return "–"
    if isinstance(value, float) and abs(value) >= 100:
        return f"{value:,.0f}"
    if isinstance(value, (int,)) and not isinstance(value, bool):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def _s(cell, digits=2):
    """'median (min–max)' for a spread."""
    if not isinstance(cell, dict) or cell.get("median") is None:
        return "–"
    if cell["n"] <= 1 or cell["min"] == cell["max"]:
        return _n(cell["median"], digits)
    return f"{_n(cell['median'], digits)} ({_n(cell['min'], digits)}–{_n(cell['max'], digits)})"


def _x(value):
    if value is None:
        return "–"
    if 0 <= value < 0.001:
        return "< 0.001×"
    return f"{value:.3f}×" if abs(value) < 0.1 else f"{value:.2f}×"


def _targets(figures) -> list[str]:
    lines = ["## Targets", "",
             "| target | contestant | measured | goal | result |", "|---|---|---|---|---|"]
    for t in figures["targets"]:
        unit = t["unit"]
        goal = (f"≥ {_n(t['limit'])} {unit}" if t["id"].startswith(("ns_tput", "held_streams"))
                else f"≤ {_n(t['limit'])} {unit}")
        if t["pass"] is None:
            verdict = "not measured"
        elif t["pass"]:
            verdict = "met" + (f" ({t['detail']})" if t["detail"] else "")
        else:
            verdict = f"**missed**, {t['miss_factor']}× off" if t["miss_factor"] else "**missed**"
        lines.append(f"| {t['target']} | {t['contestant']} | {_n(t['measured'])} {unit} | "
                     f"{goal} | {verdict} |")
    return lines + [""]


def _tables_per_level(section, unit: str, header: str, row) -> list[str]:
    """One table per concurrency level; `row(name, level, cell)` renders a contestant's row."""
    lines = []
    for level in section["ratios"]:
        lines += [f"**{level} concurrent {unit}{'s' if level != '1' else ''}**", "", header,
                  "|---" * header.count(" | ") + "|---|"]
        for name in NAMES:
            cell = section["table"].get(name, {}).get(level)
            if cell:
                lines.append(row(name, level, cell))
        lines.append("")
    return lines


def _nonstreaming(figures, chart) -> list[str]:
    ns = figures.get("nonstreaming")
    if not ns:
        return []
    lines = ["## 1. Non-streaming chat completions", "",
             "wrk closed loop (C connections = C concurrent clients). Latency at the client; "
             "'added' = contestant minus direct in the same repetition. Median of the "
             "repetitions, (min–max) after it.", ""]
    def row(name, level, cell):
        r = ns["ratios"][level]["throughput"].get(name, {})
        return (f"| {LABELS[name]} | {_s(cell['throughput_rps'], 0)} | {_x(r.get('vs_direct'))} "
                f"| {_x(r.get('vs_litellm'))} | {_x(r.get('vs_nginx'))} | {_s(cell['p50_ms'])} | "
                f"{_s(cell['p99_ms'])} | {_s(cell.get('added_p50_ms'))} | "
                f"{_s(cell.get('added_p99_ms'))} | {_s(cell['cpu_us_per_request'], 0)} | "
                f"{cell['errors']} |")
    lines += _tables_per_level(ns, "client", "| contestant | req/s | ×direct | ×LiteLLM | ×nginx "
                               "| p50 ms | p99 ms | added p50 ms | added p99 ms | CPU µs/req | "
                               "errors |", row)
    if chart:
        lines += [f"![non-streaming]({chart})", ""]
    return lines


def _streaming(figures, raw, chart) -> list[str]:
    st = figures.get("streaming")
    if not st:
        return []
    s = raw["scenarios"]["streaming"]
    lines = ["## 2. Streaming", "",
             f"Each stream: {s['chunks']} content events paced by the fake "
             f"(`{s['model'].split('@', 1)[1]}`). Clients start staggered over "
             f"{s['stagger_s']} s and run {s['warmup_streams_per_client']} unmeasured stream "
             "first, so measured streams overlap in a steady state. TTFT = request sent → first "
             "content event; gap = time between consecutive content events at the client. "
             f"Ratios to a peer are left out where the peer adds under 0.5 ms (noise).", ""]
    def row(name, level, cell):
        r = st["ratios"][level]["added_ttft_p50_ms"].get(name, {})
        return (f"| {LABELS[name]} | {_s(cell['ttft_p50_ms'])} | "
                f"{_s(cell.get('added_ttft_p50_ms'))} | {_s(cell.get('added_ttft_p99_ms'))} | "
                f"{_s(cell['gap_p99_ms'])} | {_s(cell.get('added_gap_p99_ms'))} | "
                f"{_x(r.get('vs_litellm'))} | {_x(r.get('vs_nginx'))} | {cell['lost_chunks']} | "
                f"{cell['errors']} | {_s(cell['cpu_us_per_stream'], 0)} |")
    lines += _tables_per_level(st, "stream", "| contestant | TTFT p50 ms | added TTFT p50 | "
                               "added TTFT p99 | gap p99 ms | added gap p99 | added TTFT p50 "
                               "×LiteLLM | ×nginx | lost chunks | errors | CPU µs/stream |", row)
    if chart:
        lines += [f"![streaming]({chart})", ""]
    return lines


def _held(figures, raw, chart) -> list[str]:
    hc = figures.get("held")
    if not hc:
        return []
    h = raw["scenarios"]["held"]
    lines = ["## 3. Held concurrency", "",
             f"N slow streams (`{h['model'].split('@', 1)[1]}`) opened over {h['stagger_s']} s "
             f"and held together, N in {', '.join(map(str, h['levels']))}; a fresh process per "
             "contestant; stops at the first level with an error. RSS per extra stream = (peak "
             "RSS during the level − RSS before the first level) ÷ N, all processes of the "
             f"contestant (zai-proxy: MAX_WORKERS={h['max_workers']}). A stream is an error "
             f"when it fails or takes over {h.get('timeout_s', '?')} s; a contestant gets "
             f"{h.get('budget_s', '?')} s, past which no higher level is started. The direct "
             "path runs the largest level only (it shows the fake and the client hold it).", "",
             "| contestant | most streams, no error | base RSS MiB | "
             + " | ".join(f"KiB/stream @{lvl}" for lvl in h["levels"]) + " | first failure |",
             "|---|---|---|" + "---|" * len(h["levels"]) + "---|"]
    for name in NAMES:
        cell = hc.get(name)
        if not cell:
            continue
        most = f"{cell['max_streams_without_error']:,}" + (
            " (all levels)" if cell["all_levels_passed"] else
            " (time budget)" if cell.get("not_tried_time_budget") else "")
        per = " | ".join(_n(cell["rss_per_stream_kib"].get(str(lvl)), 0) for lvl in h["levels"])
        fail = cell["first_failure"]
        fail_text = (f"{fail['level']}: " + ", ".join(
            f"{n} {kind}" for kind, n in fail["errors"].items())
            + f"; {fail['lost_chunks']} chunks lost" if fail else "–")
        lines.append(f"| {LABELS[name]} | {most} | {_n(cell['rss_base_mib'], 1)} | {per} | "
                     f"{fail_text} |")
    lines += ["", "Seconds until every stream of the level had its first token (streams are "
              f"opened over {h['stagger_s']} s, so {h['stagger_s']} is the floor):", "",
              "| contestant | " + " | ".join(f"@{lvl}" for lvl in h["levels"]) + " |",
              "|---|" + "---|" * len(h["levels"])]
    for name in NAMES:
        cell = hc.get(name)
        if cell:
            lines.append(f"| {LABELS[name]} | " + " | ".join(
                _n(cell["all_first_token_s"].get(str(lvl))) for lvl in h["levels"]) + " |")
    lines.append("")
    if chart:
        lines += [f"![held]({chart})", ""]
    return lines


def _token_cost(figures, raw, chart) -> list[str]:
    tc = figures.get("token_cost")
    if not tc:
        return []
    t = raw["scenarios"]["token_cost"]
    lines = ["## 4. Token-counting cost", "",
             f"Contestant CPU (user + system, all its processes) per request. Long prompt: "
             f"{t['prompt_chars']:,} characters, non-streaming, 4 clients. Long output: "
             f"{t['output_chunks']:,} streamed content events (`"
             f"{t['output_model'].split('@', 1)[1]}`), {t['output_concurrency']} clients. "
             "Counting is on in the canary and off in production.", "",
             "| contestant | long prompt µs/req | long output µs/stream |", "|---|---|---|"]
    for name in NAMES:
        cell = tc["table"].get(name)
        if cell:
            lines.append(f"| {LABELS[name]} | {_s(cell['long_prompt']['cpu_us_per_request'], 0)}"
                         f" | {_s(cell['long_output']['cpu_us_per_request'], 0)} |")
    ratio = tc.get("canary_vs_production", {})
    lines += ["", f"Counting on ÷ off: long prompt {_x(ratio.get('long_prompt'))}, long output "
              f"{_x(ratio.get('long_output'))}.", ""]
    if chart:
        lines += [f"![token cost]({chart})", ""]
    return lines


def _steady(figures, chart) -> list[str]:
    sd = figures.get("steady")
    if not sd:
        return []
    lines = ["## 5. Steady state", "",
             f"A fresh {LABELS[sd['contestant']]} serving {sd['total_requests']:,} non-streaming "
             f"requests ({sd.get('concurrency') or '?'} connections, {sd['errors']} errors). "
             "RSS = master + worker.", "",
             "| after | RSS MiB |", "|---|---|",
             f"| {sd['first_requests']:,} requests | {sd['rss_first_mib']} |",
             f"| {sd['warm_requests']:,} requests (end of warm-up) | {sd['rss_warm_mib']} |",
             f"| {sd['last_requests']:,} requests | {sd['rss_last_mib']} |", "",
             f"Growth after warm-up: {sd['growth_mib_per_10k']} MiB per 10k requests (end − "
             f"warm-up); least-squares slope {sd['slope_mib_per_10k']} MiB per 10k; "
             f"{sd['growth_since_first_mib']} MiB in total since {sd['first_requests']:,}.", ""]
    if chart:
        lines += [f"![steady]({chart})", ""]
    return lines


def _why(figures) -> list[str]:
    """The first-order reason behind throughput and latency: CPU per request on one core."""
    ns = figures.get("nonstreaming")
    if not ns:
        return []
    lines = ["## Why (first order)", "",
             "Every proxy here has one worker process on one dedicated core, and every "
             "non-streaming run drives it to saturation (closed loop), so its throughput is about "
             "1 s of CPU ÷ its CPU per request, and its latency at C clients is about C ÷ its "
             "throughput. CPU per request at 16 clients:", ""]
    for name in NAMES:
        cell = ns["table"].get(name, {}).get("16")
        if cell and name != "direct":
            cpu = cell["cpu_us_per_request"]["median"]
            share = cell["contestant_cpu_share"]["median"]
            if cpu:
                lines.append(f"- {LABELS[name]}: {cpu:,.0f} µs per request, core "
                             f"{share * 100:.0f} % busy → ceiling ≈ {1e6 / cpu:,.0f} req/s")
    lines += ["", "A core share well under 100 % means the contestant is not CPU-bound: nginx "
              "waits on the environment core (the fake and the client), zai-proxy on hand-offs "
              "between its threads (GIL, the acceptor thread, the disconnect watcher).",
              "", "Where that time goes inside zai-proxy (profiles) and the design changes that "
              "would meet the targets: `bench/README.md`, sections *Profile* and *Design "
              "changes*.", ""]
    return lines


def render(raw: dict, chart_files: dict) -> str:
    m = raw["meta"]
    figures = raw["figures"]
    load = m["loadavg_at_start"][0], m.get("loadavg_at_end", [None])[0]
    lines = ["# zai-proxy benchmark: summary", "",
             f"Run {m['started']}, {m.get('duration_s', 0):.0f} s"
             + (" — **quick smoke run, not comparable**" if m["quick"] else "")
             + f". Machine: {m['machine']['cpus']} × {m['machine']['cpu_model']}, "
             f"{m['machine']['memory_gib']} GiB. zai-proxy {m['versions']['zai_proxy_commit']}, "
             f"LiteLLM {m['versions']['litellm']}, "
             f"{(m['versions']['nginx'] or 'nginx ?').replace('nginx version: ', '')}, "
             f"{(m['versions']['wrk'] or '').split(' [')[0]}, Python {m['versions']['python']}.",
             "",
             "Reproduce: " + (f"`{m['command']}`" if m.get("command", "python -m bench.run")
                              .strip() != "python -m bench.run" else
                              "`make bench` (about 11 minutes on 2 cores)")
             + ". Raw runs and every figure: `latest.json` beside this file.", "",
             f"**CPU layout.** {m['layout']['meaning']}: contestant on CPU "
             f"{m['layout']['contestant_cpus']}, fake upstream + load generator on CPU "
             f"{m['layout']['environment_cpus']}. The direct path therefore has the same "
             "upstream and client resources as every proxy; its figures are the floor. "
             f"Load average at start/end: {load[0]} / {load[1]} (anything above ~2 means other "
             "work shared the machine; every run's per-core busy share is in latest.json).", "",
             "**Settings.**", ""]
    lines += [f"- {k}: {v}" for k, v in m["settings"].items()]
    lines.append(f"- repetitions: {m['plan']['reps']}, interleaved, contestant order rotated; "
                 "figures are the median, ranges are min–max over repetitions. A run slower "
                 f"than {m['plan'].get('slow_run_s', '?')} s (LiteLLM at high concurrency) is "
                 "not repeated: a figure without a range there comes from one run.")
    lines.append("")
    lines += _targets(figures)
    lines += _why(figures)
    lines += _nonstreaming(figures, chart_files.get("nonstreaming"))
    lines += _streaming(figures, raw, chart_files.get("streaming"))
    lines += _held(figures, raw, chart_files.get("held"))
    lines += _token_cost(figures, raw, chart_files.get("token_cost"))
    lines += _steady(figures, chart_files.get("steady"))
    return "\n".join(lines).rstrip() + "\n"


def write(raw: dict, out: Path) -> Path:
    from . import charts   # matplotlib: only when charts are drawn

    chart_files = charts.write_all(raw, out)
    path = out / "summary.md"
    path.write_text(render(raw, chart_files))
    return path


if __name__ == "__main__":
    # Re-render from an existing latest.json: python -m bench.report bench/results
    directory = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results")
    data = json.loads((directory / "latest.json").read_text())
    from .analyze import analyze
    data["figures"] = analyze(data)
    print(write(data, directory))
