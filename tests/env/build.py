"""Build (once) and locate the pinned binaries of the real test environment.

Cache layout, outside the repository (``HARK_TOOLS_DIR``, default
``~/.cache/hark/tools``)::

    <name>-<version>/bin/<binary>   or  kuberay-crds-<version>/crds/*.yaml
    <name>-<version>/.complete      JSON marker written last: a directory without it
                                    (an interrupted build) is rebuilt
    _go/{mod,cache,path,work,dl}    private GOMODCACHE, GOCACHE, GOPATH, build modules
    _logs/<name>-<version>.log      full output of the go commands
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from tests.env import gobuild, versions
from tests.env.gobuild import BuildError, Go

BUILD_COMMAND = "python -m tests.env build"
MARKER = ".complete"


class ToolsMissingError(RuntimeError):
    """A pinned tool is not in the cache; tests fail (never skip) with this message."""


@dataclass(frozen=True)
class Tools:
    """Absolute paths of every binary (and the KubeRay CRD directory)."""

    etcd: Path
    kube_apiserver: Path
    kubectl: Path
    helm: Path
    minio: Path
    kubeconform: Path
    kuberay_crds: Path
    promtool: Path


@dataclass(frozen=True)
class ToolSpec:
    name: str
    version: str
    output: str  # path inside the entry dir that must exist when complete
    recipe: str  # everything that shapes the output; hashed into the marker
    build: Callable[[Go, Path], None]  # writes ``output`` into the given entry dir


def tools_dir() -> Path:
    return Path(os.environ.get("HARK_TOOLS_DIR") or Path.home() / ".cache/hark/tools")


# -- recipes ----------------------------------------------------------------------

_KUBE_APISERVER_MAIN = """\
// Same as k8s.io/kubernetes/cmd/kube-apiserver/apiserver.go at the pinned version.
package main

import (
\t"os"
\t_ "time/tzdata" // for timeZone support in CronJob

\t"k8s.io/component-base/cli"
\t_ "k8s.io/component-base/logs/json/register"
\t_ "k8s.io/component-base/metrics/prometheus/clientgo"
\t_ "k8s.io/component-base/metrics/prometheus/version"
\t"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
\tos.Exit(cli.Run(app.NewAPIServerCommand()))
}
"""

_ETCD_MAIN = """\
// Same as go.etcd.io/etcd/server/v3/main.go, which cannot be `go install`ed directly
// because that module's go.mod carries local replace directives.
package main

