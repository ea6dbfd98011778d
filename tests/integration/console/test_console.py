"""The web console in headless Chromium against the real `hark serve` with the tiny model."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.env.environment import Environment

from .conftest import MAX_UPLOAD_BYTES, PROXY_MAX_BYTES, JobsAccess, Server

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FORMATS = ("json", "srt", "vtt", "txt")


def wait_until(page: Any, expression: str, timeout: float = 30) -> None:
    """Poll `expression` from here: the page's CSP forbids the eval that in-page polling uses."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"still false after {timeout:.0f}s: {expression}"
        page.wait_for_timeout(100)


def api_transcribe(server: Server, path: Path, **fields: str) -> Any:
    with server.client() as client, path.open("rb") as f:
        r = client.post("/v1/transcribe", files={"file": (path.name, f)}, data=fields)
    return r


def transcribe_in_page(tab: Any, path: Path) -> Any:
    """Pick `path` and press Transcribe; returns the API answer the page received."""
    page = tab.page
    page.set_input_files("#files", str(path))
    with page.expect_response(lambda r: r.url.endswith("/v1/transcribe")) as answer:
        page.click("#start")
    return answer.value


def shown_segments(page: Any) -> list[dict[str, Any]]:
    return page.eval_on_selector_all(
        "#segments li.seg",
        """els => els.map(li => ({
            start: Number(li.dataset.start), end: Number(li.dataset.end),
            text: li.querySelector('.seg-text').textContent}))""",
    )


def test_the_page_is_served_with_a_same_origin_policy_and_without_a_token(
    hark_server: Server,
) -> None:
    with hark_server.client(token="") as client:
        page = client.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert "connect-src 'self'" in csp
        assert client.get("/console/js/main.js").status_code == 200
        # The data stays behind the token.
        for path in ("/v1/console/config", "/v1/jobs"):
            refused = client.get(path)
            assert refused.status_code == 401, path
            assert refused.json()["error"]["code"] == "unauthorized"


def test_an_upload_shows_the_api_segments_seeks_and_downloads_every_format(
    open_page: Any, hark_server: Server, audio_dir: Path, tmp_path: Path
) -> None:
    audio = audio_dir / "speech_en_16k.wav"
    tab = open_page()
    page = tab.page
    received = transcribe_in_page(tab, audio)
    assert received.status == 200
    page.wait_for_selector("#queue .state-done")
    document = received.json()

    expected = api_transcribe(hark_server, audio).json()
    shown = shown_segments(page)
    assert len(shown) == len(expected["segments"]) > 1
    assert shown == [
        {"start": s["start"], "end": s["end"], "text": s["text"]} for s in expected["segments"]
    ]
    assert page.eval_on_selector_all("#timeline .lane", "els => els.length") == 1

    # Clicking a segment seeks the player to its start and highlights it.
    wait_until(page, "document.getElementById('player').readyState >= 1")
    second = expected["segments"][1]
    page.click("#segments li.seg:nth-child(2) .seg-text")
    wait_until(
        page, f"Math.abs(document.getElementById('player').currentTime - {second['start']}) < 0.05"
    )
    assert page.get_attribute("#segments li.seg:nth-child(2)", "aria-current") == "true"
    tab.screenshot("result")

    # Downloads equal the API's own answers for the same file.
    for fmt in FORMATS:
        with page.expect_download() as download:
            page.click(f"#downloads button[data-format={fmt}]")
        saved = tmp_path / f"download.{fmt}"
        download.value.save_as(saved)
        assert download.value.suggested_filename == f"speech_en_16k.{fmt}"
        if fmt == "json":
            assert json.loads(saved.read_text()) == document
            continue
        api = api_transcribe(hark_server, audio, format=fmt)
        assert api.status_code == 200
        assert saved.read_text() == api.text, fmt
    tab.finish()


