"""The Dockerfiles build what the chart runs (read, since no Docker is at hand here)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from .helpers import CHART, REPO, Rendered

DOCKER = REPO / "docker"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


@dataclass
class Instruction:
    op: str
    args: str
    stage: int


def parse(dockerfile: Path) -> list[Instruction]:
    """Instructions with continuation lines joined; `stage` counts FROMs (0-based)."""
    joined, current = [], ""
    for line in dockerfile.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        joined.append(current + line)
        current = ""
    out, stage = [], -1
    for text in joined:
        op, _, args = text.strip().partition(" ")
        if op.upper() == "FROM":
            stage += 1
        out.append(Instruction(op.upper(), args.strip(), stage))
    return out


def arg_defaults(instructions: list[Instruction]) -> dict[str, str]:
    return {
        name: value
        for i in instructions
        if i.op == "ARG" and "=" in i.args
        for name, value in [i.args.split("=", 1)]
    }


def expand(text: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m[1], m[0]), text)


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def copy_sources(instruction: Instruction) -> list[str]:
    words = [w for w in shlex.split(instruction.args) if not w.startswith("--")]
    return words[:-1]


def _pattern(glob: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus `**`) as a regex on a relative path."""
    out, i = "", 0
    glob = glob.strip("/")
    while i < len(glob):
        if glob.startswith("**", i):
            out += ".*"
            i += 2
        elif glob[i] == "*":
            out += "[^/]*"
            i += 1
        elif glob[i] == "?":
            out += "[^/]"
            i += 1
        elif glob[i] == "[" and "]" in glob[i:]:
            end = glob.index("]", i)
            out += glob[i : end + 1]
            i = end + 1
        else:
            out += re.escape(glob[i])
            i += 1
    return re.compile(out + "(/.*)?")


def ignored(path: str, rules: list[str]) -> bool:
    """Docker's rule: the last pattern that matches the path (or a parent of it) decides."""
    excluded = False
    for rule in rules:
        negate = rule.startswith("!")
        if _pattern(rule.lstrip("!")).fullmatch(path):
            excluded = not negate
    return excluded


DOCKERIGNORE = [
    line.strip()
    for line in (REPO / ".dockerignore").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_path_it_copies_exists_and_reaches_the_build_context(dockerfile: Path) -> None:
    copies = [i for i in parse(dockerfile) if i.op == "COPY" and "--from=" not in i.args]
    assert copies

    for source in (s for i in copies for s in copy_sources(i)):
        matches = sorted(REPO.glob(source.rstrip("/")))
        optional = "[" in source  # README.m[d]: copied when present
        assert matches or optional, f"{dockerfile.name}: COPY {source} matches nothing"
        for match in matches:
            files = [match] if match.is_file() else [p for p in match.rglob("*") if p.is_file()]
            kept = [f for f in files if not ignored(str(f.relative_to(REPO)), DOCKERIGNORE)]
            assert kept, f"{dockerfile.name}: .dockerignore leaves nothing of {source}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_base_images_are_pinned_by_version_with_a_digest_placeholder(dockerfile: Path) -> None:
    instructions = parse(dockerfile)
    args = arg_defaults(instructions)

    for image in {expand(i.args.split()[0], args) for i in instructions if i.op == "FROM"}:
        _, _, tag = image.partition(":")
        assert re.match(r"\d+\.\d+\.\d+", tag), f"{image} is not pinned to a version"
    assert re.search(r"@sha256:<digest>", dockerfile.read_text())


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_the_image_runs_as_a_numeric_non_root_user_and_carries_no_secrets(
    dockerfile: Path,
) -> None:
    final = final_stage(parse(dockerfile))
    users = [i.args for i in final if i.op == "USER"]
    declared = " ".join(i.args for i in final if i.op in ("ENV", "ARG", "LABEL"))

    assert users, "the final stage sets a USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    assert not re.search(r"(KEY|SECRET|TOKEN|PASSWORD)\w*\s*=", declared, re.I)


def test_the_operator_image_installs_the_operator_extra_and_no_torch() -> None:
    text = " ".join(i.args for i in parse(DOCKER / "operator.Dockerfile") if i.op == "RUN")
    extras = set(re.findall(r"\.whl\)?\[(\w+)\]", text))

    assert extras == {"operator"}
    assert "! pip show torch ray" in text


def test_the_operator_image_runs_what_the_chart_asks_for(defaults: Rendered) -> None:
    final = final_stage(parse(DOCKER / "operator.Dockerfile"))
    entrypoint = [i.args for i in final if i.op == "ENTRYPOINT"]
    container = defaults.operator_container()
    run_as = defaults.one("Deployment")["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    user = [i.args for i in final if i.op == "USER"][-1]

    assert entrypoint == ['["hark"]']
    assert "command" not in container
    assert container["args"] == ["operator"]
    assert user.split(":")[0] == str(run_as)


def test_the_serve_image_is_ray_with_cuda_at_the_charts_ray_version(defaults: Rendered) -> None:
    instructions = parse(DOCKER / "serve.Dockerfile")
    args = arg_defaults(instructions)
    final = final_stage(instructions)
    base = expand(final[0].args.split()[0], args)
    run = " ".join(i.args for i in final if i.op == "RUN")
    env = " ".join(i.args for i in final if i.op == "ENV")
    cache = VALUES["model"]["cache"]["mountPath"]

    assert re.fullmatch(rf"rayproject/ray:{re.escape(VALUES['ray']['version'])}-py311-cu12\d", base)
    assert args["RAY_VERSION"] == VALUES["ray"]["version"]
    assert set(re.findall(r"\.whl\)?\[(\w+)\]", run)) == {"serve"}
    assert f"mkdir -p {cache}" in run
    assert f"HARK_MODEL_CACHE={cache}" in env
    uid = [i.args for i in final if i.op == "USER"][-1]
    pod = defaults.rayservice()["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    assert uid == f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}"


def test_the_build_context_leaves_out_tests_virtualenvs_and_git() -> None:
    for path in (".venv/bin/python", "tests/conftest.py", ".git/config", "docs/architecture.md"):
        assert ignored(path, DOCKERIGNORE), path
    for path in ("pyproject.toml", "serving/hark_serving/config.py", "charts/hark/crds/x.yaml"):
        assert not ignored(path, DOCKERIGNORE), path
    assert ignored("serving/hark_serving/__pycache__/config.cpython-311.pyc", DOCKERIGNORE)
    assert ignored("serving/hark_serving/stray.pyc", DOCKERIGNORE)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_each_image_installs_with_the_pins_ci_tests_with(dockerfile: Path) -> None:
    instructions = parse(dockerfile)
    copied = [
        src
        for i in instructions
        if i.op == "COPY" and "--from" not in i.args
        for src in i.args.split()[:-1]  # the last word is the destination
    ]
    pip_installs = [i.args for i in final_stage(instructions) if "pip install" in i.args]

    assert ".ci/constraints.txt" in copied
    assert pip_installs and all(re.search(r"-c \S*constraints\.txt", run) for run in pip_installs)
    for path in copied:  # everything COPY names is in the build context
        assert not ignored(path, DOCKERIGNORE), path


def test_the_build_context_carries_the_license_files() -> None:
    for path in ("LICENSE", "NOTICE", ".ci/constraints.txt"):
        assert (REPO / path).is_file(), path
        assert not ignored(path, DOCKERIGNORE), path
