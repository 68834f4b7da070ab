"""Turn a results dict into ``docs/benchmarks.md`` and its PNG charts.

The Markdown is regenerated on every run: the numbers and tables come from
the results; the reading of them (what limits each missed target, with its
profile) comes from ``bench/analysis.md``, written by hand after a run and
included as it is.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

ANALYSIS = Path(__file__).with_name("analysis.md")

COLUMN_TITLES = {
    "p50_ms": "p50 ms",
    "p95_ms": "p95 ms",
    "p99_ms": "p99 ms",
    "ratio_to_floor": "x floor",
    "miners": "miners",
    "per_s": "confirmed/s",
    "messages_per_s": "messages/s",
    "stub_cpu": "stub cores",
    "reached": "reached",
    "last_ms": "last miner ms",
    "call_ms": "call ms",
    "held": "held",
    "connect_s": "connect s",
    "rss_after_mib": "RSS MiB",
    "kib_per_miner": "KiB/miner",
    "bytes_per_prediction": "bytes/prediction",
    "connect_bytes": "connect bytes",
    "cpu_s": "CPU s",
    "cpu_ms_per_min": "CPU ms/min",
    "cpu_percent": "CPU % of a core",
    "switches_per_min": "switches/min",
    "bytes_per_hour": "bytes/hour",
    "cpu_vs_poller": "x poller CPU",
    "stub_cpu_percent": "stub CPU %",
    "stub_rss_mib": "stub RSS MiB",
    "stub_fds": "stub fds",
    "connections_per_s": "connections/s",
    "mb_per_hour": "MB/hour",
    "mb_per_hour_per_miner": "MB/hour per miner",
    "load_before": "load avg before",
    "predictions": "predictions",
    "pushes_received": "push frames",
}


def fmt(value: Any) -> str:
    """A number as a person reads it: thousands separated, 3 significant digits."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3f}"
    return str(value)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |"]
    lines.append("|" + "|".join("---" for _ in headers) + "|")
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _targets_table(targets: list[dict[str, Any]]) -> str:
    rows = []
    for t in targets:
        unit = t.get("unit", "")
        rows.append(
            [
                t["target"],
                f"{fmt(t['value'])} {unit}".strip(),
                f"{fmt(t['limit'])} {unit}".strip(),
                "**met**" if t["met"] else f"**missed** {t['by']}".strip(),
            ]
        )
    return _table(["target", "measured", "limit", "result"], rows)


def _scenario_section(key: str, result: dict[str, Any], charts: dict[str, str]) -> str:
    parts = [f"## {result.get('title', key)}"]
    if "error" in result:
        parts.append(f"Not measured: the scenario failed with `{result['error']}`.")
        return "\n\n".join(parts)
    if result.get("not_measured"):
        parts.append(f"**Not measured yet.** {result['not_measured']}")
        return "\n\n".join(parts)
    parts.append(f"Setup: {result['setup']}")
    columns = result["columns"]
    rows = [
        [r["variant"], r.get("kind", "")] + [fmt(r.get(c)) for c in columns]
        for r in result["rows"]
    ]
    parts.append(
        _table(["variant", "kind"] + [COLUMN_TITLES.get(c, c) for c in columns], rows)
    )
    if result.get("targets"):
        parts.append("Targets:\n\n" + _targets_table(result["targets"]))
    for note in result.get("notes", []):
        parts.append(note)
    if key in charts:
        parts.append(f"![{result.get('title', key)}]({charts[key]})")
    load = result.get("load")
    parts.append(
        f"_Scenario time: {result.get('seconds', 0):.0f} s"
        + (
            f"; 1-minute load average {load[0]:.2f} before, {load[1]:.2f} after "
            "(2 cores; above ~1 before means other work shared the machine)._"
            if load
            else "._"
        )
    )
    return "\n\n".join(parts)


