"""Metric names in PromQL expressions, and the names docs/metrics.md documents."""

from __future__ import annotations

import re
from pathlib import Path

from .helpers import REPO

METRICS_DOC = REPO / "docs" / "metrics.md"

# PromQL words that look like names: aggregations, functions, keywords.
_WORDS = frozenset(
    {
        "sum", "min", "max", "avg", "count", "by", "without", "on", "ignoring",
        "group_left", "group_right", "and", "or", "unless", "bool", "offset",
        "rate", "irate", "increase", "histogram_quantile", "time", "absent",
        "clamp_min", "clamp_max", "label_values", "topk", "bottomk", "inf", "nan",
    }
)  # fmt: skip
_ROW = re.compile(r"^\| `([a-z_:]+)` \| (counter|gauge|histogram) \|", re.M)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads (label names, strings, ranges left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\$\{?\w+\}?", "", text)  # dashboard variables
    names = set(re.findall(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w(])(?!\s*\()", text))
    return {n for n in names if n.lower() not in _WORDS}


def documented(doc: Path = METRICS_DOC) -> dict[str, str]:
    """Metric name → type, from the tables of docs/metrics.md."""
    return dict(_ROW.findall(doc.read_text()))


def series(docs: dict[str, str]) -> set[str]:
    """Every series name the documented metrics appear as (a histogram as three)."""
    out = set()
    for name, kind in docs.items():
        out |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"} if kind == "histogram" else {name}
    return out
