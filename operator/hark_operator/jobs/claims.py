"""Output prefixes claimed by running jobs: two jobs never share outputs silently.

Two jobs whose output prefixes overlap (the same bucket, one prefix inside the
other) would each count the other's transcripts as their own and write over
them. The first job to run claims its prefix; a later one waits with
`Progressing=False`, reason `OutputConflict`, naming the other job, and starts
once that job is finished or deleted. Only the elected operator replica runs
jobs, so one registry per process sees them all.
"""

from __future__ import annotations

from hark_serving.storage.uris import S3Uri


def overlaps(a: S3Uri, b: S3Uri) -> bool:
    return a.bucket == b.bucket and (a.key.startswith(b.key) or b.key.startswith(a.key))


class OutputClaims:
    def __init__(self) -> None:
        self._owners: dict[str, S3Uri] = {}  # job key → its output prefix

    def claim(self, job: str, prefix: S3Uri) -> str | None:
        """Claim `prefix` for `job`; the job that holds an overlapping one, or None."""
        for other, theirs in self._owners.items():
            if other != job and overlaps(prefix, theirs):
                return other
        self._owners[job] = prefix
        return None

    def release(self, job: str) -> None:
        self._owners.pop(job, None)
