"""The shipped JSON Schema and the models agree, and bad documents are refused."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest

from hark_serving.transcript.schema import (
    ModelInfo,
    ResultOptions,
    Segment,
    Source,
    Summary,
    Timing,
    Transcript,
    Word,
    json_schema,
    validate_result,
)


def example() -> dict[str, Any]:
    return Transcript(
        source=Source(uri="s3://in/p/a/b.mp3", etag="abc", bytes=1234, format="mp3",
                      duration=61.2, sample_rate=44100, channels=2),
        model=ModelInfo(source="iic/SenseVoiceSmall", device="cuda", dtype="float16"),
        options=ResultOptions(language="auto", use_itn=True, timestamps="word"),
        language="zh",
        text="你好",
        segments=[
            Segment(id=0, start=0.42, end=4.96, language="zh", emotion="HAPPY",
                    events=["Laughter"], text="你好", raw="<|zh|><|HAPPY|><|Laughter|><|withitn|>你好",
                    words=[Word(text="你", start=0.5, end=0.8), Word(text="好", start=0.8, end=1.0)]),
        ],
        summary=Summary(speech_seconds=4.54, languages={"zh": 4.54}, emotions={"HAPPY": 4.54},
                        events={"Laughter": 1}, flags=[]),
        timing=Timing(decode_s=0.1, vad_s=0.2, asr_s=0.4, rtf=0.011),
    ).to_json_dict()  # fmt: skip


def test_the_schema_file_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(json_schema())


def test_a_model_built_result_validates_and_round_trips() -> None:
    doc = example()
    validate_result(doc)
    assert doc["schema"] == "hark.transcript/v1"
    assert Transcript.model_validate(doc).to_json_dict() == doc


@pytest.mark.parametrize(
    "path, value",
    [
        (("schema",), "hark.transcript/v2"),
        (("segments", 0, "emotion"), "GRUMPY"),
        (("segments", 0, "events"), ["Sing"]),
        (("language",), "fr"),
        (("source", "duration"), -1),
        (("summary", "flags"), ["Not A Flag"]),
        (("model", "dtype"), "int3"),
    ],
)
def test_documents_that_break_the_contract_are_refused_naming_the_path(
    path: tuple[object, ...], value: object
) -> None:
    doc = copy.deepcopy(example())
    target: Any = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ValueError, match=r"does not match hark\.transcript/v1"):
        validate_result(doc)


def test_unknown_top_level_fields_are_refused() -> None:
    doc = example()
    doc["extra"] = 1
    with pytest.raises(ValueError, match="extra"):
        validate_result(doc)
