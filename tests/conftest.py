"""Root test configuration.

The real test environment (API server, etcd, MinIO, Ray) lives in the
tests.env plugin; model and audio fixtures in tests.fixtures. Nothing starts
unless a test asks for it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.env.pytest_plugin", "tests.fixtures.pytest_plugin"]

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to test another checkout's code.

    .ci/setup shares one venv between clean clones and points its editable
    install at the checkout it last ran in; tests run from any other checkout
    would import that one's packages (and subprocesses, Ray workers and the
    `hark` command would too).
    """
    import hark_operator
    import hark_serving

    for package in (hark_serving, hark_operator):
        where = Path(package.__file__ or "").resolve()
        if not where.is_relative_to(REPO):
            raise pytest.UsageError(
                f"{package.__name__} is imported from {where.parent}, not from this checkout "
                f"({REPO}); run `bash .ci/setup` here first (it points the venv at this checkout)"
            )
