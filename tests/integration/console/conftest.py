"""The real `hark serve` (tiny model, API token, jobs view on the test API server) and
headless Chromium (Debian's `chromium`, driven by Playwright).

Every page a test opens records its requests and its console: `Page.finish()`
fails the test on a request outside the server's origin, a console error or an
uncaught exception, except HTTP error statuses the test says it provokes.
Screenshots go to `test-artifacts/console/` under the repository.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.env.environment import Environment
from tests.env.kube import apply_yaml, unique_name

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "hark"
CRDS = CHART / "crds"
ARTIFACTS = REPO / "test-artifacts" / "console"
CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "console-test-token"
MAX_UPLOAD_BYTES = 4_000_000
PROXY_MAX_BYTES = 2 * MAX_UPLOAD_BYTES


@dataclass
class Server:
    url: str
    token: str
    namespace: str
    log: Path

    def client(self, token: str | None = None) -> httpx.Client:
        given = self.token if token is None else token
        headers = {"Authorization": f"Bearer {given}"} if given else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=300)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"hark serve exited with {proc.returncode}:\n{log.read_text()[-4000:]}"
            )
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError(
        f"hark serve at {url} not ready after {timeout:.0f}s:\n{log.read_text()[-4000:]}"
    )


@dataclass
class JobsAccess:
    namespace: str
    service_account: str  # namespace:name
    kubeconfig: Path


@pytest.fixture(scope="session")
def jobs_access(test_env: Environment, tmp_path_factory: pytest.TempPathFactory) -> JobsAccess:
    """A namespace with the chart's console-jobs RBAC, and a kubeconfig holding nothing but
    the token of the head pod's ServiceAccount: the jobs view reads with what the chart
    grants, not with the admin's credentials."""
    apply_yaml(test_env, CRDS)
    test_env.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", CRDS)
    ns = unique_name("console-jobs")
    test_env.kubectl("create", "namespace", ns)
    rendered = test_env.helm(
        "template", "hark", CHART, "--namespace", ns,
        "--set", "console.jobs.enabled=true", "--set", f"console.jobs.namespaces={{{ns}}}",
        "--show-only", "templates/ray-head-serviceaccount.yaml",
        "--show-only", "templates/ray-serviceaccount.yaml",
        "--show-only", "templates/console-jobs-role.yaml",
        "--show-only", "templates/console-jobs-rolebinding.yaml",
    ).stdout  # fmt: skip
    apply_yaml(test_env, rendered, namespace=ns)
    account = "hark-ray-head"
    token = test_env.kubectl("create", "token", account, "-n", ns).stdout.strip()
    kubeconfig = tmp_path_factory.mktemp("console-kube") / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "test",
                        "cluster": {
                            "server": test_env.api_url,
                            "certificate-authority": str(test_env.ca_file),
                        },
                    }
                ],
                "users": [{"name": account, "user": {"token": token}}],
                "contexts": [{"name": "ray", "context": {"cluster": "test", "user": account}}],
                "current-context": "ray",
            }
        )
    )
    return JobsAccess(ns, f"{ns}:{account}", kubeconfig)


@pytest.fixture(scope="session")
def hark_server(
    test_env: Environment,
    tiny_model_dir: Path,
    jobs_access: JobsAccess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    """`hark serve` as a user runs it, with a token and the jobs view on one namespace."""
    port = _free_port()
    log = tmp_path_factory.mktemp("hark-serve") / "serve.log"
    env = dict(os.environ)
    paths = [str(REPO / "serving"), str(REPO / "operator"), str(REPO)]
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")])
    env.update(
        {
            "HARK_API_TOKEN": TOKEN,
            # Small, so a test can go over it with a fixture file.
            "HARK_MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
            # Two of the largest uploads at once fill Serve's proxy (a test holds two open
            # to show the busy state); the first upload is always admitted, so the other
            # tests, which send one at a time, never meet it.
            "HARK_PROXY_MAX_BYTES_IN_FLIGHT": str(PROXY_MAX_BYTES),
            "HARK_CONSOLE_JOBS_NAMESPACES": jobs_access.namespace,
            "KUBECONFIG": str(jobs_access.kubeconfig),
            "RAY_USAGE_STATS_ENABLED": "0",
        }
    )
    cmd = [
        sys.executable, "-m", "hark_serving.cli.main", "serve",
        "--model", str(tiny_model_dir), "--port", str(port), "--device", "cpu",
        "--threads", "1", "--workers", "1", "--transcribers", "1", "--ray-num-cpus", "4",
        # The tests compare the console's answer with the API's for the same file: equal
        # whatever shares a batch only in the exact float32 (int8, the CPU default, may
        # move a token with its batch: docs/precision.md).
        "--precision", "float32",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, log)
        yield Server(url, TOKEN, jobs_access.namespace, log)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Per module, not per session: Playwright's sync API keeps an event loop running in
    this thread while it is open, and every later test's `asyncio.run` would refuse to start."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "install Debian's chromium (apt-get install -y chromium)"
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            # A fake microphone, granted without a prompt: the recording test needs one.
            args=["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"],
        )
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Page:
    """A browser tab on the server, recording what it asks for and what it complains about."""

    page: Any
    origin: str
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path

    def finish(self, allowed_statuses: tuple[int, ...] = ()) -> None:
        outside = [
            u
            for u in self.requests
            if not (u.startswith(self.origin + "/") or u.startswith("blob:"))
        ]
        assert not outside, f"requests outside {self.origin}: {outside}"
        allowed = [f"the server responded with a status of {s} " for s in allowed_statuses]
        errors = [e for e in self.errors if not any(a in e for a in allowed)]
        assert not errors, f"browser console errors: {errors}"


@pytest.fixture
def open_page(browser: Any, hark_server: Server) -> Iterator[Any]:
    """`open_page(token=..., locale=...)` → a `Page` on the console, every one checked at the end."""
    contexts = []

    def opener(token: str | None = hark_server.token, locale: str = "en-US") -> Page:
        context = browser.new_context(
            accept_downloads=True, locale=locale, viewport={"width": 1280, "height": 900}
        )
        contexts.append(context)
        page = context.new_page()
        tab = Page(page, hark_server.url)
        page.on("request", lambda r: tab.requests.append(r.url))
        page.on("console", lambda m: m.type == "error" and tab.errors.append(m.text))
        page.on("pageerror", lambda e: tab.errors.append(f"uncaught: {e}"))
        if token:
            # What the token prompt stores, set before the page runs: the tab starts signed in.
            page.add_init_script(f"sessionStorage.setItem('hark.token', {token!r})")
        page.goto(hark_server.url + "/")
        if token:
            page.wait_for_selector("body[data-ready=true]")
        return tab

    yield opener
    for context in contexts:
        context.close()
