"""The console's routes over a fake backend, and the jobs view's rows (no browser, no cluster)."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any

import pytest
import tomllib
from fastapi.testclient import TestClient

import hark_serving
from hark_serving.serve.api import build_api
from hark_serving.serve.console.jobs import job_row, parse_namespaces, report_uri, sort_rows
from hark_serving.serve.console.routes import CSP, load_assets
from hark_serving.serve.settings import ServeSettings
from hark_serving.transcript.writers import render

from .conftest import make_transcript
from .test_api import FakeBackend


def client(**settings: Any) -> TestClient:
    return TestClient(build_api(FakeBackend(), ServeSettings(**settings)))


def test_every_shipped_asset_is_served_with_the_policy_and_no_token() -> None:
    c = client(api_token="s3cret")
    assets = load_assets()
    assert {"/", "/console/index.html", "/console/js/main.js", "/console/console.css"} <= set(
        assets
    )
    for path in assets:
        r = c.get(path)
        assert r.status_code == 200, path
        assert r.headers["content-security-policy"] == CSP
        assert r.headers["x-content-type-options"] == "nosniff"
    assert c.get("/").headers["content-type"].startswith("text/html")
    assert c.get("/console/js/main.js").headers["content-type"].startswith("text/javascript")


def test_the_policy_allows_only_the_page_own_origin() -> None:
    directives = dict(d.split(" ", 1) for d in CSP.split("; "))
    assert directives["default-src"] == "'none'"
    for name in ("script-src", "style-src", "connect-src", "font-src"):
        assert directives[name] == "'self'", name
    assert "http" not in CSP and "*" not in CSP and "unsafe" not in CSP


def test_the_page_references_only_relative_same_origin_urls() -> None:
    html = load_assets()["/"].body.decode()
    assert "http://" not in html and "https://" not in html and "//" not in html.replace("<!--", "")


def test_an_asset_is_revalidated_by_etag_and_head_has_no_body() -> None:
    c = client()
    first = c.get("/console/console.css")
    again = c.get("/console/console.css", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    head = c.head("/")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(c.get("/").content))


@pytest.mark.parametrize(
    "path", ["/console/../api.py", "/console/js/../../routes.py", "/console/missing.js", "/index"]
)
def test_nothing_but_the_shipped_files_is_served(path: str) -> None:
    r = client(api_token="s3cret").get(path, headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "route_not_found"


def test_a_post_to_the_page_goes_through_the_api_and_its_auth() -> None:
    r = client(api_token="s3cret").post("/")
    assert r.status_code == 401


def test_auth_json_says_whether_a_token_is_needed_and_nothing_more() -> None:
    assert client(api_token="s3cret").get("/console/auth.json").json() == {"token_required": True}
    assert client().get("/console/auth.json").json() == {"token_required": False}


def test_config_is_behind_the_token_and_tells_the_jobs_view_state() -> None:
    c = client(api_token="s3cret")
    assert c.get("/v1/console/config").status_code == 401
    wrong = c.get("/v1/console/config", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["message"] == "invalid bearer token"
    ok = c.get("/v1/console/config", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and ok.json()["jobs"] is False
    on = client(console_jobs_namespaces="a,b").get("/v1/console/config").json()
    assert on["jobs"] is True


def test_the_jobs_route_is_off_unless_namespaces_are_named() -> None:
    r = client().get("/v1/jobs")
    assert r.status_code == 404
    assert "HARK_CONSOLE_JOBS_NAMESPACES" in r.json()["error"]["message"]
    assert client(api_token="s3cret", console_jobs_namespaces="a").get("/v1/jobs").status_code == (
        401
    )


@pytest.mark.parametrize("fmt", ["json", "srt", "vtt", "txt"])
def test_render_equals_the_api_writers(fmt: str) -> None:
    transcript = make_transcript(words=True)
    r = client().post(f"/v1/console/render?format={fmt}", content=transcript.to_json())
    assert r.status_code == 200
    assert r.text == render(transcript, fmt)


def test_render_refuses_an_unknown_format_and_a_document_that_is_not_a_transcript() -> None:
    c = client()
    bad_format = c.post("/v1/console/render?format=docx", content=make_transcript().to_json())
    assert bad_format.status_code == 422
    assert bad_format.json()["error"]["code"] == "invalid_option"
    assert "docx" in bad_format.json()["error"]["message"]
    not_transcript = c.post("/v1/console/render?format=srt", content=json.dumps({"a": 1}))
    assert not_transcript.status_code == 422
    assert "hark.transcript/v1" in not_transcript.json()["error"]["message"]


def test_namespaces_setting() -> None:
    assert parse_namespaces("") == ()
    assert parse_namespaces(" a, b ,a") == ("a", "b")
    assert parse_namespaces("a,*") == ("*",)


def test_a_job_becomes_a_row_with_progress_failures_and_report() -> None:
    obj = {
        "metadata": {"name": "j", "namespace": "n", "creationTimestamp": "2026-01-02T03:04:05Z"},
        "spec": {"mode": "Batch", "input": {"uri": "s3://b/in/"}, "output": {"uri": "s3://b/o/"}},
        "status": {
            "phase": "Running",
            "progress": "1/3",
            "counts": {"total": 3, "succeeded": 1, "failed": 1, "inFlight": True},
            "summaryUri": "s3://b/o/_hark/n.j/summary.json",
            "recentFailures": [{"key": "in/x.wav", "reason": "corrupt_audio"}, "junk"],
            "conditions": [{"type": "Ready", "message": "working"}],
        },
    }
    row = job_row(obj)
    assert row["counts"] == {
        "total": 3,
        "succeeded": 1,
        "failed": 1,
        "skipped": 0,
        "inFlight": 0,
        "pending": 0,
    }
    assert row["report_uri"] == "s3://b/o/_hark/n.j/report.html"
    assert row["recent_failures"] == [
        {"key": "in/x.wav", "reason": "corrupt_audio", "message": "", "time": None}
    ]
    assert row["condition"] == {"type": "Ready", "message": "working"}
    fresh = job_row({"metadata": {"name": "new", "namespace": "n"}})
    assert fresh["phase"] == "Pending" and fresh["report_uri"] is None
    assert fresh["counts"]["total"] == 0


def test_rows_are_newest_first() -> None:
    rows = [
        job_row({"metadata": {"name": n, "namespace": "x", "creationTimestamp": ts}})
        for n, ts in (("old", "2026-01-01T00:00:00Z"), ("new", "2026-02-01T00:00:00Z"))
    ]
    assert [r["name"] for r in sort_rows(rows)] == ["new", "old"]
    assert report_uri("summary.json") is None


def test_every_console_file_is_in_the_package_data() -> None:
    """A built wheel carries the page: each file under static/ matches a package-data glob."""
    root = Path(hark_serving.__file__).parent
    repo = root.parents[1]
    globs = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["hark_serving"]
    files = [p for p in (root / "serve/console/static").rglob("*") if p.is_file()]
    assert files
    for path in files:
        rel = path.relative_to(root).as_posix()
        assert any(fnmatch.fnmatch(rel, g) for g in globs), f"{rel} is not in package-data"
