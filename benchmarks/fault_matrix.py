"""The fault matrix: each ordinary fault on a job of many files, with real components.

The real kube-apiserver and MinIO of the test environment, the real Ray Serve
app `hark` with the tiny model (its default settings), and the real operator
in-process (kopf), at the operator's default retry settings. For each fault a
Batch job transcribes `--files` copies of a sentence; the fault strikes once
some outputs exist. Writes are counted with MinIO bucket versioning. One row
per fault:

    files    inputs in the job
    lost     inputs that end with neither a current transcript nor an error record
    dup      transcript versions beyond one per content (the same source ETag twice)
    errors   error records (none of these inputs is broken)
    recover  seconds from the end of the fault to the job's completion

The faults: `serve-down` (the Serve app deleted for `--outage-seconds`, then
deployed again), `token` (the operator's items token wrong until its Secret
is fixed), `reupload` (ten inputs replaced mid-job), `storage-denied` (the
object store refuses every key, the operator's and the Serve pods', for
`--outage-seconds`: an outage as the job sees it), `rotation` (S3 keys
rotated: wrong everywhere, then the operator's Secret fixed while the Serve
pods' key files lag, then those too), `transcriber-killed` (the model's
replica SIGKILLed mid-batch; Serve starts a new one) and `operator-killed`
(`hark operator` SIGKILLed mid-job and started again).

    python benchmarks/fault_matrix.py                 # every fault, 50 files each
    python benchmarks/fault_matrix.py --files 60 --faults serve-down,token
    python benchmarks/fault_matrix.py --faults serve-down --outage-seconds 30

It drives the scenarios through pytest to reuse the test environment's fixtures
(`tests/env`), so run it like the integration tests: under the heavy-test lock,
with PYTHONPATH set to this checkout. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.env.environment import Environment  # noqa: E402
from tests.env.kube import apply_yaml, wait_for  # noqa: E402
from tests.integration.operator.conftest import (  # noqa: E402
    create_secret,
    get_job,
    hark_crds,
    job_manifest,
    keys,
    kopf_operator,
    operator_environ,
    purge_versions,
    serve_profiles,
    serve_url,
    upload,
    wait_phase,
)
from tests.integration.operator.test_serve_faults import App, condition  # noqa: E402
from tests.integration.operator.test_serve_keys_and_replicas import (  # noqa: E402
    _operator_keys,
    _serve_keys,
    _transcriber_pid,
)
from tests.integration.serve.conftest import app_args  # noqa: E402

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["hark_crds", "serve_url"]  # fixtures pytest finds in this module

DEFAULT_RETRY = {"HARK_RETRY_BASE_SECONDS": "2", "HARK_RETRY_MAX_SECONDS": "300"}
FILES = int(os.environ.get("HARK_FAULT_FILES", "50"))
FAULTS = [f for f in os.environ.get("HARK_FAULTS", "").split(",") if f]
ROWS_FILE = os.environ.get("HARK_FAULT_ROWS", "")
OUTAGE = float(os.environ.get("HARK_FAULT_OUTAGE", "90"))
WRONG_KEYS = ("not-a-key", "not-the-secret")


@dataclass(frozen=True)
class Row:
    fault: str
    files: int
    lost: int
    dup: int
    errors: int
    recover: float
    phase: str


@dataclass
class Scenario:
    test_env: Environment
    s3: S3Client
    bucket: str
    namespace: str
    serve_url: str
    app: App
    audio_dir: Path
    profiles: Path  # the Serve app's profiles; its key files lie beside them


def _versions(s3: S3Client, bucket: str) -> dict[str, list[str]]:
    """Transcript key → the source ETag each of its versions records."""
    out: dict[str, list[str]] = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix="out/"):
        for v in page.get("Versions", []):
            if v["Key"].endswith(".wav.json"):
                head = s3.head_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
                out.setdefault(v["Key"], []).append(head["Metadata"].get("hark-source-etag", ""))
    return out


def _measure(sc: Scenario, fault: str, ended: float, job: dict[str, Any]) -> Row:
    done = time.monotonic()
    s3, bucket = sc.s3, sc.bucket
    versions = _versions(s3, bucket)
    outs = set(keys(s3, bucket, "out/"))
    inputs = [k for k in keys(s3, bucket, "in/") if k.endswith(".wav")]
    lost = 0
    for key in inputs:
        rel = key[len("in/") :]
        etag = s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
        if f"out/{rel}.error.json" in outs:
            continue
        recorded = versions.get(f"out/{rel}.json", [])
        if not recorded:
            lost += 1
            continue
        head = s3.head_object(Bucket=bucket, Key=f"out/{rel}.json")
        lost += head["Metadata"].get("hark-source-etag") != etag
    dup = sum(len(v) - len(set(v)) for v in versions.values())
    errors = sum(k.endswith(".error.json") for k in outs)
    phase = (job.get("status") or {}).get("phase", "?")
    return Row(fault, len(inputs), lost, dup, errors, done - ended, phase)


def _run(
    sc: Scenario,
    fault: str,
    environ: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    strike: Callable[[Scenario], float],
) -> None:
    upload(sc.s3, sc.bucket, {
        f"in/{i:03d}.wav": sc.audio_dir / "one_sentence_16k.wav" for i in range(FILES)
    })  # fmt: skip
    sc.app.up()
    try:
        with kopf_operator(monkeypatch, environ, sc.namespace):
            apply_yaml(sc.test_env, job_manifest("matrix", sc.bucket), namespace=sc.namespace)
            ended = strike(sc)
            job = wait_phase(
                sc.test_env, sc.namespace, "matrix", {"Succeeded", "Failed"}, timeout=1800
            )
            row = _measure(sc, fault, ended, job)
    finally:
        sc.app.down()
    _emit(row)


def _emit(row: Row) -> None:
    print(f"\n{row}", flush=True)
    if ROWS_FILE:
        with open(ROWS_FILE, "a") as f:
            f.write(json.dumps(row.__dict__) + "\n")


def _run_killed_operator(sc: Scenario, environ: dict[str, str], tmp: Path) -> None:
    """The operator as its own process (`hark operator`), SIGKILLed once some outputs
    exist and started again, as a pod's container would be."""
    import signal

    from tests.integration.operator.test_resilience import start_operator, stop

    upload(sc.s3, sc.bucket, {
        f"in/{i:03d}.wav": sc.audio_dir / "one_sentence_16k.wav" for i in range(FILES)
    })  # fmt: skip
    log = tmp / "operator.log"
    sc.app.up()
    first = start_operator(environ, log)
    try:
        apply_yaml(sc.test_env, job_manifest("matrix", sc.bucket), namespace=sc.namespace)
        _after_some_outputs(sc)
        first.send_signal(signal.SIGKILL)  # no cleanup: requests stay in flight
        first.wait(timeout=30)
        ended = time.monotonic()
        second = start_operator(environ, log)
        try:
            job = wait_phase(
                sc.test_env, sc.namespace, "matrix", {"Succeeded", "Failed"}, timeout=1800
            )
        finally:
            stop(second)
        row = _measure(sc, "operator-killed", ended, job)
    finally:
        stop(first)
        sc.app.down()
    _emit(row)


