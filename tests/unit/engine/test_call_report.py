"""The call report on real audio: a synthetic stereo call with known timing, real VAD.

The tiny random-weight model makes text and tags random, so only the figures that
come from timing are asserted: talk time, non-talk instances, the interruption
and its interrupter, and turns. Boundaries come from the speech detector; each
is asserted within `VAD_TOLERANCE` seconds of where the speech was placed.
"""

from __future__ import annotations

from contextlib import nullcontext

import pytest

from hark_serving.engine.embedded import AudioJob, Engine
from hark_serving.options import TranscribeOptions
from hark_serving.transcript.schema import Transcript, validate_result
from tests.fixtures.calls import CallTiming, synthetic_call

VAD_TOLERANCE = 0.35  # seconds, per boundary (silero pads 30 ms and rounds to frames)


@pytest.fixture(scope="module")
def call_timing() -> CallTiming:
    return synthetic_call()


@pytest.fixture(scope="module")
def transcript(engine_module: Engine, call_timing: CallTiming) -> Transcript:
    path = call_timing.path
    job = AudioJob(uri=str(path), open=lambda: nullcontext(path), size=path.stat().st_size)
    return engine_module.transcribe(job, TranscribeOptions(channels="split"))


def close(a: float, b: float, tolerance: float = VAD_TOLERANCE) -> bool:
    return abs(a - b) <= tolerance


def test_the_call_report_validates_and_maps_channels_to_default_roles(
    transcript: Transcript,
) -> None:
    validate_result(transcript.to_json_dict())
    assert transcript.call is not None
    assert transcript.call.roles == {"0": "agent", "1": "customer"}
    assert {s.role for s in transcript.segments} == {"agent", "customer"}
    assert all(s.role == ("agent" if s.channel == 0 else "customer") for s in transcript.segments)


def test_talk_time_per_role_matches_the_speech_placed_on_each_channel(
    transcript: Transcript, call_timing: CallTiming
) -> None:
    assert transcript.call is not None
    for role, windows in (("agent", call_timing.agent), ("customer", call_timing.customer)):
        expected = sum(end - start for start, end in windows)
        measured = transcript.call.talk_time[role].seconds
        # two boundaries per window; pauses inside a line may be left out of talk
        assert close(measured, expected, 2 * VAD_TOLERANCE * len(windows)), (
            role,
            measured,
            expected,
        )
    shares = [t.share for t in transcript.call.talk_time.values()]
    assert close(sum(shares), 1.0, 0.002)


def test_both_long_silences_are_non_talk_instances(
    transcript: Transcript, call_timing: CallTiming
) -> None:
    assert transcript.call is not None
    instances = transcript.call.non_talk.instances
    assert len(instances) == 2, instances
    for found, (start, end) in zip(instances, (call_timing.silence, call_timing.hold), strict=True):
        assert close(found.start, start) and close(found.end, end), (found, start, end)
    # The tone on the agent channel is not taken for speech.
    assert all(
        not (call_timing.hold[0] + 0.5 < s.start < call_timing.hold[1] - 0.5)
        for s in transcript.segments
    )


def test_the_customer_interrupts_the_agent_once(
    transcript: Transcript, call_timing: CallTiming
) -> None:
    assert transcript.call is not None
    interruptions = transcript.call.interruptions
    assert interruptions.total == 1
    assert list(interruptions.by_interrupter) == ["customer"]
    (span,) = interruptions.by_interrupter["customer"]
    assert close(span.start, call_timing.interruption[0])
    assert close(span.end, call_timing.interruption[1])


def test_turns_alternate_agent_customer_agent_customer(
    transcript: Transcript, call_timing: CallTiming
) -> None:
    assert transcript.call is not None
    turns = transcript.call.turns
    assert [t.role for t in turns] == ["agent", "customer", "agent", "customer"]
    placed = [
        call_timing.agent[0],
        call_timing.customer[0],
        call_timing.agent[1],
        call_timing.customer[1],
    ]
    for turn, (start, end) in zip(turns, placed, strict=True):
        assert close(turn.start, start) and close(turn.end, end), (turn, start, end)
        assert turn.loudness_dbfs is not None and -40 < turn.loudness_dbfs < 0
    assert sorted(i for t in turns for i in t.segments) == [s.id for s in transcript.segments]


def test_a_mono_file_with_a_role_gets_a_one_role_report(
    engine_module: Engine, call_timing: CallTiming
) -> None:
    path = call_timing.path
    job = AudioJob(uri=str(path), open=lambda: nullcontext(path), size=path.stat().st_size)
    t = engine_module.transcribe(job, TranscribeOptions(roles=("speaker",)))
    assert t.call is not None and t.call.roles == {"0": "speaker"}
    assert list(t.call.talk_time) == ["speaker"] and t.call.interruptions.total == 0
    validate_result(t.to_json_dict())