def test_split_channels_word_timestamps_roles_and_emoji_tags(
    open_page: Any, hark_server: Server, audio_dir: Path
) -> None:
    audio = audio_dir / "call_stereo_8k.wav"
    tab = open_page()
    page = tab.page
    page.check("#opt-split")
    page.check("#opt-words")
    page.fill("#opt-role-0", "agent")
    page.fill("#opt-role-1", "customer")
    received = transcribe_in_page(tab, audio)
    assert received.status == 200
    document = received.json()
    page.wait_for_selector("#queue .state-done")

    expected = api_transcribe(
        hark_server, audio, channels="split", timestamps="word", language="auto"
    ).json()
    assert [(s["start"], s["end"], s["text"]) for s in document["segments"]] == [
        (s["start"], s["end"], s["text"]) for s in expected["segments"]
    ]
    lanes = page.eval_on_selector_all("#timeline .lane-label", "els => els.map(e => e.textContent)")
    channels = sorted({s["channel"] for s in expected["segments"]})
    assert lanes == [["agent", "customer"][c] for c in channels]

    # A word seeks to its own start.
    words = [(i, w) for i, s in enumerate(expected["segments"]) for w in s["words"] or []]
    if words:
        i, word = words[-1]
        n = len(expected["segments"][i]["words"])
        page.click(f"#segments li.seg:nth-child({i + 1}) .word:nth-of-type({n})")
        wait_until(
            page,
            f"Math.abs(document.getElementById('player').currentTime - {word['start']}) < 0.05",
        )

    # The emoji style swaps readable tags for the SenseVoice demo's emoji, keeping the names.
    langs = page.eval_on_selector_all("#segments .badge.lang", "els => els.map(e => e.title)")
    page.select_option("#label-style", "emoji")
    emoji = page.eval_on_selector_all("#segments .badge.lang", "els => els.map(e => e.textContent)")
    assert len(emoji) == len(langs)
    assert all(e != name for e, name in zip(emoji, langs, strict=True))
    tab.screenshot("result-split-emoji")
    tab.finish()


def test_a_file_that_is_not_audio_shows_the_api_message(
    open_page: Any, hark_server: Server, audio_dir: Path
) -> None:
    bad = audio_dir / "broken_not_audio.mp3"
    api = api_transcribe(hark_server, bad)
    assert api.status_code == 415
    message = api.json()["error"]["message"]
    tab = open_page()
    received = transcribe_in_page(tab, bad)
    assert received.status == 415
    tab.page.wait_for_selector("#queue .state-error")
    assert tab.page.text_content("#queue .state-error .status") == message
    tab.screenshot("error")
    tab.finish(allowed_statuses=(415,))


def test_a_file_over_the_upload_limit_shows_the_api_message(
    open_page: Any, hark_server: Server, audio_dir: Path
) -> None:
    big = audio_dir / "speech_en_44k_stereo.wav"
    assert big.stat().st_size > MAX_UPLOAD_BYTES
    api = api_transcribe(hark_server, big)
    assert api.status_code == 413
    message = api.json()["error"]["message"]
    tab = open_page()
    received = transcribe_in_page(tab, big)
    assert received.status == 413
    tab.page.wait_for_selector("#queue .state-error")
    assert tab.page.text_content("#queue .state-error .status") == message
    tab.finish(allowed_statuses=(413,))


@contextlib.contextmanager
def slow_uploads(server: Server, count: int) -> Iterator[None]:
    """`count` uploads of the largest size the server takes, each trickling its file
    part (fast enough for the receive timeout): Serve's proxy is full until the block
    ends."""
    host, port = server.url.removeprefix("http://").split(":")
    stop = threading.Event()
    socks = []
    head = (
        b'--hog\r\nContent-Disposition: form-data; name="file"; filename="hog.wav"\r\n'
        b"Content-Type: audio/wav\r\n\r\n"
    )
    for _ in range(count):
        sock = socket.create_connection((host, int(port)))
        sock.sendall(
            f"POST /v1/transcribe HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {server.token}\r\nContent-Length: {MAX_UPLOAD_BYTES}\r\n"
            "Content-Type: multipart/form-data; boundary=hog\r\n\r\n".encode()
            + head
        )
        socks.append(sock)

    def trickle() -> None:
        while not stop.wait(0.5):
            for sock in socks:
                sock.sendall(b"\0" * 2048)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        time.sleep(1.0)  # the proxy has admitted them
        yield
    finally:
        stop.set()
        thread.join()
        for sock in socks:
            sock.close()


