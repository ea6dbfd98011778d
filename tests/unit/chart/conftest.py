"""The pinned helm and the chart."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.env.build import tools_or_fail

from .helpers import CHART, Helm, Rendered, render


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """helm from the test environment's tool cache (fails with the build command if absent)."""
    return Helm(tools_or_fail().helm, tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="session")
def chart() -> Path:
    return CHART


@pytest.fixture(scope="session")
def defaults(helm: Helm, chart: Path) -> Rendered:
    """The chart rendered with its default values (release `hark` in namespace `hark`)."""
    return render(helm, chart)