import (
\t"os"

\t"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
\tetcdmain.Main(os.Args)
}
"""


def _kubernetes(go: Go, entry: Path, binary: str) -> None:
    kube = go.download("k8s.io/kubernetes", versions.KUBERNETES)
    # k8s.io/kubernetes requires its staging modules as v0.0.0 replaced by ./staging
    # paths; a consumer must pin each one to the published v0.<minor>.<patch>.
    replaces = {
        mod: f"{mod} {versions.KUBERNETES_STAGING}" for mod in gobuild.staging_modules(kube.gomod)
    }
    work = go.root / "work" / f"kubernetes-{versions.KUBERNETES}"
    gobuild.write_build_module(
        work, kube, replaces, mains={"cmd/kube-apiserver": _KUBE_APISERVER_MAIN}
    )
    major, minor, _patch = versions.KUBERNETES[1:].split(".")
    ldflags = []
    # What hack/lib/version.sh stamps, so /version and `kubectl version` are real.
    for pkg in ("k8s.io/client-go/pkg/version", "k8s.io/component-base/version"):
        for key, value in (
            ("gitVersion", versions.KUBERNETES),
            ("gitMajor", major),
            ("gitMinor", minor),
            ("gitTreeState", "clean"),
            ("buildDate", kube.time),
        ):
            ldflags.append(f"-X {pkg}.{key}={value}")
    # kubectl's upstream main is built as is; kube-apiserver from our copy of its main.
    package = "k8s.io/kubernetes/cmd/kubectl" if binary == "kubectl" else "./cmd/kube-apiserver"
    gobuild.build(go, work, package, entry / "bin" / binary, ldflags)


def _etcd(go: Go, entry: Path) -> None:
    dep = go.download("go.etcd.io/etcd/server/v3", versions.ETCD)
    work = go.root / "work" / f"etcd-{versions.ETCD}"
    gobuild.write_build_module(work, dep, mains={"cmd/etcd": _ETCD_MAIN})
    ldflags = [f"-X go.etcd.io/etcd/api/v3/version.GitSHA={versions.ETCD}"]
    gobuild.build(go, work, "./cmd/etcd", entry / "bin" / "etcd", ldflags)


def _helm(go: Go, entry: Path) -> None:
    dep = go.download("helm.sh/helm/v3", versions.HELM)
    work = go.root / "work" / f"helm-{versions.HELM}"
    gobuild.write_build_module(work, dep)
    # Helm's Makefile derives the default .Capabilities.KubeVersion from client-go.
    client_go = gobuild.require_version(dep.gomod, "k8s.io/client-go")
    k8s_minor = client_go.split(".")[1]
    ldflags = [
        f"-X helm.sh/helm/v3/internal/version.version={versions.HELM}",
        "-X helm.sh/helm/v3/internal/version.gitTreeState=clean",
    ]
    for pkg in ("helm.sh/helm/v3/pkg/lint/rules", "helm.sh/helm/v3/pkg/chartutil"):
        ldflags += [f"-X {pkg}.k8sVersionMajor=1", f"-X {pkg}.k8sVersionMinor={k8s_minor}"]
    gobuild.build(go, work, "helm.sh/helm/v3/cmd/helm", entry / "bin" / "helm", ldflags)


def _minio(go: Go, entry: Path) -> None:
    dep = go.download("github.com/minio/minio", versions.MINIO)
    work = go.root / "work" / "minio"
    gobuild.write_build_module(work, dep)
    stamp = versions.MINIO_COMMIT_TIME
    commit = versions.MINIO.rsplit("-", 1)[1]
    ldflags = [  # as buildscripts/gen-ldflags.go would stamp a release
        f"-X github.com/minio/minio/cmd.Version={stamp}",
        f"-X github.com/minio/minio/cmd.ReleaseTag=RELEASE.{stamp.replace(':', '-')}",
        f"-X github.com/minio/minio/cmd.CommitID={commit}",
        f"-X github.com/minio/minio/cmd.ShortCommitID={commit}",
        f"-X github.com/minio/minio/cmd.CopyrightYear={stamp[:4]}",
    ]
    gobuild.build(go, work, "github.com/minio/minio", entry / "bin" / "minio", ldflags)


def _kubeconform(go: Go, entry: Path) -> None:
    dep = go.download("github.com/yannh/kubeconform", versions.KUBECONFORM)
    work = go.root / "work" / "kubeconform"
    gobuild.write_build_module(work, dep)
    pkg = "github.com/yannh/kubeconform/cmd/kubeconform"
    ldflags = [f"-X main.version={versions.KUBECONFORM}"]
    gobuild.build(go, work, pkg, entry / "bin" / "kubeconform", ldflags)


def _promtool(go: Go, entry: Path) -> None:
    dep = go.download("github.com/prometheus/prometheus", versions.PROMETHEUS)
    work = go.root / "work" / "promtool"
    gobuild.write_build_module(work, dep)
    pkg = "github.com/prometheus/prometheus/cmd/promtool"
    ldflags = [f"-X github.com/prometheus/common/version.Version={versions.PROMETHEUS_RELEASE}"]
    gobuild.build(go, work, pkg, entry / "bin" / "promtool", ldflags)


def _kuberay_crds(go: Go, entry: Path) -> None:
    mod = go.download("github.com/ray-project/kuberay/ray-operator", versions.KUBERAY)
    out = entry / "crds"
    out.mkdir(parents=True)
    for crd in sorted((mod.dir / "config/crd/bases").glob("*.yaml")):
        shutil.copyfile(crd, out / crd.name)  # copyfile: modcache files are read-only
    if not (out / "ray.io_rayservices.yaml").exists():
        raise BuildError(f"no RayService CRD in {mod.dir}/config/crd/bases")


def _specs() -> list[ToolSpec]:
    k8s = versions.KUBERNETES
    return [
        ToolSpec("etcd", versions.ETCD, "bin/etcd", "server-etcdmain;r1", _etcd),
        ToolSpec(
            "kube-apiserver",
            k8s,
            "bin/kube-apiserver",
            f"staging={versions.KUBERNETES_STAGING};r1",
            lambda go, entry: _kubernetes(go, entry, "kube-apiserver"),
        ),
        ToolSpec(
            "kubectl",
            k8s,
            "bin/kubectl",
            f"staging={versions.KUBERNETES_STAGING};r1",
            lambda go, entry: _kubernetes(go, entry, "kubectl"),
        ),
        ToolSpec("helm", versions.HELM, "bin/helm", "r1", _helm),
        ToolSpec("minio", versions.MINIO, "bin/minio", "r1", _minio),
        ToolSpec("kubeconform", versions.KUBECONFORM, "bin/kubeconform", "r1", _kubeconform),
        ToolSpec("kuberay-crds", versions.KUBERAY, "crds", "bases;r1", _kuberay_crds),
        ToolSpec("promtool", versions.PROMETHEUS, "bin/promtool", "r1", _promtool),
    ]


# -- cache ------------------------------------------------------------------------


def _entry(spec: ToolSpec, root: Path) -> Path:
    return root / f"{spec.name}-{spec.version}"


def _recipe_hash(spec: ToolSpec) -> str:
    return hashlib.sha256(f"{spec.name}|{spec.version}|{spec.recipe}".encode()).hexdigest()[:16]


def read_marker(spec: ToolSpec, root: Path) -> dict[str, object] | None:
    """The completed-marker of ``spec``, or None when the entry is absent/stale."""
    entry = _entry(spec, root)
    try:
        marker: dict[str, object] = json.loads((entry / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if marker.get("recipe") != _recipe_hash(spec) or not (entry / spec.output).exists():
        return None
    return marker


@contextmanager
def _lock(root: Path) -> Iterator[None]:
    """Serialise concurrent builds (two CI jobs, or two terminals) on one cache."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".build.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _build_one(spec: ToolSpec, root: Path, go: Go) -> float:
    entry = _entry(spec, root)
    staging = root / f".{entry.name}.partial"
    for stale in (staging, entry):
        if stale.exists():
            shutil.rmtree(stale)
    staging.mkdir(parents=True)
    start = time.monotonic()
    spec.build(go, staging)
    seconds = round(time.monotonic() - start, 1)
    marker = {
        "name": spec.name,
        "version": spec.version,
        "recipe": _recipe_hash(spec),
        "build_seconds": seconds,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "go": go.version(),
    }
    (staging / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    staging.rename(entry)  # atomic: the entry appears complete or not at all
    return seconds


def _tools_from(root: Path) -> Tools:
    def path(name: str, version: str, rel: str) -> Path:
        return root / f"{name}-{version}" / rel

    k8s = versions.KUBERNETES
    return Tools(
        etcd=path("etcd", versions.ETCD, "bin/etcd"),
        kube_apiserver=path("kube-apiserver", k8s, "bin/kube-apiserver"),
        kubectl=path("kubectl", k8s, "bin/kubectl"),
        helm=path("helm", versions.HELM, "bin/helm"),
        minio=path("minio", versions.MINIO, "bin/minio"),
        kubeconform=path("kubeconform", versions.KUBECONFORM, "bin/kubeconform"),
        kuberay_crds=path("kuberay-crds", versions.KUBERAY, "crds"),
        promtool=path("promtool", versions.PROMETHEUS, "bin/promtool"),
    )


def ensure_tools(root: Path | None = None, report: Callable[[str], None] | None = None) -> Tools:
    """Build every missing or stale tool (one Go build at a time) and return paths."""
    root = root or tools_dir()
    say = report or (lambda _msg: None)
    with _lock(root):
        for spec in _specs():
            marker = read_marker(spec, root)
            if marker is not None:
                say(f"{spec.name} {spec.version}: cached (cold build {marker['build_seconds']}s)")
                continue
            say(f"{spec.name} {spec.version}: building ...")
            log = root / "_logs" / f"{spec.name}-{spec.version}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text("")
            seconds = _build_one(spec, root, Go(root / "_go", log))
            say(f"{spec.name} {spec.version}: built in {seconds}s")
    return _tools_from(root)


def missing_tools(root: Path | None = None) -> list[str]:
    """``name version`` of every tool without a valid completed-marker."""
    root = root or tools_dir()
    return [f"{s.name} {s.version}" for s in _specs() if read_marker(s, root) is None]


def tools_or_fail(root: Path | None = None) -> Tools:
    """The cached tools, or ToolsMissingError naming what is missing and how to build it."""
    root = root or tools_dir()
    missing = missing_tools(root)
    if missing:
        raise ToolsMissingError(
            f"test environment tools missing from {root}: {', '.join(missing)}. "
            f"Build them with `{BUILD_COMMAND}` (set HARK_TOOLS_DIR to use another cache)."
        )
    return _tools_from(root)


def disk_usage(path: Path) -> int:
    """Bytes used under ``path`` (files only, symlinks not followed)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with suppress(OSError):  # a file removed while we walk
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def prune_go_cache(root: Path | None = None) -> None:
    """Delete the private Go caches (modules are read-only, so make them writable)."""
    gocache = (root or tools_dir()) / "_go"
    if not gocache.exists():
        return
    for dirpath, dirs, _files in os.walk(gocache):
        for name in dirs:
            os.chmod(os.path.join(dirpath, name), 0o755)
    shutil.rmtree(gocache)