def test_a_busy_server_shows_its_message_and_when_to_try_again(
    open_page: Any, hark_server: Server, audio_dir: Path
) -> None:
    """Serve's proxy is full: the API answers 503 with Retry-After, and the page says so."""
    clip = audio_dir / "one_sentence_16k.wav"
    tab = open_page()
    with slow_uploads(hark_server, 2):
        api = api_transcribe(hark_server, clip)
        received = transcribe_in_page(tab, clip)
        tab.page.wait_for_selector("#queue .state-error")
        shown = tab.page.text_content("#queue .state-error .status")
        tab.screenshot("busy")
    assert api.status_code == 503 and api.headers["Retry-After"] == "5"
    error = api.json()["error"]
    assert error["code"] == "overloaded" and str(PROXY_MAX_BYTES) in error["message"]
    assert received.status == 503
    assert shown is not None and shown.endswith(" — The server is busy; try again in 5 s.")
    assert "bytes of request bodies are in progress here" in shown
    tab.finish(allowed_statuses=(503,))
    assert api_transcribe(hark_server, clip).status_code == 200  # free again


def test_the_page_asks_for_the_token_and_refuses_a_wrong_one(
    open_page: Any, hark_server: Server
) -> None:
    with hark_server.client(token="wrong") as client:
        refused = client.get("/v1/console/config").json()["error"]["message"]
    tab = open_page(token=None)
    page = tab.page
    page.wait_for_selector("#token-dialog[open]")
    page.fill("#token-input", "wrong")
    page.click("#token-form button[type=submit]")
    wait_until(page, "document.getElementById('token-error').textContent.length > 0")
    assert refused in page.text_content("#token-error")
    assert page.is_visible("#token-dialog")
    assert page.evaluate("sessionStorage.getItem('hark.token')") is None
    tab.screenshot("token-refused")

    page.fill("#token-input", hark_server.token)
    page.click("#token-form button[type=submit]")
    page.wait_for_selector("body[data-ready=true]")
    assert not page.is_visible("#token-dialog")
    assert page.evaluate("sessionStorage.getItem('hark.token')") == hark_server.token
    assert page.evaluate("localStorage.getItem('hark.token')") is None
    tab.finish(allowed_statuses=(401,))


def test_the_interface_follows_the_browser_language_and_switches(open_page: Any) -> None:
    tab = open_page(locale="zh-CN")
    page = tab.page
    assert page.text_content("#start") == "开始转写"
    assert page.get_attribute("html", "lang") == "zh-CN"
    tab.screenshot("transcribe-zh")
    page.select_option("#ui-lang", "en")
    assert page.text_content("#start") == "Transcribe"
    tab.finish()


def test_a_recording_from_the_microphone_is_transcribed(open_page: Any) -> None:
    tab = open_page()
    page = tab.page
    page.click("#record")
    wait_until(page, "document.getElementById('record').getAttribute('aria-pressed') === 'true'")
    page.wait_for_timeout(2500)  # the fake microphone's tone, long enough to decode
    page.click("#record")
    page.wait_for_selector("#queue .queue-item")
    with page.expect_response(lambda r: r.url.endswith("/v1/transcribe")) as answer:
        page.click("#start")
    assert answer.value.status == 200, answer.value.text()
    document = answer.value.json()
    assert document["source"]["format"] in {"webm", "matroska,webm", "matroska", "ogg"}
    assert document["source"]["duration"] > 0
    page.wait_for_selector("#queue .state-done")
    tab.finish()


