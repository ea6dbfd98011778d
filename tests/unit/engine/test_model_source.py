"""Model sources on this machine: a local directory, a hub id from the node cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hark_serving.engine.model_source import resolve_model
from hark_serving.errors import ModelError


def test_a_local_directory_missing_files_names_them(tiny_model_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "m"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "am.mvn").unlink()
    with pytest.raises(ModelError, match=r"missing am\.mvn"):
        resolve_model(str(broken), tmp_path / "cache")
    with pytest.raises(ModelError, match="no such model directory"):
        resolve_model(str(tmp_path / "absent"), tmp_path / "cache")


def test_a_hub_id_uses_the_copy_already_in_the_node_cache(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    # ModelScope's cache layout; the hub itself is not reachable from here.
    snapshot = tmp_path / "hub" / "ms" / "models" / "iic--SenseVoiceSmall" / "snapshots" / "master"
    shutil.copytree(tiny_model_dir, snapshot)
    resolved = resolve_model("iic/SenseVoiceSmall", tmp_path)
    assert resolved.path == snapshot and resolved.source == "iic/SenseVoiceSmall"


def test_the_cache_lock_excludes_another_process(tmp_path: Path) -> None:
    import subprocess
    import sys

    from hark_serving.engine.model_source import locked

    lock = tmp_path / "cache" / "m.lock"
    waiter = [
        sys.executable, "-c",
        "import sys; from pathlib import Path; from hark_serving.engine.model_source import locked\n"
        f"with locked(Path({str(lock)!r})): print('got it', flush=True)",
    ]  # fmt: skip
    with locked(lock):
        proc = subprocess.Popen(waiter, stdout=subprocess.PIPE, text=True)
        with pytest.raises(subprocess.TimeoutExpired):
            proc.communicate(timeout=3)  # still waiting: we hold the lock
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out == "got it\n"


def test_a_cached_hub_copy_is_checked_against_the_digests_of_its_download(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    snapshot = tmp_path / "hub" / "ms" / "models" / "iic--SenseVoiceSmall" / "snapshots" / "master"
    shutil.copytree(tiny_model_dir, snapshot)
    resolve_model("iic/SenseVoiceSmall", tmp_path)  # first use records the digests
    assert (snapshot / ".hark-manifest.json").is_file()
    resolve_model("iic/SenseVoiceSmall", tmp_path)  # unchanged: accepted
    with (snapshot / "model.pt").open("r+b") as f:  # a flipped byte, as a bad disk or a hand
        first = f.read(1)
        f.seek(0)
        f.write(bytes([first[0] ^ 0xFF]))
    with pytest.raises(ModelError, match=r"cached model\.pt .* differs .* delete"):
        resolve_model("iic/SenseVoiceSmall", tmp_path)
    (snapshot / "model.pt").unlink()
    with pytest.raises(ModelError, match=r"cached model\.pt .* is missing"):
        resolve_model("iic/SenseVoiceSmall", tmp_path)


def test_a_revision_is_named_after_the_hub_id() -> None:
    from hark_serving.engine.model_source import split_revision

    assert split_revision("iic/SenseVoiceSmall@v2.0.4") == ("iic/SenseVoiceSmall", "v2.0.4")
    assert split_revision("iic/SenseVoiceSmall") == ("iic/SenseVoiceSmall", None)
    with pytest.raises(ModelError, match="name a revision after '@'"):
        split_revision("iic/SenseVoiceSmall@")
