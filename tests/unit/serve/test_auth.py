"""Bearer-token auth: constant-time compare, health endpoints open."""

from __future__ import annotations

import pytest

from hark_serving.serve.auth import check_bearer, needs_token
from hark_serving.serve.errors import Unauthorized


def test_the_right_token_passes() -> None:
    check_bearer("Bearer s3cret", "s3cret")
    check_bearer("bearer s3cret", "s3cret")  # the scheme is case-insensitive


@pytest.mark.parametrize(
    "header, why",
    [
        (None, "missing"),
        ("", "missing"),
        ("Basic czNjcmV0", "Bearer"),
        ("Bearer", "Bearer"),
        ("Bearer wrong", "invalid"),
        ("Bearer s3cret-and-more", "invalid"),
        ("s3cret", "Bearer"),
    ],
)
def test_anything_else_is_refused_with_a_reason(header: str | None, why: str) -> None:
    with pytest.raises(Unauthorized, match=why) as info:
        check_bearer(header, "s3cret")
    assert info.value.code == "unauthorized"


def test_only_work_endpoints_need_the_token() -> None:
    assert needs_token("/v1/transcribe", "t")
    assert needs_token("/v1/items", "t")
    assert needs_token("/docs", "t")
    for open_path in ("/healthz", "/readyz", "/metrics"):
        assert not needs_token(open_path, "t")


def test_without_a_configured_token_nothing_needs_one() -> None:
    assert not needs_token("/v1/transcribe", None)
    assert not needs_token("/v1/transcribe", "")
