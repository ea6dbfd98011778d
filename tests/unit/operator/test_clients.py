"""The HTTP client for /v1/items, settings from the environment, peering as kopf reads it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from aiohttp import web

from hark_operator.clients.serve import ServeProcessor
from hark_operator.errors import ProcessorUnavailable
from hark_operator.peering import higher_live_peers
from hark_operator.settings import load_operator_settings
from hark_serving.errors import ConfigError
from hark_serving.runs.itemspec import ItemRequest

REQ = ItemRequest(input_uri="s3://in-b/a.mp3", output_uri="s3://out-b/a.mp3", job="ns/j")


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Serve:
    """A local HTTP server in place of the Serve app: answers every request as told."""

    status: int = 200
    body: Any = None
    action: Callable[[web.Request], Any] | None = None  # instead of answering
    seen: list[Seen] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(Seen(request.path, dict(request.headers), await request.read()))
        if self.action is not None:
            await self.action(request)
        if isinstance(self.body, str):
            return web.Response(status=self.status, text=self.body)
        return web.json_response(self.body, status=self.status)


async def ask(serve: Serve, *, port: int | None = None, timeout: float = 10) -> Any:
    """Start `serve`, send REQ through a ServeProcessor, stop; the result or the error."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", serve.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    bound = runner.addresses[0][1]
    processor = ServeProcessor(
        f"http://127.0.0.1:{port or bound}/", token="t0k", identity="op-1", timeout=timeout
    )
    try:
        return await processor.process(REQ)
    except Exception as exc:
        return exc
    finally:
        await processor.aclose()
        await runner.cleanup()


def processed(status: int, body: Any, seen: list[Seen] | None = None) -> Any:
    serve = Serve(status, body)
    got = asyncio.run(ask(serve))
    if seen is not None:
        seen.extend(serve.seen)
    return got


def result(status: str, **kw: Any) -> dict[str, Any]:
    return {
        "status": status,
        "input_uri": REQ.input_uri,
        "output_uri": REQ.output_uri + ".json",
        **kw,
    }


def test_a_result_is_returned_with_the_request_sent_as_json_and_the_token() -> None:
    seen: list[Seen] = []
    got = processed(200, result("succeeded", audio_seconds=4.5), seen)
    assert got.status == "succeeded" and got.audio_seconds == 4.5
    (request,) = seen
    assert request.path == "/v1/items"
    assert request.headers["Authorization"] == "Bearer t0k"
    assert request.headers["X-Hark-Operator"] == "op-1"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.body)["input_uri"] == REQ.input_uri


def test_failed_results_keep_their_code_and_5xx_ones_are_retryable() -> None:
    error = {"code": "corrupt_audio", "message": "bad"}
    got = processed(422, result("failed", error=error))
    assert got.status == "failed" and not got.retryable and got.error is not None
    assert got.error.code == "corrupt_audio"
    down = {"code": "storage_unavailable", "message": "later"}
    got = processed(503, result("failed", error=down, retryable=True))
    assert got.retryable
    got = processed(500, result("failed", error={"code": "internal", "message": "bug"}))
    assert got.retryable  # a server-side failure may pass


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (503, {"error": {"code": "unavailable", "message": "starting"}}),
        (502, "<html>bad gateway</html>"),
        (429, {"error": {"code": "busy", "message": ""}}),
        (401, {"error": {"code": "unauthorized", "message": "token"}}),
        (404, {"error": {"code": "route_not_found", "message": "/v1/items"}}),
        (200, {"not": "a result"}),
    ],
)
def test_no_result_means_unavailable(status: int, body: Any) -> None:
    got = processed(status, body)
    assert isinstance(got, ProcessorUnavailable) and str(status) in str(got)


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_credential_is_named_as_such(status: int) -> None:
    from hark_operator.errors import ProcessorRefused

    got = processed(status, {"error": {"code": "unauthorized", "message": "bad token"}})
    assert isinstance(got, ProcessorRefused)
    assert got.code == "processor_refused" and str(status) in str(got) and "bad token" in str(got)


def test_connection_errors_mean_unavailable() -> None:
    from tests.env.services import free_port

    async def hang_up(request: web.Request) -> None:
        assert request.transport is not None
        request.transport.close()  # a replica gone mid-request: no answer at all

    async def dawdle(request: web.Request) -> None:
        await asyncio.sleep(2)

    refused = asyncio.run(ask(Serve(), port=free_port()))  # nothing listens there
    reset = asyncio.run(ask(Serve(action=hang_up)))
    slow = asyncio.run(ask(Serve(action=dawdle), timeout=0.3))
    for got in (refused, reset, slow):
        assert isinstance(got, ProcessorUnavailable), got


