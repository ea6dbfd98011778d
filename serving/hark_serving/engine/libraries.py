"""Why the model cannot load: the libraries under funasr, and what to install instead.

funasr imports torchaudio inside `try` blocks and leaves the names it wanted as
`None` when that fails, so a torchaudio whose shared library does not load with
the installed torch (a torchaudio built for another torch) surfaces much later
as `'NoneType' object is not callable`. Decisions here are plain functions of
version strings and exceptions; `library_problems` is the one place that imports.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from importlib import metadata

from hark_serving.engine.model_source import LAYOUT_HINT
from hark_serving.errors import ModelError

PYTORCH_INDEX = "https://download.pytorch.org/whl"


@dataclass(frozen=True)
class LibraryProblem:
    """A library that does not import or does not fit the others, and the fix."""

    library: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.message}: {self.fix}"


def release(version: str) -> str:
    """`2.11.0+cpu` → `2.11.0`: the public release, without the build tag."""
    return version.split("+", 1)[0]


def build_tag(version: str) -> str | None:
    """`2.11.0+cu128` → `cu128`; None for a plain release."""
    return version.split("+", 1)[1] if "+" in version else None


def torchaudio_fits(torch_version: str, torchaudio_version: str) -> bool:
    """Each torchaudio release is built for the torch release of the same number."""
    return release(torch_version) == release(torchaudio_version)


def torchaudio_fix(torch_version: str) -> str:
    """The pip command that installs the torchaudio built for this torch."""
    wanted = release(torch_version)
    tag = build_tag(torch_version)
    index = (
        f" --index-url {PYTORCH_INDEX}/{tag}"
        if tag and re.fullmatch(r"cpu|cu\d+|rocm[\d.]+", tag)
        else ""
    )
    return f"install the torchaudio built for your torch: pip install torchaudio=={wanted}{index}"


def torchaudio_problem(
    torch_version: str, torchaudio_version: str | None, import_error: BaseException | None
) -> LibraryProblem | None:
    """What is wrong with torchaudio next to this torch, or None."""
    if torchaudio_version is None:
        return LibraryProblem(
            "torchaudio",
            "torchaudio is not installed (funasr needs it)",
            torchaudio_fix(torch_version),
        )
    if import_error is None and torchaudio_fits(torch_version, torchaudio_version):
        return None
    detail = f" ({type(import_error).__name__}: {import_error})" if import_error else ""
    return LibraryProblem(
        "torchaudio",
        f"torchaudio {torchaudio_version} cannot load with torch {torch_version}{detail}",
        torchaudio_fix(torch_version),
    )


@dataclass(frozen=True)
class Libraries:
    """Installed versions (None: not installed) and import errors (None: imports)."""

    torch: str | None
    torch_error: BaseException | None = None
    torchaudio: str | None = None
    torchaudio_error: BaseException | None = None
    funasr: str | None = None
    funasr_error: BaseException | None = None


def _installed(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _import_error(module: str, installed: str | None) -> BaseException | None:
    if installed is None:
        return None
    try:
        importlib.import_module(module)
    except Exception as exc:  # a broken shared library raises OSError, not ImportError
        return exc
    return None


def probe() -> Libraries:
    """Import torch, torchaudio and funasr here and note what happened."""
    found = {name: _installed(name) for name in ("torch", "torchaudio", "funasr")}
    torch_error = _import_error("torch", found["torch"])
    if found["torch"] is None or torch_error is not None:
        return Libraries(found["torch"], torch_error, found["torchaudio"], None, found["funasr"])
    return Libraries(
        found["torch"],
        None,
        found["torchaudio"],
        _import_error("torchaudio", found["torchaudio"]),
        found["funasr"],
        _import_error("funasr", found["funasr"]),
    )


def torch_problem(libs: Libraries) -> LibraryProblem | None:
    if libs.torch is None:
        return LibraryProblem(
            "torch",
            "torch is not installed",
            "pip install 'hark[engine]' (CPU-only torch, a small download: add "
            f"--extra-index-url {PYTORCH_INDEX}/cpu)",
        )
    if libs.torch_error is not None:
        return LibraryProblem(
            "torch",
            f"torch {libs.torch} does not import "
            f"({type(libs.torch_error).__name__}: {libs.torch_error})",
            f"reinstall torch: pip install --force-reinstall torch=={release(libs.torch)}",
        )
    return None


def funasr_problem(libs: Libraries) -> LibraryProblem | None:
    if libs.funasr is None:
        return LibraryProblem("funasr", "funasr is not installed", "pip install 'hark[engine]'")
    if libs.funasr_error is not None:
        return LibraryProblem(
            "funasr",
            f"funasr {libs.funasr} does not import "
            f"({type(libs.funasr_error).__name__}: {libs.funasr_error})",
            "pip install 'hark[engine]'",
        )
    return None


def problems(libs: Libraries) -> list[LibraryProblem]:
    """What stops the model from loading, the root cause first (torch, then torchaudio)."""
    broken_torch = torch_problem(libs)
    if broken_torch is not None or libs.torch is None:
        return [broken_torch] if broken_torch else []
    audio = torchaudio_problem(libs.torch, libs.torchaudio, libs.torchaudio_error)
    if audio is not None:
        return [audio]  # funasr's own errors follow from it
    funasr = funasr_problem(libs)
    return [funasr] if funasr else []


def library_problems() -> list[LibraryProblem]:
    """Import torch, torchaudio and funasr here, and say what does not work."""
    return problems(probe())


def load_failure(model_dir: object, exc: BaseException) -> ModelError:
    """The model failed to build from `model_dir`: name the real cause and its fix."""
    problems = library_problems()
    if problems:
        return ModelError(
            f"cannot load the model from {model_dir}: " + "; ".join(str(p) for p in problems)
        )
    if isinstance(exc, FileNotFoundError):
        return ModelError(
            f"cannot load the model from {model_dir}: {exc.filename or exc} is missing; "
            f"{LAYOUT_HINT}"
        )
    return ModelError(f"cannot load the model from {model_dir}: {type(exc).__name__}: {exc}")