def _charts(results: dict[str, Any], chart_dir: Path, doc_dir: Path) -> dict[str, str]:
    """Draw one PNG per scenario that has rows; return their paths from the doc."""
    try:
        import matplotlib
    except ImportError:
        # matplotlib is a bench-only dependency: no charts without it.
        return {}

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chart_dir.mkdir(parents=True, exist_ok=True)
    made: dict[str, str] = {}
    colors = {
        "ours": "#2b6cb0",
        "floor": "#718096",
        "peer": "#dd6b20",
        "what-if": "#9f7aea",
        "baseline": "#c53030",
    }
    metric = {
        "latency": ("p50_ms", "p50 round trip, ms (log scale)", True),
        "throughput": ("per_s", "confirmed predictions per second", False),
        "push": ("last_ms", "ms until the last miner has the update", True),
        "capacity": ("kib_per_miner", "server memory per idle miner, KiB", False),
        "bytes": ("bytes_per_prediction", "bytes per prediction round trip", True),
        "power": ("cpu_percent", "CPU, % of one core, idle", True),
        "steady": ("stub_cpu_percent", "stub CPU, % of one core", False),
        "app": ("value", "ms (start and key press only)", False),
    }
    for key, result in results["scenarios"].items():
        if key not in metric or "rows" not in result or not result["rows"]:
            continue
        field, label, log_scale = metric[key]
        rows = [r for r in result["rows"] if isinstance(r.get(field), int | float)]
        if key == "app":
            # The app's rows mix units; chart the times only.
            rows = [r for r in rows if r.get("unit") == "ms"]
        if not rows:
            continue
        names = [
            r["variant"] + (f" ({r['miners']})" if "miners" in r else "") for r in rows
        ]
        values = [max(float(r[field]), 1e-6) for r in rows]
        fig, ax = plt.subplots(figsize=(9, 0.35 * len(rows) + 1.2))
        ax.barh(
            range(len(rows)),
            values,
            color=[colors.get(r.get("kind", "ours"), "#2f855a") for r in rows],
        )
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels(names, fontsize=7)
        ax.invert_yaxis()
        if log_scale:
            ax.set_xscale("log")
        ax.set_xlabel(label or field)
        ax.set_title(result.get("title", key), fontsize=9)
        for i, v in enumerate(values):
            ax.text(v, i, " " + fmt(v), va="center", fontsize=6)
        fig.tight_layout()
        path = chart_dir / f"{key}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made[key] = str(path.relative_to(doc_dir))
    return made


def _row(results: dict[str, Any], scenario: str, variant: str, **match: Any) -> Any:
    for r in results["scenarios"].get(scenario, {}).get("rows", []):
        if r.get("variant", "").startswith(variant) and all(
            r.get(k) == v for k, v in match.items()
        ):
            return r
    raise KeyError(f"{scenario}: {variant} {match}")


def study_table(results: dict[str, Any]) -> str:
    """The study's rows beside ours from this run (each row where measured)."""
    rows: list[list[str]] = []

    def add(name: str, study: str, ours: Any) -> None:
        try:
            rows.append([name, study, ours()])
        except (KeyError, TypeError, ZeroDivisionError):
            rows.append([name, study, "not measured in this run"])

    def latency() -> str:
        ws = _row(results, "latency", "MinerClient over WebSocket")
        http = _row(results, "latency", "MinerClient over its HTTP")
        cold = _row(results, "latency", "cold HTTP")
        return (
            f"{fmt(ws['mean_ms'])} ms WebSocket, {fmt(http['mean_ms'])} ms HTTP "
            f"keep-alive, {fmt(cold['mean_ms'])} ms cold HTTP (means, MinerClient; "
            "cold: raw request)"
        )

    def rate() -> str:
        ws1 = _row(results, "throughput", "WebSocket, single", miners=50)
        wsb = _row(results, "throughput", "WebSocket, batches", miners=50)
        h1 = _row(results, "throughput", "HTTP, single", miners=50)
        hb = _row(results, "throughput", "HTTP, batches", miners=50)
        return (
            f"{fmt(ws1['per_s'])} WebSocket / {fmt(h1['per_s'])} HTTP single; "
            f"{fmt(wsb['per_s'])} / {fmt(hb['per_s'])} batched (confirmed "
            "predictions/s, 50 miners)"
        )

    def push() -> str:
        parts = []
        for miners in (50, 1000):
            ws = _row(results, "push", "stub, WebSocket", miners=miners)
            lp = _row(results, "push", "stub, HTTP long-poll", miners=miners)
            parts.append(
                f"{miners:,} miners: {fmt(ws['last_ms'] / 1000)} s WebSocket, "
                f"{fmt(lp['last_ms'] / 1000)} s long-poll"
            )
        return "; ".join(parts)

    def capacity() -> str:
        big = max(r["miners"] for r in results["scenarios"]["capacity"]["rows"])
        ours = _row(results, "capacity", "stub", miners=big)
        return (
            f"{ours['held']:,} of {big:,} idle miners held by one stub process, "
            f"{fmt(ours['kib_per_miner'])} KiB each (more not tried)"
        )

    def volume() -> str:
        ws = _row(results, "steady", "WebSocket")
        http = _row(results, "steady", "HTTP")
        idle_ws = _row(results, "power", "MinerClient, WebSocket, idle")
        poll = _row(results, "power", "naive 5-second")
        return (
            f"{fmt(ws['mb_per_hour_per_miner'])} WebSocket / "
            f"{fmt(http['mb_per_hour_per_miner'])} HTTP MB per miner-hour in the "
            f"steady state (every odds change pushed); idle: "
            f"{fmt(idle_ws['bytes_per_hour'] / 1e6)} MB WebSocket, "
            f"{fmt(poll['bytes_per_hour'] / 1e6)} MB naive polling"
        )

    def battery() -> str:
        ws = _row(results, "power", "MinerClient, WebSocket, idle")
        lp = _row(results, "power", "MinerClient, HTTP long-poll")
        poll = _row(results, "power", "naive 5-second")
        return (
            f"idle CPU {1 - ws['cpu_s'] / poll['cpu_s']:.0%} below the naive "
            f"poller on WebSocket, {1 - lp['cpu_s'] / poll['cpu_s']:.0%} on "
            f"long-poll; wake-ups {fmt(ws['switches_per_min'])} vs "
            f"{fmt(poll['switches_per_min'])} a minute (a proxy: no battery here)"
        )

    add("average latency", "32 ms WebSocket, 142 ms HTTP", latency)
    add("messages per second", "1,200 WebSocket, 380 HTTP", rate)
    add("game update to all miners", "0.4 s WebSocket, 8.2 s HTTP", push)
    add("miners per validator", "about 1,200", capacity)
    add("data per hour", "3.2 MB WebSocket, 8.7 MB HTTP", volume)
    add("mobile battery", "58% saved", battery)
    return _table(["the study's row", "the study (2 vCPU, 50 miners)", "ours"], rows)


