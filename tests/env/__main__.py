"""Command line: ``python -m tests.env build`` and ``python -m tests.env up --dir DIR``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tests.env import build
from tests.env.gobuild import BuildError


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def cmd_build(args: argparse.Namespace) -> int:
    root = build.tools_dir()
    start = time.monotonic()
    print(f"tools cache: {root}", flush=True)
    to_build = build.missing_tools(root)
    try:
        build.ensure_tools(root, report=lambda msg: print(msg, flush=True))
    except BuildError as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return 1
    if args.prune_go_cache and (root / "_go").exists():
        size = build.disk_usage(root / "_go")
        build.prune_go_cache(root)
        print(f"pruned the Go module/build cache ({_mib(size)})", flush=True)
    tools = sum(build.disk_usage(p) for p in root.iterdir() if p.name[0] not in "._")
    summary = f"all tools ready in {time.monotonic() - start:.1f}s; tools {_mib(tools)}"
    gocache = root / "_go"
    # Walking the Go caches (100k+ files) takes seconds: only when asked or after a build.
    if gocache.exists() and (args.du or to_build):
        summary += f", Go module/build cache {_mib(build.disk_usage(gocache))}"
    print(summary, flush=True)
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from tests.env import cluster  # imported late: `build` must work without cryptography

    return cluster.run_until_signalled(Path(args.dir))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.env", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help="build the pinned tools into the cache")
    p_build.add_argument(
        "--prune-go-cache",
        action="store_true",
        help="afterwards delete the Go module/build cache (saves disk; the next cold "
        "build downloads and compiles again)",
    )
    p_build.add_argument("--du", action="store_true", help="also report the size of the Go caches")
    p_build.set_defaults(func=cmd_build)
    p_up = sub.add_parser("up", help="start etcd, kube-apiserver and MinIO until SIGINT")
    p_up.add_argument("--dir", required=True, help="directory for env.sh, certs and data")
    p_up.set_defaults(func=cmd_up)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