async def listening(serve: Serve) -> web.AppRunner:
    """`serve` answering every path on a free local port (`runner.addresses[0][1]`)."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", serve.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


def test_ready_asks_the_apps_readyz() -> None:
    from tests.env.services import free_port

    async def ready(status: int, port: int | None = None) -> tuple[bool, list[str]]:
        serve = Serve(status, {"ready": status == 200})
        runner = await listening(serve)
        processor = ServeProcessor(f"http://127.0.0.1:{port or runner.addresses[0][1]}")
        try:
            return await processor.ready(), [s.path for s in serve.seen]
        finally:
            await processor.aclose()
            await runner.cleanup()

    assert asyncio.run(ready(200)) == (True, ["/readyz"])
    assert asyncio.run(ready(503)) == (False, ["/readyz"])
    assert asyncio.run(ready(200, port=free_port())) == (False, [])


def test_deployed_is_false_only_when_no_app_answers() -> None:
    from tests.env.services import free_port

    async def deployed(
        status: int, port: int | None = None, stall: float = 0.0
    ) -> tuple[bool, list[str]]:
        async def slow(request: web.Request) -> None:
            await asyncio.sleep(stall)

        serve = Serve(status, {"status": "ok"}, action=slow if stall else None)
        runner = await listening(serve)
        processor = ServeProcessor(f"http://127.0.0.1:{port or runner.addresses[0][1]}")
        try:
            return await processor.deployed(timeout=0.5), [s.path for s in serve.seen]
        finally:
            await processor.aclose()
            await runner.cleanup()

    assert asyncio.run(deployed(200)) == (True, ["/healthz"])
    assert asyncio.run(deployed(401)) == (True, ["/healthz"])  # an app, refusing: still there
    assert asyncio.run(deployed(503)) == (True, ["/healthz"])
    assert asyncio.run(deployed(404)) == (False, ["/healthz"])  # the proxy: no app at the route
    assert asyncio.run(deployed(200, port=free_port())) == (False, [])  # nothing listens
    assert asyncio.run(deployed(200, stall=2.0)) == (True, ["/healthz"])  # slow: no verdict


def test_a_closed_processor_opens_no_new_connection() -> None:
    """A handler that runs on while the operator stops gets no socket that outlives it."""

    async def after_close() -> tuple[object, bool, list[str]]:
        serve = Serve(200, {"ready": True})
        runner = await listening(serve)
        processor = ServeProcessor(f"http://127.0.0.1:{runner.addresses[0][1]}")
        try:
            assert await processor.ready()
            await processor.aclose()
            try:
                got: object = await processor.process(REQ)
            except ProcessorUnavailable as exc:
                got = exc
            return got, await processor.ready(), [s.path for s in serve.seen]
        finally:
            await runner.cleanup()

    got, ready, seen = asyncio.run(after_close())
    assert isinstance(got, ProcessorUnavailable) and "the operator is stopping" in str(got)
    assert ready is False
    assert seen == ["/readyz"]  # nothing reached the app after the close


def test_a_bad_request_without_a_result_fails_the_item_for_good() -> None:
    got = processed(400, {"error": {"code": "invalid_input", "message": "no"}})
    assert got.status == "failed" and not got.retryable and got.error is not None
    assert got.error.code == "invalid_input"


def test_settings_come_from_hark_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARK_NAMESPACES", "a, b")
    monkeypatch.setenv("HARK_SCALER", "kuberay")
    monkeypatch.setenv("HARK_SCALE_MAX_REPLICAS", "8")
    monkeypatch.setenv("HARK_ITEMS_PER_REPLICA", "2.5")
    s = load_operator_settings()
    assert s.namespaces == ["a", "b"] and s.scaler == "kuberay"
    policy = s.scaling_policy()
    assert (policy.max_replicas, policy.items_per_replica) == (8, 2.5)
    assert load_operator_settings(namespaces=["x"]).namespaces == ["x"]  # flags win


@pytest.mark.parametrize(
    ("var", "value", "words"),
    [
        ("HARK_SCALER", "keda", "HARK_SCALER='keda'"),
        ("HARK_MAX_IN_FLIGHT", "0", "HARK_MAX_IN_FLIGHT='0'"),
        ("HARK_SCALE_MIN_REPLICAS", "9", "must not exceed HARK_SCALE_MAX_REPLICAS"),
    ],
)
def test_bad_settings_name_the_variable_and_value(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, words: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        load_operator_settings()


def test_the_serve_api_scaler_needs_a_dashboard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARK_SCALER", "serve-api")
    with pytest.raises(ConfigError, match="HARK_RAY_DASHBOARD_URL"):
        load_operator_settings()


def test_peers_that_pause_a_replica() -> None:
    now = datetime(2026, 5, 1, 12, tzinfo=timezone.utc)
    seen = (now - timedelta(seconds=10)).isoformat()
    old = (now - timedelta(seconds=120)).isoformat()
    peers = {
        "me": {"priority": 5, "lifetime": 60, "lastseen": seen},
        "higher": {"priority": 9, "lifetime": 60, "lastseen": seen},
        "same": {"priority": 5, "lifetime": 60, "lastseen": seen},
        "lower": {"priority": 1, "lifetime": 60, "lastseen": seen},
        "dead": {"priority": 99, "lifetime": 60, "lastseen": old},
        "junk": "x",
    }
    assert sorted(higher_live_peers(peers, "me", 5, now)) == ["higher", "same"]  # type: ignore[arg-type]
    assert higher_live_peers(peers, "higher", 9, now) == []  # type: ignore[arg-type]


def test_both_kube_clients_use_the_kubeconfig_named_when_they_log_in(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kopf
    import kubernetes  # noqa: F401  (imported before KUBECONFIG is set, as in a long-lived process)

    from hark_operator.clients.kube import load_api_client
    from hark_operator.handlers import login

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
                "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:7443"}}],
                "users": [{"name": "u", "user": {"token": "t0ken"}}],
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)

    info = login(settings=kopf.OperatorSettings(), logger=None)
    assert info is not None and info.server == "https://127.0.0.1:7443" and info.token == "t0ken"
    api = load_api_client()
    try:
        assert api.configuration.host == "https://127.0.0.1:7443"
    finally:
        api.close()
