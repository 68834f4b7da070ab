"""``python -m bench``: run every scenario, write results, regenerate the docs.

``--smoke`` runs every scenario with tiny sizes into a temporary directory
(nothing under ``bench/results`` or ``docs`` changes) and asserts nothing
about speed. ``--only latency,push`` runs some scenarios; ``--out DIR``
writes the JSON, Markdown and charts under DIR instead; ``--report`` only
regenerates the Markdown and charts from the published JSON (after editing
``bench/analysis.md``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report
from bench.common import ROOT, machine, raise_nofile
from bench.scenarios import FULL, SCENARIOS, SMOKE, Context

log = logging.getLogger("bench")


async def run(names: list[str], smoke: bool, workdir: Path) -> dict[str, Any]:
    sizes = SMOKE if smoke else FULL
    ctx = Context(sizes, workdir)
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "smoke": smoke,
        "machine": machine(),
        "scenarios": {},
    }

    async def one(name: str) -> None:
        started = time.monotonic()
        load_before = os.getloadavg()[0]
        log.info("scenario %s: starting (load %.2f)", name, load_before)
        try:
            result = await SCENARIOS[name](ctx)
        except Exception as exc:
            log.exception("scenario %s failed", name)
            result = {
                "title": name,
                "error": f"{exc!r}",
                "trace": traceback.format_exc(),
            }
        result["seconds"] = time.monotonic() - started
        result["load"] = [load_before, os.getloadavg()[0]]
        results["scenarios"][name] = result
        log.info("scenario %s: done in %.1f s", name, result["seconds"])

    if smoke:
        # A smoke run only proves the harness works: run the scenarios at once.
        await asyncio.gather(*(one(name) for name in names))
        results["scenarios"] = {n: results["scenarios"][n] for n in names}
    else:
        for name in names:
            await one(name)
    results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, temp dir")
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument("--out", default=None, help="write results and docs here")
    parser.add_argument(
        "--report",
        action="store_true",
        help="only regenerate docs/benchmarks.md from bench/results/latest.json",
    )
    args = parser.parse_args(argv)
    if args.report:
        published = ROOT / "bench" / "results" / "latest.json"
        doc_path = ROOT / "docs" / "benchmarks.md"
        report.write(
            json.loads(published.read_text()), doc_path, doc_path.parent / "bench"
        )
        print(f"doc: {doc_path}")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    # The bytes scenario runs our clients in this process; keep their chatter out.
    for noisy in ("httpx", "bettensor_core", "websockets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    raise_nofile()

    names = [n for n in args.only.split(",") if n] or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        if args.out:
            out = Path(args.out)
        elif args.smoke:
            out = Path(tmp) / "out"
        else:
            out = ROOT
        results = asyncio.run(run(names, args.smoke, Path(tmp)))

        json_path = (
            out / "bench" / "results" / "latest.json"
            if out == ROOT
            else out / "latest.json"
        )
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results, indent=1, default=str) + "\n")
        doc_path = out / "docs" / "benchmarks.md"
        report.write(results, doc_path, doc_path.parent / "bench")
        print(f"results: {json_path}\ndoc: {doc_path}")
        failed = [n for n, r in results["scenarios"].items() if "error" in r]
        if failed:
            print(f"failed scenarios: {', '.join(failed)}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
