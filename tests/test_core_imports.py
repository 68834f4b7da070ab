"""Package boundaries: the core never pulls in Textual, the stub never the app.

Each check imports every module of a package in a fresh interpreter, so
nothing imported by other tests in this process can hide a violation.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Imports every module of a package, then prints the names of loaded modules.
_PROBE = """
import importlib, json, pkgutil, sys
package = importlib.import_module(sys.argv[1])
failed = {}
for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    if info.name.rsplit(".", 1)[-1] == "__main__":
        continue
    try:
        importlib.import_module(info.name)
    except Exception as exc:
        failed[info.name] = f"{type(exc).__name__}: {exc}"
print(json.dumps({"modules": sorted(sys.modules), "failed": failed}))
"""


def loaded_by(package: str) -> tuple[set[str], dict[str, str]]:
    """Modules loaded after importing every module of ``package``, and failures."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, package],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return set(result["modules"]), result["failed"]


def test_core_never_imports_textual() -> None:
    """Importing every bettensor_core module loads no textual module."""
    modules, failed = loaded_by("bettensor_core")
    assert failed == {}
    assert "bettensor_core.identity" in modules
    offenders = sorted(m for m in modules if m == "textual" or m.startswith("textual."))
    assert offenders == []


def test_core_never_imports_the_app_or_the_stub() -> None:
    """The core stands alone: neither app nor validator_stub is loaded by it."""
    modules, _ = loaded_by("bettensor_core")
    for package in ("app", "validator_stub"):
        assert not any(m == package or m.startswith(package + ".") for m in modules)


def test_stub_never_imports_the_app() -> None:
    """Importing every validator_stub module loads nothing from app (nor textual)."""
    if not (ROOT / "validator_stub" / "__init__.py").exists():
        pytest.skip("validator_stub is not in this checkout")
    modules, failed = loaded_by("validator_stub")
    assert failed == {}
    assert not any(m == "app" or m.startswith("app.") for m in modules)
    assert not any(m == "textual" or m.startswith("textual.") for m in modules)
