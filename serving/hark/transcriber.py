"""`Transcriber`: one loaded model, many files, typed transcripts back.

A thin layer over the embedded engine (`hark_serving.engine.factory` builds it from
the settings object, `hark_serving.runs.local` lists the inputs), so a script gets
exactly what `hark transcribe` writes as JSON. Arguments left as None fall back to
the `HARK_*` environment, then to the defaults, as the CLI's flags do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from os import PathLike
from typing import TYPE_CHECKING, Any

from hark_serving.errors import HarkError
from hark_serving.options import Channels, Device, Language, Precision, Timestamps, Vad
from hark_serving.transcript.schema import Transcript

if TYPE_CHECKING:
    from hark_serving.config import Settings
    from hark_serving.engine.embedded import Engine
    from hark_serving.storage.s3 import S3Store

Input = str | PathLike[str]


class Transcriber:
    """SenseVoiceSmall loaded once; `transcribe` runs files through it, batched across files.

    `settings` takes any other field of Hark's settings (`batch_frames`,
    `max_segment_seconds`, `model_cache`, `s3_endpoint_url`, ...).
    Raises `ModelError` when the model cannot be loaded, naming the cause and the fix.
    """

    def __init__(
        self,
        model: str | PathLike[str] | None = None,
        *,
        device: Device | None = None,
        precision: Precision | None = None,
        vad: Vad | None = None,
        threads: int | None = None,
        **settings: Any,
    ) -> None:
        from hark_serving.config import load_settings
        from hark_serving.engine.factory import build_engine

        self.settings: Settings = load_settings(
            model=str(model) if model is not None else None,
            device=device,
            precision=precision,
            vad=vad,
            threads=threads,
            **settings,
        )
        self.engine: Engine = build_engine(self.settings)
        self._store: S3Store | None = None

    @property
    def store(self) -> S3Store:
        """The default storage profile's store, for s3:// inputs (made on first use)."""
        if self._store is None:
            self._store = self.settings.s3_store()
        return self._store

    def transcribe(
        self,
        inputs: Input | Iterable[Input],
        *,
        language: Language | None = None,
        itn: bool | None = None,
        timestamps: Timestamps | None = None,
        channels: Channels | None = None,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
    ) -> Iterator[Transcript]:
        """Transcripts of every file under `inputs` (files, folders, s3:// prefixes), in order.

        A file that cannot be transcribed raises its `HarkError` (the message names it)
        when its turn comes; the transcripts before it have been yielded.
        """
        from hark_serving.options import TranscribeOptions
        from hark_serving.runs.local import gather_inputs, jobs_for

        s = self.settings
        options = TranscribeOptions(
            language=language or s.language,
            use_itn=s.use_itn if itn is None else itn,
            timestamps=timestamps or s.timestamps,
            channels=channels or s.channels,
        )
        roots = [str(inputs)] if isinstance(inputs, (str, PathLike)) else [str(i) for i in inputs]
        store = self.store if any(r.startswith("s3://") for r in roots) else None
        refs = gather_inputs(roots, store, include, exclude)
        jobs = [dataclasses.replace(job, tag=i) for i, job in enumerate(jobs_for(refs, store))]
        # The engine finishes files out of order (it batches across them); keep the caller's.
        done: dict[int, Transcript | HarkError] = {}
        following = 0
        for outcome in self.engine.run(jobs, options):
            result = outcome.transcript if outcome.error is None else outcome.error
            assert result is not None
            done[outcome.job.tag] = result
            while following in done:
                ready = done.pop(following)
                if isinstance(ready, HarkError):
                    raise ready
                yield ready
                following += 1

    def transcribe_file(self, path: Input, **options: Any) -> Transcript:
        """The transcript of one file (local path or s3:// URI)."""
        transcripts = list(self.transcribe(path, **options))
        if len(transcripts) != 1:
            from hark_serving.errors import InvalidOption

            raise InvalidOption(f"{path}: names {len(transcripts)} files, not one")
        return transcripts[0]


def transcribe_file(
    path: Input, model: str | PathLike[str] | None = None, **options: Any
) -> Transcript:
    """Load the model and transcribe one file: for a quick script, not a loop."""
    settings = {
        k: options.pop(k) for k in ("device", "precision", "vad", "threads") if k in options
    }
    return Transcriber(model, **settings).transcribe_file(path, **options)
