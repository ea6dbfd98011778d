"""One S3 object in, its transcript objects out: the work behind `POST /v1/items`.

The operator names an input object and an output base; outputs are
`<output_uri>.json` (+ `.srt`, `.vtt`, `.txt`), or `<output_uri>.error.json`
when the input cannot be transcribed. Processing is idempotent: an input whose
JSON output already records its ETag (object metadata `hark-source-etag`) is
skipped. Every object is written with one PUT, JSON last, so a visible JSON
means the whole result is there. A transcript that matched alert categories
writes its alert to the job's outbox (`alerts_prefix`) before any output, so
an alert is never lost between "done" and "delivered": the operator delivers
what the outbox holds once the JSON is there.

`ItemRunner.begin` does the CPU work before the model (checks, download,
decode, VAD) and `finish` the work after it; the caller runs the model in
between, in-process or on a Serve Transcriber.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from hark_serving.analytics.alerts import alert_of, record_name
from hark_serving.analytics.categories import categorize
from hark_serving.engine.pipeline import PreparedFile, SegmentingSettings, assemble, prepare
from hark_serving.engine.recognition import Recognized
from hark_serving.engine.vad import SpeechDetector
from hark_serving.errors import (
    HarkError,
    InputError,
    InvalidUri,
    ObjectNotFound,
    SourceChanged,
    TooLarge,
)
from hark_serving.runs.itemspec import ItemError, ItemRequest, ItemResult
from hark_serving.storage.lease import Holding
from hark_serving.storage.profiles import StorageProfiles
from hark_serving.storage.s3 import S3Store
from hark_serving.storage.uris import S3Uri, key_problem, output_key_problem, parse_s3_uri
from hark_serving.transcript.error_record import ErrorRecord, render_error_record
from hark_serving.transcript.outputs import is_current, recorded_etag, source_metadata
from hark_serving.transcript.schema import ModelInfo, validate_result
from hark_serving.transcript.writers import CONTENT_TYPES, render

log = logging.getLogger(__name__)


@dataclass
class Started:
    """An item past decoding and VAD, waiting for the model."""

    request: ItemRequest
    store: S3Store
    output: S3Uri
    prepared: PreparedFile
    outbox: S3Uri | None = None


def job_namespace(job: str | None) -> str | None:
    """The namespace of a `namespace/name` job reference."""
    if not job or "/" not in job:
        return None
    return job.split("/", 1)[0] or None


def _formats(req: ItemRequest) -> list[str]:
    wanted = list(dict.fromkeys(["json", *req.formats]))
    return [f for f in wanted if f != "json"] + ["json"]


class ItemRunner:
    def __init__(
        self,
        profiles: StorageProfiles,
        detector: SpeechDetector,
        segmenting: SegmentingSettings,
        spill_dir: Path | None = None,
        max_bytes: int | None = None,
    ) -> None:
        self.profiles = profiles
        self.detector = detector
        self.segmenting = segmenting
        self.spill_dir = spill_dir
        self.max_bytes = max_bytes

    def _locate(self, req: ItemRequest) -> tuple[S3Store, S3Uri, S3Uri]:
        # Every right is checked before anything is read or written.
        self.profiles.check_namespace(req.profile, job_namespace(req.job))
        store = self.profiles.store(req.profile)
        source, output = parse_s3_uri(req.input_uri), parse_s3_uri(req.output_uri)
        if source.is_prefix or output.is_prefix:
            raise InvalidUri("input_uri and output_uri must name objects, not prefixes")
        problem = output_key_problem(output.key)
        if problem is not None:
            raise InvalidUri(f"{problem}; shorten the input's path", subject=req.input_uri)
        store.check_allowed(source)
        store.check_writable(output)
        return store, source, output

    def begin(self, req: ItemRequest) -> ItemResult | Started:
        """Checks, skip-if-current, download, decode and VAD; raises HarkError."""
        store, source, output = self._locate(req)
        outbox = outbox_of(req, output)
        if outbox is not None:
            store.check_writable(outbox)
        head = store.head(source)
        if head is None:
            raise ObjectNotFound(
                "the input object does not exist (deleted?)", subject=req.input_uri
            )
        if not req.overwrite and self.is_current(store, output, head.clean_etag):
            return ItemResult(
                status="skipped",
                input_uri=req.input_uri,
                output_uri=f"{output}.json",
                etag=head.clean_etag,
            )
        if self.max_bytes is not None and head.size > self.max_bytes:
            # Checked on the HEAD, before a byte is downloaded to the spill volume.
            raise TooLarge(
                f"the object is {head.size} bytes, over the {self.max_bytes} byte limit "
                "(HARK_MAX_ITEM_BYTES); split the recording or raise the limit",
                subject=req.input_uri,
            )
        suffix = Path(source.key).suffix[:16]
        with tempfile.NamedTemporaryFile(
            prefix="hark-item-", suffix=suffix, dir=self.spill_dir
        ) as tmp:
            got = store.download(source, Path(tmp.name))
            prepared = prepare(
                tmp.name,
                uri=req.input_uri,
                options=req.options,
                detector=self.detector,
                settings=self._segmenting(req),
                etag=got.clean_etag,
                size=got.size,
            )
        return Started(req, store, output, prepared, outbox)

    def _segmenting(self, req: ItemRequest) -> SegmentingSettings:
        limit = req.max_segment_seconds
        if limit is None:
            return self.segmenting
        # Merged spans may not outgrow the limit either.
        merge = min(self.segmenting.merge_seconds, limit)
        return replace(self.segmenting, max_segment_seconds=limit, merge_seconds=merge)

    def hold(self, req: ItemRequest) -> Holding:
        """The output's lease, held until `close()`; `OutputBusy` while another has it."""
        store, _, output = self._locate(req)
        return Holding(store, output)

    @staticmethod
    def is_current(store: S3Store, output: S3Uri, etag: str) -> bool:
        info = store.head_metadata(S3Uri(output.bucket, output.key + ".json"))
        return is_current(recorded_etag(info), etag)

    def finish(
        self,
        started: Started,
        results: Sequence[Recognized],
        *,
        model: ModelInfo,
        asr_seconds: float,
    ) -> ItemResult:
        """Assemble and write the outputs (JSON last); closes the prepared audio."""
        req, store, output = started.request, started.store, started.output
        try:
            transcript = assemble(started.prepared, results, model=model, asr_seconds=asr_seconds)
        finally:
            started.prepared.close()
        rules = req.rules()
        if rules is not None:
            transcript = categorize(rules, transcript)
        validate_result(transcript.to_json_dict())
        etag = transcript.source.etag or ""
        alert = alert_of(transcript, f"{output}.json")
        if alert is not None and started.outbox is not None:
            # Before the outputs: the JSON, written last, says the item is done.
            store.put_bytes(
                S3Uri(started.outbox.bucket, started.outbox.key + record_name(alert.key)),
                alert.body(),
                "application/json",
            )
        for fmt in _formats(req):
            store.put_bytes(
                S3Uri(output.bucket, f"{output.key}.{fmt}"),
                render(transcript, fmt).encode(),
                CONTENT_TYPES[fmt] + "; charset=utf-8",
                source_metadata(etag),
            )
        error_key = S3Uri(output.bucket, f"{output.key}.error.json")
        if store.head(error_key) is not None:
            store.delete(error_key)
        # The input may have been re-uploaded while it was transcribed: its new bytes
        # need a transcript too, so the caller tries again (the JSON records the old
        # ETag, so the next try is not skipped).
        now = store.head(parse_s3_uri(req.input_uri))
        if now is not None and not is_current(etag, now.clean_etag):
            raise SourceChanged(
                f"re-uploaded while it was transcribed (ETag {etag} → {now.clean_etag}); "
                "transcribing the new content",
                subject=req.input_uri,
            )
        return ItemResult(
            status="succeeded",
            input_uri=req.input_uri,
            output_uri=f"{output}.json",
            etag=etag,
            audio_seconds=transcript.source.duration,
            alerts=list(alert.categories) if alert is not None else [],
        )

    def fail(self, req: ItemRequest, error: HarkError, *, final: bool | None = None) -> ItemResult:
        """Report a failure; a permanent one (or the last attempt) leaves `.error.json`."""
        permanent = isinstance(error, InputError)
        record = permanent if final is None else final
        output_json = f"{req.output_uri}.json"
        etag = None
        if record:
            try:
                store, source, output = self._locate(req)
                head = store.head(source)
                etag = head.clean_etag if head else None
                write_error_object(store, output, req, error, etag)
            except HarkError as exc:
                log.warning("%s: could not record the failure: %s", req.input_uri, exc)
        return ItemResult(
            status="failed",
            input_uri=req.input_uri,
            output_uri=output_json,
            etag=etag,
            error=ItemError(code=error.code, message=str(error)),
            retryable=error.transient and not record,
        )


