"""Bearer-token auth: two identities, each on its own routes; token files re-read on change."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from hark_serving.errors import ConfigError
from hark_serving.serve.auth import Tokens, TokenSource, identity_for, tokens_from
from hark_serving.serve.errors import Forbidden, Unauthorized
from hark_serving.serve.settings import ServeSettings


def tokens(api: str | None = "client-t", items: str | None = "items-t") -> Tokens:
    return Tokens(
        TokenSource("API_TOKEN", SecretStr(api) if api else None, None),
        TokenSource("ITEMS_TOKEN", SecretStr(items) if items else None, None),
    )


def test_routes_map_to_identities() -> None:
    assert identity_for("/v1/transcribe") == "client"
    assert identity_for("/v1/audio/transcriptions") == "client"
    assert identity_for("/docs") == "client"
    assert identity_for("/v1/items") == "items"
    for open_path in ("/healthz", "/readyz", "/metrics"):
        assert identity_for(open_path) is None


def test_each_token_passes_on_its_own_routes() -> None:
    t = tokens()
    t.check("/v1/transcribe", "Bearer client-t")
    t.check("/v1/audio/transcriptions", "bearer client-t")  # the scheme is case-insensitive
    t.check("/v1/items", "Bearer items-t")
    t.check("/healthz", None)


def test_the_api_token_is_forbidden_on_items_and_the_items_token_on_client_routes() -> None:
    t = tokens()
    with pytest.raises(Forbidden, match="HARK_ITEMS_TOKEN") as info:
        t.check("/v1/items", "Bearer client-t")
    assert info.value.code == "forbidden"
    with pytest.raises(Forbidden, match="only call /v1/items"):
        t.check("/v1/transcribe", "Bearer items-t")


@pytest.mark.parametrize(
    "header, why",
    [
        (None, "missing"),
        ("", "missing"),
        ("Basic czNjcmV0", "Bearer"),
        ("Bearer", "Bearer"),
        ("Bearer wrong", "invalid"),
        ("Bearer client-t-and-more", "invalid"),
        ("client-t", "Bearer"),
    ],
)
def test_anything_else_is_refused_with_a_reason(header: str | None, why: str) -> None:
    for path in ("/v1/transcribe", "/v1/items"):
        with pytest.raises(Unauthorized, match=why) as info:
            tokens().check(path, header)
        assert info.value.code == "unauthorized"


def test_a_route_whose_token_is_not_set_is_closed_once_auth_is_on() -> None:
    only_api = tokens(items=None)
    with pytest.raises(Forbidden, match="HARK_ITEMS_TOKEN"):
        only_api.check("/v1/items", "Bearer client-t")
    with pytest.raises(Forbidden, match="no items token"):
        only_api.check("/v1/items", "Bearer anything")
    only_items = tokens(api=None)
    with pytest.raises(Forbidden, match="no API token"):
        only_items.check("/v1/transcribe", "Bearer anything")


def test_without_any_token_nothing_needs_one() -> None:
    t = tokens(None, None)
    assert not t.enabled
    t.check("/v1/transcribe", None)
    t.check("/v1/items", None)


def test_a_token_file_is_read_again_when_the_secret_is_rotated(tmp_path: Path) -> None:
    # As the kubelet does: a new file, then the link swapped onto it.
    (tmp_path / "v1").write_text("first\n")
    link = tmp_path / "token"
    link.symlink_to(tmp_path / "v1")
    source = TokenSource("API_TOKEN", None, link)
    assert source.get() == "first"
    (tmp_path / "v2").write_text("second")
    (tmp_path / "next").symlink_to(tmp_path / "v2")
    os.replace(tmp_path / "next", link)
    assert source.get() == "second"
    t = Tokens(source, TokenSource("ITEMS_TOKEN", None, None))
    with pytest.raises(Unauthorized):
        t.check("/v1/transcribe", "Bearer first")
    t.check("/v1/transcribe", "Bearer second")


def test_a_vanished_or_empty_token_file_keeps_the_last_token(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("kept")
    source = TokenSource("API_TOKEN", None, path)
    path.write_text("")
    assert source.get() == "kept"
    path.unlink()
    assert source.get() == "kept"


def test_an_unreadable_or_empty_token_file_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"HARK_API_TOKEN_FILE=.*cannot read"):
        tokens_from(ServeSettings(api_token_file=tmp_path / "missing"))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match=r"HARK_ITEMS_TOKEN_FILE=.*empty"):
        tokens_from(ServeSettings(items_token_file=tmp_path / "empty"))


def test_settings_never_show_a_token(tmp_path: Path) -> None:
    s = ServeSettings(api_token="client-secret-value", items_token="items-secret-value")
    for text in (repr(s), str(s), repr(s.model_dump()), s.model_dump_json()):
        assert "secret-value" not in text
    assert "secret-value" not in repr(tokens_from(s))
