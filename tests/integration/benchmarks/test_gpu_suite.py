"""The GPU suite's dry run: the whole chain (model forward, `hark transcribe` against the
funasr recipe, `hark serve` against one request at a time) on CPU with the tiny model,
into one JSON with every figure the GPU run reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[3]


def test_the_gpu_suite_runs_end_to_end_on_cpu(tmp_path: Path) -> None:
    out = tmp_path / "suite.json"
    env = dict(
        os.environ,
        # This venv already holds hark[test]: the script reuses it instead of building one.
        HARK_SUITE_VENV=str(Path(sys.executable).parent.parent),
        HARK_SUITE_OUT=str(out),
        PYTHONPATH=os.pathsep.join([str(REPO / "serving"), str(REPO / "operator"), str(REPO)]),
    )
    proc = subprocess.run(
        ["bash", str(REPO / "benchmarks/gpu_suite.sh"), "--dry-run"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=850,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    report = json.loads(out.read_text())
    assert report["ok"] and report["dry_run"] and report["machine"]["device"] == "cpu"
    steps = report["steps"]
    assert set(steps) == {"model", "transcribe", "serve"}
    model = steps["model"]["figures"]
    assert {(r["precision"], r["batch"]) for r in model["rows"]} == {("float32", 1), ("float32", 2)}
    assert all(r["audio_s_per_s"] > 0 and r["rtf"] > 0 for r in model["rows"])
    transcribe = steps["transcribe"]["figures"]
    for key in ("recipe_rtf", "hark_rtf", "speedup", "decode_audio_s_per_s", "vad_audio_s_per_s"):
        assert transcribe[key] > 0, (key, transcribe)
    assert transcribe["segments_compared"] >= 1
    serve = steps["serve"]["figures"]
    assert serve["failures"] == 0
    assert [r["clients"] for r in serve["runs"]] == [1, 2]
    assert all(
        r["hark_audio_s_per_s"] > 0 and r["baseline_audio_s_per_s"] > 0 for r in serve["runs"]
    )
