"""The benchmark harness runs end to end with tiny sizes; it says nothing of speed."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(180)
def test_bench_smoke_runs_every_scenario_and_writes_json(tmp_path: Path) -> None:
    """`python -m bench --smoke` finishes, and its JSON holds every scenario's rows."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert done.returncode == 0, done.stderr[-4000:]

    results = json.loads((out / "latest.json").read_text())
    assert results["smoke"] is True
    from bench.scenarios import SCENARIOS

    assert set(results["scenarios"]) == set(SCENARIOS)
    for name, scenario in results["scenarios"].items():
        assert "error" not in scenario, (name, scenario.get("trace"))
        if scenario.get("not_measured"):
            continue
        assert scenario["rows"], name
        assert scenario["setup"], name

    doc = (out / "docs" / "benchmarks.md").read_text()
    assert "# Benchmarks" in doc
    assert "smoke run" in doc
    if importlib.util.find_spec("matplotlib") is not None:
        assert (out / "docs" / "bench" / "latency.png").stat().st_size > 0


def test_bench_smoke_leaves_published_results_alone(tmp_path: Path) -> None:
    """A smoke run without --out writes to a temporary directory, not bench/results."""
    published = ROOT / "bench" / "results" / "latest.json"
    before = published.stat().st_mtime_ns if published.exists() else None
    # In a child: the harness sets up logging for its whole process.
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--only", "bytes"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    after = published.stat().st_mtime_ns if published.exists() else None
    assert before == after