def _after_some_outputs(sc: Scenario, n: int = 5) -> None:
    wait_for(
        lambda: len([k for k in keys(sc.s3, sc.bucket, "out/") if k.endswith(".wav.json")]) >= n,
        timeout=600,
        message=f"{n} outputs",
    )


def _none(sc: Scenario) -> float:
    return time.monotonic()


def _serve_down(sc: Scenario) -> float:
    _after_some_outputs(sc)
    sc.app.down()  # an upgrade, a head restart: nobody answers /v1/items
    time.sleep(OUTAGE)
    sc.app.up()
    return time.monotonic()


def _token(sc: Scenario) -> float:
    wait_for(
        lambda: (
            condition(get_job(sc.test_env, sc.namespace, "matrix"), "ProcessorAvailable").get(
                "reason"
            )
            == "ProcessorRefused"
        ),
        timeout=300,
        message="dispatch paused on 401",
    )
    time.sleep(5)
    fixed = sc.test_env.kubectl(
        "create", "secret", "generic", "serve-token", "-n", sc.namespace,
        "--from-literal=token=matrix-token", "--dry-run=client", "-o", "yaml",
    )  # fmt: skip
    apply_yaml(sc.test_env, fixed.stdout, namespace=sc.namespace)
    return time.monotonic()


