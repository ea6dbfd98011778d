"""A job's status, conditions and Events: computed from what the job knows, then written.

`build_status` is pure: the previous status plus an `Observation` gives the
next status, with conditions in the standard shape (a condition's
`lastTransitionTime` moves only when its status flips). `Reporter` writes it
as a merge patch of the status subresource guarded by the resourceVersion it
last saw; a 409 Conflict (someone else wrote meanwhile) makes it read the
object again and rebuild on top of what it finds. Status is a report: losing
a write loses nothing, the next one carries the same facts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from hark_operator.jobs.gate import AVAILABLE, GateState
from hark_operator.resource.models import (
    Condition,
    ConditionStatus,
    Counts,
    FailureRecord,
    JobStatus,
    Phase,
)
from hark_serving.retry import RetryPolicy

log = logging.getLogger(__name__)

CONFLICT_RETRIES = 3
# Re-read at once, then a short jittered wait, so two writers do not collide again in step.
CONFLICT_BACKOFF = RetryPolicy(base=0.05, cap=0.5, attempts=CONFLICT_RETRIES + 1)


class Conflict(Exception):
    """The object changed since the resourceVersion a write was based on."""


class StatusWriter(Protocol):
    async def read(self) -> tuple[JobStatus, str | None]: ...

    async def write(self, status: JobStatus, resource_version: str | None) -> str | None: ...


class EventSink(Protocol):
    async def event(self, type_: str, reason: str, message: str) -> None: ...


@dataclass(frozen=True)
class Observation:
    """What a job knows at one moment; everything the status is built from."""

    phase: Phase
    counts: Counts
    generation: int | None = None
    audio_seconds: float = 0.0
    recent_failures: tuple[FailureRecord, ...] = ()
    start_time: datetime | None = None
    completion_time: datetime | None = None
    last_scan_time: datetime | None = None
    summary_uri: str | None = None
    blocked: tuple[str, str] | None = None  # (reason, message): work cannot go on now
    failure: tuple[str, str] | None = None  # (reason, message): the job failed for good
    processor: GateState = AVAILABLE  # whether the processor takes work
    environment: tuple[str, str] | None = None  # (code, message): items wait on storage
    unrecorded: int = 0  # failures whose error record could not be written


def set_condition(
    conditions: Sequence[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
) -> tuple[Condition, ...]:
    """Replace (or add) one condition, keeping its transition time if status is unchanged."""
    old = next((c for c in conditions if c.type == type_), None)
    since = old.last_transition_time if old is not None and old.status == status else now
    new = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )
    out = [c for c in conditions if c.type != type_]
    out.append(new)
    order = {t: i for i, t in enumerate(CONDITION_ORDER)}
    return tuple(sorted(out, key=lambda c: order.get(c.type, len(order))))


CONDITION_ORDER = (
    "Progressing",
    "ProcessorAvailable",
    "ErrorRecordsWritten",
    "Suspended",
    "Complete",
    "Failed",
)


def _camel(code: str) -> str:
    return "".join(part.capitalize() for part in code.split("_")) or "Unknown"


def _describe(c: Counts) -> str:
    text = f"{c.succeeded}/{c.total} done, {c.failed} failed"
    if c.in_flight or c.pending:
        text += f", {c.in_flight} in flight, {c.pending} pending"
    return text


def build_status(previous: JobStatus, obs: Observation, now: datetime) -> JobStatus:
    c, gen = obs.counts, obs.generation
    conds = previous.conditions
    busy = c.pending + c.in_flight > 0
    if obs.failure is not None:
        progressing: tuple[ConditionStatus, str, str] = ("False", "Failed", obs.failure[1])
    elif obs.phase == "Succeeded":
        progressing = ("False", "Completed", _describe(c))
    elif obs.phase == "Suspended":
        progressing = ("False", "Suspended", "dispatching is paused (spec.suspend)")
    elif obs.blocked is not None:
        progressing = ("False", obs.blocked[0], obs.blocked[1])
    elif busy and not obs.processor.available:
        progressing = (
            "False",
            obs.processor.reason,
            f"{_describe(c)}; dispatching paused: {obs.processor.message}",
        )
    elif busy and obs.environment is not None:
        progressing = (
            "False",
            _camel(obs.environment[0]),
            f"{_describe(c)}; files wait and are tried again: {obs.environment[1]}",
        )
    elif busy:
        progressing = ("True", "Transcribing", _describe(c))
    elif obs.phase == "Watching":
        progressing = ("True", "WaitingForInput", f"{_describe(c)}; watching for new files")
    else:
        progressing = ("True", "Scanning", "listing the input and output prefixes")
    conds = set_condition(conds, "Progressing", *progressing, now, gen)
    if obs.processor.available:
        processor: tuple[ConditionStatus, str, str] = ("True", "Answering", "")
    else:
        processor = ("False", obs.processor.reason, obs.processor.message)
    conds = set_condition(conds, "ProcessorAvailable", *processor, now, gen)
    if obs.unrecorded:
        conds = set_condition(
            conds,
            "ErrorRecordsWritten",
            "False",
            "ErrorRecordNotWritten",
            f"{obs.unrecorded} failed files have no .error.json (the output bucket refused "
            "the write); they count as failed and are not dispatched again until they change",
            now,
            gen,
        )
    suspended = obs.phase == "Suspended"
    conds = set_condition(
        conds,
        "Suspended",
        "True" if suspended else "False",
        "Suspended" if suspended else "Running",
        "spec.suspend is true" if suspended else "",
        now,
        gen,
    )
    if obs.phase == "Succeeded":
        conds = set_condition(conds, "Complete", "True", "Completed", _describe(c), now, gen)
    if obs.failure is not None:
        conds = set_condition(conds, "Failed", "True", *obs.failure, now, gen)
    return JobStatus(
        phase=obs.phase,
        progress=f"{c.succeeded}/{c.total}",
        counts=c,
        audioSeconds=round(obs.audio_seconds, 3),
        startTime=obs.start_time,
        completionTime=obs.completion_time,
        lastScanTime=obs.last_scan_time,
        summaryUri=obs.summary_uri,
        observedGeneration=gen,
        conditions=conds,
        recentFailures=obs.recent_failures,
    )


def runner_failure_status(
    previous: JobStatus,
    error: str,
    failures: int,
    retry_in: float | None,
    now: datetime,
    generation: int | None,
) -> JobStatus:
    """The status of a job whose runner failed outside its scan (`failures` so far).

    While it will start again (`retry_in` seconds), the job reads `Pending` with
    `Progressing=False`, reason `RunnerFailed`, as a Pod waiting out a crash loop
    does; a Batch job that gave up reads `Failed` with the same reason. The counts
    stay as they were: the next start recounts from the outputs.
    """
    conds = previous.conditions
    if retry_in is None:
        message = f"the job's runner failed {failures} times and stopped; last error: {error}"
        conds = set_condition(
            conds, "Progressing", "False", "RunnerFailed", message, now, generation
        )
        conds = set_condition(conds, "Failed", "True", "RunnerFailed", message, now, generation)
        return previous.model_copy(
            update={"phase": "Failed", "conditions": conds, "completion_time": now}
        )
    message = (
        f"the job's runner failed: {error}; it starts again in {retry_in:.0f}s (failure {failures})"
    )
    conds = set_condition(conds, "Progressing", "False", "RunnerFailed", message, now, generation)
    return previous.model_copy(update={"phase": "Pending", "conditions": conds})


class Reporter:
    """Writes a job's status when it changed, and posts its Events."""

    def __init__(
        self,
        writer: StatusWriter,
        events: EventSink,
        previous: JobStatus | None = None,
        resource_version: str | None = None,
    ) -> None:
        self.writer = writer
        self.events = events
        self.previous = previous or JobStatus()
        self.resource_version = resource_version
        self._lock = asyncio.Lock()

    async def publish(self, obs: Observation, now: datetime) -> bool:
        """Write the status for `obs` if it differs from the last one; False if it could not."""
        async with self._lock:
            for attempt in range(CONFLICT_RETRIES + 1):
                status = build_status(self.previous, obs, now)
                if status == self.previous:
                    return True
                try:
                    self.resource_version = await self.writer.write(status, self.resource_version)
                    self.previous = status
                    return True
                except Conflict:
                    log.debug("status write conflicted (try %d); reading again", attempt + 1)
                    self.previous, self.resource_version = await self.writer.read()
                    await asyncio.sleep(CONFLICT_BACKOFF.delay(attempt + 1))
            log.warning("status not written after %d conflicts; next round", CONFLICT_RETRIES)
            return False

    async def event(self, type_: str, reason: str, message: str) -> None:
        try:
            await self.events.event(type_, reason, message)
        except Exception as exc:  # an Event is a courtesy; never fail the job for one
            log.warning("could not post event %s: %s", reason, exc)
