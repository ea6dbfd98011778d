"""A model that cannot load names the real cause and the fix, and exits with code 3."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hark_serving.cli import exits
from hark_serving.cli.main import app
from hark_serving.engine.libraries import (
    Libraries,
    problems,
    torchaudio_fits,
    torchaudio_fix,
    torchaudio_problem,
)

HARK = str(Path(sys.executable).with_name("hark"))
REPO = Path(__file__).resolve().parents[3]


def hark(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HARK, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **env}
    )


def test_a_file_missing_from_the_model_directory_is_named_with_the_layout(
    tiny_model_dir: Path, tmp_path: Path, audio_dir: Path
) -> None:
    broken = tmp_path / "model"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "chn_jpn_yue_eng_ko_spectok.bpe.model").unlink()
    result = CliRunner().invoke(
        app,
        ["transcribe", str(audio_dir / "one_sentence_16k.wav"), "--out", str(tmp_path / "o"),
         "--model", str(broken), "-q"],
    )  # fmt: skip
    assert result.exit_code == exits.MODEL, result.output
    assert "missing chn_jpn_yue_eng_ko_spectok.bpe.model" in result.stderr
    assert "config.yaml, model.pt, am.mvn" in result.stderr  # the expected layout
    assert "HARK_MODEL" in result.stderr  # and where to point it
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_a_torchaudio_that_cannot_load_is_named_instead_of_nonetype(
    tiny_model_dir: Path, tmp_path: Path, audio_dir: Path
) -> None:
    # What a torchaudio built for another torch does: its shared library fails to load,
    # funasr swallows the ImportError and later calls None.
    sabotage = tmp_path / "site" / "torchaudio"
    sabotage.mkdir(parents=True)
    (sabotage / "__init__.py").write_text(
        'raise OSError("libtorchaudio.so: undefined symbol: _ZN3c104cuda9SetDeviceEab")\n'
    )
    path = os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")])
    proc = hark(
        "transcribe", str(audio_dir / "one_sentence_16k.wav"), "--out", str(tmp_path / "o"),
        "--model", str(tiny_model_dir), "-q",
        # torch's path: ONNX Runtime's needs neither torch nor torchaudio once exported.
        env={"PYTHONPATH": path, "HARK_RUNTIME": "torch"},
    )  # fmt: skip
    assert proc.returncode == exits.MODEL, proc.stderr
    torch, audio = version("torch"), version("torchaudio")
    assert f"torchaudio {audio} cannot load with torch {torch}" in proc.stderr
    assert "undefined symbol" in proc.stderr
    assert f"pip install torchaudio=={torch.split('+')[0]}" in proc.stderr
    assert "NoneType" not in proc.stderr


def test_a_hub_id_that_cannot_be_downloaded_offline_says_how_to_get_it(
    tmp_path: Path, audio_dir: Path
) -> None:
    proc = hark(
        "transcribe", str(audio_dir / "one_sentence_16k.wav"), "--out", str(tmp_path / "o"), "-q",
        env={
            "HARK_MODEL": "FunAudioLLM/SenseVoiceSmall",
            "HARK_MODEL_HUB": "hf",
            "HARK_MODEL_CACHE": str(tmp_path / "cache"),
            "HF_HUB_OFFLINE": "1",  # the hub's own offline mode: no request leaves
        },
    )  # fmt: skip
    assert proc.returncode == exits.MODEL, proc.stderr
    assert "FunAudioLLM/SenseVoiceSmall: not cached in" in proc.stderr
    assert "Hugging Face hub failed" in proc.stderr
    assert "copy the directory here and set HARK_MODEL to it" in proc.stderr


@pytest.mark.parametrize(
    "torch, torchaudio, fits",
    [
        ("2.11.0", "2.11.0", True),
        ("2.11.0+cpu", "2.11.0+cpu", True),
        ("2.11.0+cu128", "2.11.0", True),
        ("2.11.0", "2.11.1", False),  # what an unpinned install resolved to
        ("2.10.0", "2.11.0", False),
    ],
)
def test_torchaudio_fits_the_torch_release_of_the_same_number(
    torch: str, torchaudio: str, fits: bool
) -> None:
    assert torchaudio_fits(torch, torchaudio) is fits


def test_the_fix_installs_the_torchaudio_of_the_same_build() -> None:
    assert torchaudio_fix("2.11.0").endswith("pip install torchaudio==2.11.0")
    assert torchaudio_fix("2.11.0+cpu").endswith(
        "pip install torchaudio==2.11.0 --index-url https://download.pytorch.org/whl/cpu"
    )
    assert torchaudio_fix("2.11.0+cu128").endswith("/whl/cu128")


def test_torchaudio_problems() -> None:
    assert torchaudio_problem("2.11.0", "2.11.0", None) is None
    mismatch = torchaudio_problem("2.11.0", "2.11.1", None)
    assert mismatch is not None
    assert mismatch.message == "torchaudio 2.11.1 cannot load with torch 2.11.0"
    missing = torchaudio_problem("2.11.0", None, None)
    assert missing is not None and "not installed" in missing.message


def test_the_root_cause_is_reported_first() -> None:
    broken_audio = Libraries(
        "2.11.0", None, "2.11.1", OSError("undefined symbol"), "1.4.16", TypeError("NoneType")
    )
    found = problems(broken_audio)
    assert [p.library for p in found] == ["torchaudio"]  # funasr's error follows from it
    assert [p.library for p in problems(Libraries(None))] == ["torch"]
    broken_torch = Libraries("2.11.0", ImportError("libcudnn.so.9"), "2.11.0", None, "1.4.16")
    assert [p.library for p in problems(broken_torch)] == ["torch"]
    assert problems(Libraries("2.11.0", None, "2.11.0", None, "1.4.16", None)) == []
    funasr = problems(Libraries("2.11.0", None, "2.11.0", None, "1.4.16", ImportError("x")))
    assert [p.library for p in funasr] == ["funasr"]


def test_hark_run_exits_with_the_model_code_too(tiny_model_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "model"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.pt").unlink()
    manifest = tmp_path / "job.yaml"
    manifest.write_text(
        "apiVersion: hark.dev/v1alpha1\nkind: TranscriptionJob\nmetadata: {name: j}\n"
        "spec:\n  input: {uri: 's3://in-b/p/'}\n  output: {uri: 's3://out-b/q/'}\n"
    )
    # The model loads before any storage is touched, so no object store is needed here.
    result = CliRunner().invoke(
        app, ["run", "-f", str(manifest), "--model", str(broken), "--quiet"]
    )
    assert result.exit_code == exits.MODEL, result.output
    assert "missing model.pt" in result.stderr