def _reupload(sc: Scenario) -> float:
    _after_some_outputs(sc)
    other = sc.audio_dir / "call_stereo_8k.wav"
    # Ten inputs get new content: some already done, some in flight, some still pending.
    upload(sc.s3, sc.bucket, {f"in/{i:03d}.wav": other for i in range(0, FILES, FILES // 10)})
    return time.monotonic()


def _keys(sc: Scenario, operator: tuple[str, str], serve: tuple[str, str]) -> None:
    _operator_keys(sc.test_env, sc.namespace, *operator)
    _serve_keys(sc.profiles, *serve)


def _storage_denied(sc: Scenario) -> float:
    _after_some_outputs(sc)
    good = (sc.test_env.s3_access_key, sc.test_env.s3_secret_key)
    _keys(sc, WRONG_KEYS, WRONG_KEYS)
    time.sleep(OUTAGE)
    _keys(sc, good, good)
    return time.monotonic()


def _rotation(sc: Scenario) -> float:
    _after_some_outputs(sc)
    good = (sc.test_env.s3_access_key, sc.test_env.s3_secret_key)
    _keys(sc, WRONG_KEYS, WRONG_KEYS)
    time.sleep(10)
    _keys(sc, good, WRONG_KEYS)  # the Secret is updated; the pods' volume lags
    time.sleep(10)
    _keys(sc, good, good)
    return time.monotonic()


def _transcriber_killed(sc: Scenario) -> float:
    import signal

    _after_some_outputs(sc)
    os.kill(_transcriber_pid(), signal.SIGKILL)
    return time.monotonic()


SCENARIOS: dict[str, Callable[[Scenario], float]] = {
    "none": _none,
    "serve-down": _serve_down,
    "token": _token,
    "reupload": _reupload,
    "storage-denied": _storage_denied,
    "rotation": _rotation,
    "transcriber-killed": _transcriber_killed,
    "operator-killed": _none,  # struck by `_run_killed_operator`
}


@pytest.fixture
def scenario(
    test_env: Environment,
    hark_crds: Path,
    namespace: str,
    bucket: str,
    s3: S3Client,
    audio_dir: Path,
    tiny_model_dir: Path,
    serve_url: str,
    tmp_path: Path,
) -> Iterator[tuple[Scenario, Path]]:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    create_secret(test_env, namespace)
    profiles = serve_profiles(test_env, tmp_path, bucket)
    app = App(serve_url, app_args(tiny_model_dir, storage_profiles=str(profiles)))
    yield Scenario(test_env, s3, bucket, namespace, serve_url, app, audio_dir, profiles), tmp_path
    purge_versions(s3, bucket)


@pytest.mark.parametrize("fault", list(SCENARIOS))
def fault_row(fault: str, scenario: tuple[Scenario, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    if FAULTS and fault not in FAULTS:
        return
    sc, tmp = scenario
    extra = dict(DEFAULT_RETRY)
    if fault == "token":
        sc.test_env.kubectl(
            "create", "secret", "generic", "serve-token", "-n", sc.namespace,
            "--from-literal=token=not-the-token",
        )  # fmt: skip
        sc.app = App(sc.serve_url, {**sc.app.args, "items_token": "matrix-token"})
        extra["HARK_ITEMS_TOKEN_SECRET"] = "serve-token"
    environ = operator_environ(sc.test_env, sc.namespace, tmp, sc.serve_url, **extra)
    if fault == "operator-killed":
        _run_killed_operator(sc, environ, tmp)
        return
    _run(sc, fault, environ, monkeypatch, SCENARIOS[fault])


def table(rows: list[Row]) -> str:
    lines = ["fault              files  lost  dup  errors  recover_s  phase"]
    for r in rows:
        lines.append(
            f"{r.fault:<18} {r.files:5d} {r.lost:5d} {r.dup:4d} {r.errors:7d}"
            f" {r.recover:10.1f}  {r.phase}"
        )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=50)
    p.add_argument("--faults", default="", help="comma-separated: " + ",".join(SCENARIOS))
    p.add_argument(
        "--outage-seconds",
        type=float,
        default=90,
        help="how long the Serve app is down (serve-down) or storage refuses (storage-denied)",
    )
    a = p.parse_args()
    rows_file = Path(f"/tmp/hark-fault-matrix-{os.getpid()}.jsonl")
    rows_file.unlink(missing_ok=True)
    os.environ.update(
        HARK_FAULT_FILES=str(a.files),
        HARK_FAULTS=a.faults,
        HARK_FAULT_ROWS=str(rows_file),
        HARK_FAULT_OUTAGE=str(a.outage_seconds),
    )
    code = pytest.main(
        [
            __file__, "-q", "-s", "-p", "no:cacheprovider", "-p", "no:unraisableexception",
            "-p", "tests.env.pytest_plugin", "-p", "tests.fixtures.pytest_plugin",
            "-o", "python_functions=fault_*", "-o", "python_files=fault_matrix.py",
            "-o", "timeout=3600", "--rootdir", str(ROOT), "-W", "ignore::ResourceWarning",
        ]
    )  # fmt: skip
    rows = (
        [Row(**json.loads(line)) for line in rows_file.read_text().splitlines()]
        if rows_file.exists()
        else []
    )
    print("\n" + table(rows))
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