def set_status(test_env: Environment, namespace: str, name: str, status: dict[str, Any]) -> None:
    test_env.kubectl(
        "patch", "tj", name, "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip


def test_the_jobs_view_lists_a_job_and_its_progress(
    open_page: Any, hark_server: Server, test_env: Environment
) -> None:
    ns = hark_server.namespace
    manifest = {
        "apiVersion": "hark.dev/v1alpha1",
        "kind": "TranscriptionJob",
        "metadata": {"name": "calls-march", "namespace": ns},
        "spec": {"input": {"uri": "s3://calls/in/"}, "output": {"uri": "s3://calls/out/"}},
    }
    test_env.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    summary = f"s3://calls/out/_hark/{ns}.calls-march/summary.json"
    set_status(
        test_env,
        ns,
        "calls-march",
        {
            "phase": "Running",
            "progress": "3/10",
            "counts": {"total": 10, "succeeded": 3, "failed": 1, "inFlight": 2, "pending": 4},
            "summaryUri": summary,
            "recentFailures": [
                {"key": "in/a.mp3", "reason": "corrupt_audio", "message": "cannot decode a.mp3"}
            ],
        },
    )
    with hark_server.client() as client:
        listed = client.get("/v1/jobs").json()
    row = next(j for j in listed["jobs"] if j["name"] == "calls-march")
    assert row["counts"]["succeeded"] == 3 and row["phase"] == "Running"

    tab = open_page()
    page = tab.page
    page.click("#tab-jobs")
    selector = f"#jobs-body tr[data-job='{ns}/calls-march']"
    page.wait_for_selector(selector)
    assert page.text_content(f"{selector} .phase") == "Running"
    assert page.text_content(f"{selector} .count").strip() == "3/10"
    assert page.text_content(f"{selector} .failed") == "1"
    assert page.text_content(f"{selector} td.uri code") == summary.replace(
        "summary.json", "report.html"
    )
    page.click(f"{selector} details summary")
    assert "in/a.mp3" in page.text_content(f"{selector} details")
    tab.screenshot("jobs")

    # Progress moves: the view follows on refresh.
    set_status(test_env, ns, "calls-march", {"progress": "10/10", "phase": "Succeeded",
               "counts": {"total": 10, "succeeded": 9, "failed": 1}})  # fmt: skip
    page.click("#jobs-refresh")
    wait_until(page, f"document.querySelector(\"{selector} .phase\").textContent === 'Succeeded'")
    assert page.text_content(f"{selector} .count").strip() == "9/10"
    tab.finish()


def test_the_jobs_view_holds_read_access_to_jobs_and_nothing_more(
    test_env: Environment, jobs_access: JobsAccess
) -> None:
    """The token the server lists with (the chart's console-jobs RBAC) may read jobs only."""
    who = f"--as=system:serviceaccount:{jobs_access.service_account}"

    def can_i(*what: str, namespace: str = jobs_access.namespace) -> str:
        out = test_env.kubectl("auth", "can-i", *what, "-n", namespace, who, check=False)
        return out.stdout.strip()

    for verb in ("get", "list", "watch"):
        assert can_i(verb, "transcriptionjobs.hark.dev") == "yes", verb
    for verb in ("create", "patch", "update", "delete"):
        assert can_i(verb, "transcriptionjobs.hark.dev") == "no", verb
    assert can_i("patch", "transcriptionjobs.hark.dev", "--subresource=status") == "no"
    assert can_i("get", "secrets") == "no"
    assert can_i("list", "pods") == "no"
    assert can_i("list", "transcriptionjobs.hark.dev", namespace="default") == "no"


def test_controls_are_labelled_and_the_keyboard_reaches_the_file_picker(open_page: Any) -> None:
    tab = open_page()
    page = tab.page
    unlabelled = page.eval_on_selector_all(
        "input, select, button, audio",
        """els => els.filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                                  && !e.textContent.trim()).map(e => e.id || e.outerHTML)""",
    )
    assert unlabelled == []
    assert page.get_attribute("#files", "multiple") is not None
    # Enter on the focused drop zone opens the picker (counted here, not opened: a native
    # dialog in headless Chromium depends on window focus, which parallel tabs take).
    page.evaluate(
        "() => { window.picked = 0;"
        " document.getElementById('files').click = () => { window.picked += 1; }; }"
    )
    page.focus("#drop")
    page.keyboard.press("Enter")
    page.keyboard.press(" ")
    wait_until(page, "window.picked === 2")
    tab.finish()
