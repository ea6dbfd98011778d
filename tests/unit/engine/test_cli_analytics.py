"""`hark transcribe` with call analytics: roles, categories, alerts to a webhook, the QA report."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hark_serving.analytics.alerts import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, verify
from hark_serving.cli.main import app
from hark_serving.transcript.schema import validate_result
from tests.fixtures.calls import synthetic_call
from tests.unit.analytics.test_alerts import Receiver, free_port

RULES = """
categories:
  - name: long-silence
    alert: true
    all:
      - non_talk: {min_seconds: 5}
  - name: customer-interrupts
    all:
      - interruption: {role: customer, min_count: 1, window: {first_percent: 50}}
  - name: never-happens
    all:
      - non_talk: {min_seconds: 60}
"""


def run(args: list[str], model: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["transcribe", *args, "--model", str(model), "--quiet"])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output + (result.stderr or "")


@pytest.fixture
def calls(tmp_path: Path) -> Path:
    root = tmp_path / "calls"
    for key in ("2026-11-30/alice/c1.wav", "2026-12-01/bob/c2.wav"):
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(synthetic_call().path, root / key)
    return root


def test_categories_alerts_and_the_report_from_a_folder_of_stereo_calls(
    calls: Path, tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    receiver = Receiver(free_port(), [])
    monkeypatch.setenv("HARK_WEBHOOK_SECRET", "hook-secret")
    out = tmp_path / "out"
    try:
        code, text = run(
            [
                str(calls), "--out", str(out), "--channels", "split", "--roles", "agent,customer",
                "--formats", "json,vtt", "--categories", str(rules), "--report",
                "--metadata-pattern", "{date}/{agent}/{call_id}.wav",
                "--webhook-url", f"http://127.0.0.1:{receiver.server.server_port}/alerts",
            ],
            tiny_model_dir,
        )  # fmt: skip
    finally:
        receiver.stop()
    assert code == 0, text
    doc = json.loads((out / "2026-11-30/alice/c1.wav.json").read_text())
    validate_result(doc)
    cats = doc["call"]["categories"]
    assert cats["matched"] == ["long-silence", "customer-interrupts"]
    assert cats["details"]["long-silence"]["alert"] is True
    assert len(cats["details"]["long-silence"]["points"]) == 2
    assert "<v Agent>" in (out / "2026-11-30/alice/c1.wav.vtt").read_text()

    # One signed delivery per flagged file, with the transcript's location.
    assert len(receiver.requests) == 2
    payloads = []
    for headers, body in receiver.requests:
        assert verify("hook-secret", body, headers[SIGNATURE_HEADER])
        payloads.append(json.loads(body))
        assert headers[IDEMPOTENCY_HEADER] == payloads[-1]["idempotency_key"]
    assert sorted(p["transcript"] for p in payloads) == sorted(
        str(out / k) for k in ("2026-11-30/alice/c1.wav.json", "2026-12-01/bob/c2.wav.json")
    )
    assert all([c["name"] for c in p["categories"]] == ["long-silence"] for p in payloads)
    assert "alert" in text and "long-silence" in text

    rows = list(csv.DictReader((out / "_hark/calls.csv").read_text().splitlines()))
    assert [(r["file"], r["agent"], r["date"], r["call_id"]) for r in rows] == [
        ("2026-11-30/alice/c1.wav", "alice", "2026-11-30", "c1"),
        ("2026-12-01/bob/c2.wav", "bob", "2026-12-01", "c2"),
    ]
    assert all(r["categories"] == "long-silence;customer-interrupts" for r in rows)
    assert all(r["alerts"] == "long-silence" and r["interruptions"] == "1" for r in rows)
    report = json.loads((out / "_hark/report.json").read_text())
    assert report["calls"] == 2 and set(report["by_agent"]) == {"alice", "bob"}
    assert report["categories"] == {"long-silence": 2, "customer-interrupts": 2}
    html = (out / "_hark/report.html").read_text()
    assert '<a href="../2026-11-30/alice/c1.wav.json">' in html

    # A second run skips current files but still writes the report of all of them.
    (out / "_hark/calls.csv").unlink()
    code, text = run(
        [
            str(calls),
            "--out",
            str(out),
            "--channels",
            "split",
            "--categories",
            str(rules),
            "--report",
        ],
        tiny_model_dir,
    )
    assert code == 0, text
    assert "2 already current" in text
    assert len(list(csv.DictReader((out / "_hark/calls.csv").read_text().splitlines()))) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--roles", "agent,agent"], "--roles: roles agent,agent name one role twice"),
        (["--categories", "missing.yaml"], "missing.yaml: cannot read the categories file"),
        (["--metadata-pattern", "calls/*.wav", "--report"], "metadata-pattern:"),
        (["--webhook-url", "http://127.0.0.1:9/"], "give --categories too"),
    ],
)
def test_bad_analytics_options_fail_before_any_work_naming_the_option(
    calls: Path, tmp_path: Path, tiny_model_dir: Path, args: list[str], message: str
) -> None:
    code, text = run([str(calls), "--out", str(tmp_path / "out"), *args], tiny_model_dir)
    assert code == 2
    assert message in " ".join(text.split())
    assert not (tmp_path / "out").exists()


def test_a_rule_file_with_a_bad_rule_names_the_file_the_category_and_the_field(
    calls: Path, tmp_path: Path, tiny_model_dir: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("categories:\n  - name: x\n    all:\n      - emotion: {in: [FURIOUS]}\n")
    code, text = run(
        [str(calls), "--out", str(tmp_path / "out"), "--categories", str(rules)], tiny_model_dir
    )
    assert code == 2
    assert f"{rules}: category 'x': all[0].emotion.in[0]" in " ".join(text.split())
