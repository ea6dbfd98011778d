"""Every benchmark still starts: its imports resolve and its options parse.

Benchmarks are run by hand, seldom, and import helpers from the tests; a test
module split or renamed must not leave one broken until the day it is needed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
SCRIPTS = sorted(
    p for p in (REPO / "benchmarks").glob("*.py") if "__main__" in p.read_text(encoding="utf-8")
)


def env() -> dict[str, str]:
    paths = [str(REPO / "serving"), str(REPO / "operator"), str(REPO)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def test_there_are_benchmarks_to_check() -> None:
    assert len(SCRIPTS) >= 8, SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_the_benchmark_prints_its_usage(script: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(script), "--help"],
        cwd=REPO, env=env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "usage:" in done.stdout
