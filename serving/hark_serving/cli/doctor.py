"""`hark doctor`: is this machine ready to transcribe? Each problem with its fix.

The probes here do the I/O (imports, the model cache, one request per storage
profile with a short timeout); `hark_serving.cli.checks` decides what each
finding means. Output is a table, or `--json` for scripts; the exit code is 1
when any check failed.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from hark_serving.cli import exits
from hark_serving.cli.checks import (
    Check,
    check_cuda,
    check_funasr,
    check_hub_not_cached,
    check_model_dir,
    check_profiles,
    check_s3,
    check_s3_model,
    check_settings,
    check_torch,
    check_torchaudio,
    classify_s3_error,
    exit_code,
)

if TYPE_CHECKING:
    from hark_serving.config import Settings
    from hark_serving.storage.profiles import StorageProfiles
    from hark_serving.storage.s3 import S3Store

STATUS_STYLE = {"ok": "green", "warn": "yellow", "fail": "red"}


def library_checks() -> list[Check]:
    from hark_serving.engine.devices import nvidia_present, torch_cuda
    from hark_serving.engine.libraries import probe

    libs = probe()
    checks = [check_torch(libs), check_torchaudio(libs), check_funasr(libs)]
    cuda = None
    devices: list[str] = []
    if checks[0].status == "ok":
        import torch

        cuda = torch_cuda()
        if cuda.available:
            devices = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    checks.append(check_cuda(nvidia_present(), cuda, devices))
    return checks


def _quick(store: S3Store, timeout: float) -> S3Store:
    """The same endpoint and credentials, but one attempt with a short timeout."""
    from hark_serving.storage.s3 import S3Store

    settings = dataclasses.replace(
        store.settings, max_attempts=1, connect_timeout=timeout, read_timeout=timeout
    )
    return S3Store(settings, allowed_buckets=tuple(store.allowed_buckets))


def model_check(settings: Settings, timeout: float) -> Check:
    from hark_serving.engine.model_source import HUB_NAMES, check_layout, hub_cached
    from hark_serving.errors import HarkError, ModelError
    from hark_serving.storage.uris import as_prefix, is_s3, parse_s3_uri

    ref = settings.model
    if is_s3(ref):
        try:
            prefix = as_prefix(parse_s3_uri(ref))
            store = _quick(settings.s3_store(), timeout)
            listed = [o.key[len(prefix.key) :] for o in store.iter_objects(prefix)]
        except HarkError as exc:
            return check_s3_model(ref, None, str(exc))
        return check_s3_model(ref, listed, None)
    local = Path(ref).expanduser()
    if local.exists() or ref.startswith((".", "/", "~")):
        if not local.is_dir():
            return check_model_dir(ref, ref, f"{ref}: no such model directory; {_layout()}")
        return check_model_dir(ref, ref, _layout_error(check_layout, local, ref, ModelError))
    cached = hub_cached(ref, settings.model_cache, settings.model_hub)
    if cached is None:
        hub = HUB_NAMES.get(settings.model_hub, settings.model_hub)
        return check_hub_not_cached(ref, hub, str(settings.model_cache))
    return check_model_dir(ref, str(cached), _layout_error(check_layout, cached, ref, ModelError))


def _layout() -> str:
    from hark_serving.engine.model_source import LAYOUT_HINT

    return LAYOUT_HINT


def _layout_error(check: object, path: Path, ref: str, error: type[Exception]) -> str | None:
    try:
        check(path, ref)  # type: ignore[operator]
    except error as exc:
        return str(exc)
    return None


def s3_checks(profiles: StorageProfiles, timeout: float, configured: bool) -> list[Check]:
    """One real request per profile: HEAD each allowed bucket, or list the buckets."""
    checks = []
    for name in profiles.names:
        profile = profiles.profile(name)
        store = _quick(profiles.store(name), timeout)
        targets = list(profile.allowed_buckets) or ["list buckets"]
        try:
            if profile.allowed_buckets:
                for bucket in profile.allowed_buckets:
                    store.client.head_bucket(Bucket=bucket)
            else:
                store.client.list_buckets()
        except Exception as exc:  # every boto3 failure is a finding here, not a crash
            problem, message = classify_s3_error(exc)
            checks.append(
                check_s3(
                    name, profile.endpoint_url, targets, problem, message, configured=configured
                )
            )
            continue
        checks.append(check_s3(name, profile.endpoint_url, targets, None))
    return checks


def run_checks(model: str | None, timeout: float, *, s3: bool = True) -> list[Check]:
    from hark_serving.config import load_settings
    from hark_serving.errors import HarkError

    checks = library_checks()
    try:
        settings = load_settings(model=model)
    except HarkError as exc:
        return [*checks, check_settings(str(exc))]
    checks.append(check_settings(None))
    checks.append(model_check(settings, timeout))
    path = str(settings.storage_profiles) if settings.storage_profiles else None
    try:
        profiles = settings.profiles()
    except HarkError as exc:
        return [*checks, check_profiles(path, "", None, str(exc))]
    checks.append(check_profiles(path, profiles.spec.default, dict(profiles.spec.profiles), None))
    if s3:
        configured = bool(settings.storage_profiles or settings.s3_endpoint_url)
        checks += s3_checks(profiles, timeout, configured)
    return checks


def doctor(
    model: Annotated[
        str | None,
        typer.Option(help="Hub id, local model folder or s3:// prefix.", envvar="HARK_MODEL"),
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for each object store.", min=0.1)
    ] = 5.0,
    s3: Annotated[
        bool, typer.Option("--s3/--no-s3", help="Reach each storage profile's endpoint.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
) -> None:
    """Check torch, torchaudio, funasr, CUDA, the model, storage profiles and S3, with fixes."""
    from rich.console import Console
    from rich.table import Table

    from hark_serving.logs import setup_logging

    setup_logging(json_logs=False)
    checks = run_checks(model, timeout, s3=s3)
    code = exits.FAILURES if exit_code(checks) else exits.OK
    if as_json:
        typer.echo(json.dumps({"ok": code == exits.OK, "checks": [c.to_dict() for c in checks]}))
    else:
        table = Table(show_lines=True)
        for column in ("check", "status", "detail", "fix"):
            table.add_column(column, overflow="fold")
        for c in checks:
            style = STATUS_STYLE[c.status]
            table.add_row(c.name, f"[{style}]{c.status}[/{style}]", c.detail, c.fix)
        Console().print(table)
    raise typer.Exit(code)
