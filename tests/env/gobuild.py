"""Thin wrapper around the ``go`` command for building pinned tools.

Every command gets its whole Go configuration from environment variables that point
into the tools cache: no ``go env -w``, no user GOPATH, no global state is touched.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.env import versions


class BuildError(RuntimeError):
    """A build command failed; the message carries the command and its output tail."""


def find_go() -> str:
    """Locate the Go toolchain: PATH first, then the usual /usr/local/go install."""
    found = shutil.which("go")
    if found:
        return found
    if Path("/usr/local/go/bin/go").exists():
        return "/usr/local/go/bin/go"
    raise BuildError("the Go toolchain (go 1.25+) is required: install it to /usr/local/go")


@dataclass(frozen=True)
class GoModule:
    """A downloaded module: where its files and its go.mod are, and its .info fields."""

    path: str
    version: str
    dir: Path
    gomod: Path
    time: str


class Go:
    """Runs ``go`` with a private GOPATH/GOMODCACHE/GOCACHE under ``root``."""

    def __init__(self, root: Path, log: Path) -> None:
        self.root = root
        self.log = log
        self.go = find_go()

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
        env.update(
            GOPATH=str(self.root / "path"),
            GOMODCACHE=str(self.root / "mod"),
            GOCACHE=str(self.root / "cache"),
            GOPROXY=versions.GOPROXY,
            # sum.golang.org itself is unreachable, but the proxy serves the checksum
            # database too, so verification stays on.
            GOSUMDB="sum.golang.org",
            GOFLAGS="-mod=mod",
            CGO_ENABLED="0",
            # Never download another toolchain; never read the user's go env file.
            GOTOOLCHAIN="local",
            GOENV="off",
            GOWORK="off",
            GOTELEMETRY="off",
        )
        return env

    def run(self, args: list[str], cwd: Path) -> str:
        """Run ``go ARGS`` in ``cwd``; append output to the log; raise with its tail."""
        cwd.mkdir(parents=True, exist_ok=True)
        with self.log.open("a") as log:
            log.write(f"\n$ (cd {cwd} && go {' '.join(args)})\n")
            log.flush()
            proc = subprocess.run(
                [self.go, *args],
                cwd=cwd,
                env=self.env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                check=False,
            )
            log.write(proc.stdout)
        if proc.returncode != 0:
            tail = "\n".join(proc.stdout.splitlines()[-40:])
            raise BuildError(
                f"`go {' '.join(args)}` failed in {cwd} (exit {proc.returncode}); "
                f"full log: {self.log}\n{tail}"
            )
        return proc.stdout

    def version(self) -> str:
        out = subprocess.run(
            [self.go, "env", "GOVERSION"], env=self.env(), capture_output=True, text=True
        )
        return out.stdout.strip()

    def download(self, path: str, version: str) -> GoModule:
        """``go mod download -json PATH@VERSION`` (outside any module)."""
        out = self.run(["mod", "download", "-json", f"{path}@{version}"], self.root / "dl")
        info: dict[str, Any] = json.loads(out[out.index("{") :])
        if info.get("Error"):
            raise BuildError(f"cannot download {path}@{version}: {info['Error']}")
        meta = json.loads(Path(info["Info"]).read_text())
        return GoModule(path, version, Path(info["Dir"]), Path(info["GoMod"]), meta["Time"])


_GO_LINE = re.compile(r"^go\s+(\d+)\.(\d+)(?:\.\d+)?\s*$", re.M)
_STAGING = re.compile(r"^\s*(k8s\.io/[\w.-]+)\s*=>\s*\./staging/", re.M)


def go_minor_line(gomod: Path) -> tuple[int, int]:
    """The ``go 1.N`` language version a module declares."""
    m = _GO_LINE.search(gomod.read_text())
    if not m:
        raise BuildError(f"no go directive in {gomod}")
    return int(m.group(1)), int(m.group(2))


def require_version(gomod: Path, module: str) -> str:
    """The version ``gomod`` requires of ``module`` (e.g. helm's k8s.io/client-go)."""
    m = re.search(rf"^\s*{re.escape(module)}\s+(v\S+)", gomod.read_text(), re.M)
    if not m:
        raise BuildError(f"{gomod} does not require {module}")
    return m.group(1)


def staging_modules(gomod: Path) -> list[str]:
    """The k8s.io/* modules k8s.io/kubernetes replaces with its ./staging copies."""
    mods = _STAGING.findall(gomod.read_text())
    if not mods:
        raise BuildError(f"no staging replace lines found in {gomod}")
    return sorted(mods)


def write_build_module(
    workdir: Path,
    dep: GoModule,
    replaces: dict[str, str] | None = None,
    mains: dict[str, str] | None = None,
) -> None:
    """Generate a throwaway main module that requires ``dep`` (plus replaces/mains).

    The go directive and ``godebug default`` copy the dependency's own go line so the
    binary gets the runtime defaults it has when built inside its own repository.
    """
    major, minor = go_minor_line(dep.gomod)
    lines = [
        "// Generated by tests/env/build.py; throwaway build module, not part of Hark.",
        "module hark.local/envbuild",
        "",
        f"go {major}.{minor}.0",
        "",
        f"godebug default=go{major}.{minor}",
        "",
        f"require {dep.path} {dep.version}",
    ]
    if replaces:
        lines += ["", "replace ("]
        lines += [f"\t{mod} => {target}" for mod, target in sorted(replaces.items())]
        lines += [")"]
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    (workdir / "go.mod").write_text("\n".join(lines) + "\n")
    for rel, source in (mains or {}).items():
        main_dir = workdir / rel
        main_dir.mkdir(parents=True, exist_ok=True)
        (main_dir / "main.go").write_text(source)


def build(go: Go, workdir: Path, package: str, out: Path, ldflags: list[str]) -> None:
    """``go build -trimpath -ldflags '-s -w ...' -o OUT PACKAGE`` in the build module."""
    flags = " ".join(["-s", "-w", *ldflags])
    go.run(["build", "-trimpath", f"-ldflags={flags}", "-o", str(out), package], workdir)