def render(results: dict[str, Any], charts: dict[str, str]) -> str:
    m = results["machine"]
    targets = [t for r in results["scenarios"].values() for t in r.get("targets", [])]
    head = [
        "# Benchmarks",
        "Generated by `python -m bench` (do not edit by hand: edit "
        "`bench/analysis.md` or the harness and run it again). Every scenario "
        "runs its variants side by side in one run on one machine, so ratios "
        "hold even where absolute numbers wander; all numbers below are from "
        "that one run.",
        f"Run: {results['started']} to {results['finished']} UTC"
        + (
            " (**smoke run: tiny sizes, numbers mean nothing**)"
            if results["smoke"]
            else ""
        )
        + f". Machine: {m['cpus']} CPUs ({m['cpu_model']}), Python {m['python']}, "
        f"Linux {m['kernel']}. Packages: "
        + ", ".join(f"{k} {v}" for k, v in m["packages"].items())
        + ". Raw results: `bench/results/latest.json`. Everything runs on "
        "127.0.0.1; servers and clients are separate processes sharing 2 cores.",
        "Kinds: **ours** is this project (the validator stub, our transports, "
        "`MinerClient`); **floor** is the same job done by the bare libraries we "
        "build on, the least any design on this stack pays; **peer** is "
        "python-socketio, a popular alternative; **what-if** is the stub with one "
        "setting changed, to show what that setting costs; **baseline** is the "
        "study's naive poller. Bench-only dependencies: "
        "`python-socketio` (the peer), `matplotlib` (charts), `py-spy` (profiles).",
        "Run it: `python -m bench` (about 17 minutes, rewrites this page, "
        "`bench/results/latest.json` and `docs/bench/*.png`); `--smoke` (every "
        "scenario with tiny sizes, in a temporary directory, under a minute); "
        "`--only latency,push`; `--report` (this page again from the JSON); "
        "`python -m bench.profile` (the py-spy and tracemalloc profiles quoted "
        "below, into `bench/results/profiles/`).",
        "## Targets",
        _targets_table(targets) if targets else "No targets evaluated in this run.",
        "## The study's numbers beside ours",
        "The Bettensor study measured on 2-vCPU machines with 50 miners over a "
        "real network; ours run on loopback, so our absolute times are lower by "
        "the network's share, and only the ratios between our own variants are "
        "comparable across machines.",
        study_table(results),
    ]
    if ANALYSIS.exists():
        head.append(ANALYSIS.read_text().strip())
    body = [
        _scenario_section(key, result, charts)
        for key, result in results["scenarios"].items()
    ]
    return "\n\n".join(head + body) + "\n"


def write(results: dict[str, Any], doc_path: Path, chart_dir: Path) -> None:
    """Write the Markdown at ``doc_path`` and the charts under ``chart_dir``."""
    doc_path.parent.mkdir(parents=True, exist_ok=True)
    charts = _charts(results, chart_dir, doc_path.parent)
    doc_path.write_text(render(results, charts))
