"""One logging set-up per process: JSON lines in containers, readable text on a terminal."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime, timezone

_EXTRA_FIELDS = ("request_id", "job", "uri", "code")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in _EXTRA_FIELDS:
            if hasattr(record, key):
                doc[key] = getattr(record, key)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


class _QuietLibraries(logging.Filter):
    """funasr logs through the root logger at INFO/WARNING for routine steps; keep its errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or "/funasr/" not in record.pathname


def setup_logging(level: str | None = None, json_logs: bool | None = None) -> None:
    """Configure the root logger once; `HARK_LOG_LEVEL` and `HARK_LOG_FORMAT` override."""
    level = (level or os.environ.get("HARK_LOG_LEVEL") or "INFO").upper()
    fmt = os.environ.get("HARK_LOG_FORMAT", "")
    if json_logs is None:
        json_logs = fmt == "json" or (fmt != "text" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_QuietLibraries())
    handler.setFormatter(
        JsonFormatter() if json_logs else logging.Formatter("%(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Libraries that log at INFO for every call drown a run's own messages.
    for noisy in ("botocore", "urllib3", "modelscope"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