def outbox_of(req: ItemRequest, output: S3Uri) -> S3Uri | None:
    """The alert outbox a request names: a prefix in the output's bucket, or InvalidUri."""
    if req.alerts_prefix is None:
        return None
    outbox = parse_s3_uri(req.alerts_prefix)
    if not outbox.is_prefix or outbox.bucket != output.bucket:
        raise InvalidUri(
            "alerts_prefix must be a prefix (ending in /) in the output's bucket",
            subject=req.alerts_prefix,
        )
    problem = key_problem(outbox.key + record_name("0" * 32))
    if problem is not None:
        raise InvalidUri(f"its alert records: {problem}", subject=req.alerts_prefix)
    return outbox


def write_error_object(
    store: S3Store, output: S3Uri, req: ItemRequest, error: HarkError, etag: str | None
) -> None:
    record = ErrorRecord.of(
        error.code, str(error), uri=req.input_uri, etag=etag, attempts=req.attempt, job=req.job
    )
    store.put_bytes(S3Uri(output.bucket, f"{output.key}.error.json"), *render_error_record(record))


def run_item(
    runner: ItemRunner,
    req: ItemRequest,
    recognize: Callable[[PreparedFile], tuple[list[Recognized], float]],
    model: ModelInfo,
) -> ItemResult:
    """The whole item in one thread: for the embedded mode and tests."""
    try:
        with runner.hold(req):
            return _run_held(runner, req, recognize, model)
    except HarkError as exc:
        return runner.fail(req, exc)


def _run_held(
    runner: ItemRunner,
    req: ItemRequest,
    recognize: Callable[[PreparedFile], tuple[list[Recognized], float]],
    model: ModelInfo,
) -> ItemResult:
    try:
        started = runner.begin(req)
        if isinstance(started, ItemResult):
            return started
        try:
            results, asr_seconds = recognize(started.prepared)
        except BaseException:
            started.prepared.close()
            raise
        return runner.finish(started, results, model=model, asr_seconds=asr_seconds)
    except HarkError as exc:
        return runner.fail(req, exc)
