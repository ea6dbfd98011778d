"""Hark's Python API: rich transcripts from a script, with the engine `hark transcribe` runs.

    from hark import Transcriber

    transcriber = Transcriber(model="iic/SenseVoiceSmall", device="auto")
    for transcript in transcriber.transcribe(["call.wav", "s3://calls/2026/"], language="en"):
        print(transcript.source.uri, transcript.text)

Importing `hark` loads no torch; building a `Transcriber` loads the model.
"""

from __future__ import annotations

from hark.transcriber import Transcriber, transcribe_file
from hark_serving.errors import HarkError, ModelError
from hark_serving.transcript.schema import Segment, Transcript

__all__ = ["HarkError", "ModelError", "Segment", "Transcriber", "Transcript", "transcribe_file"]
