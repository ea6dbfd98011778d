"""Inline SVG charts for the QA report: strings in, strings out, no scripts or fonts.

Every chart is a standalone `<svg>` with a `<title>` and one `<rect>` per datum,
each carrying `data-label` and `data-value`, so the page needs nothing but itself
and a reader (or a test) can read the numbers back from the document.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from html import escape

EMOTION_COLOURS: Mapping[str, str] = {
    "HAPPY": "#2e9d5b",
    "NEUTRAL": "#9aa5b1",
    "SURPRISED": "#e0b000",
    "SAD": "#3f6fb5",
    "FEARFUL": "#7a56b8",
    "ANGRY": "#d0382b",
    "DISGUSTED": "#8c5a2b",
    "EMO_UNKNOWN": "#d8dde3",
}
BAR_COLOUR = "#3f6fb5"
_FONT = 'font-family="sans-serif" font-size="11"'


def _fmt(value: float) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def bar_chart(title: str, items: Sequence[tuple[str, float]], width: int = 520) -> str:
    """Horizontal bars, one per (label, value)."""
    row, left = 22, 170
    height = max(1, len(items)) * row + 30
    top = max([v for _, v in items], default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart bar-chart" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="14" {_FONT} font-weight="bold">{escape(title)}</text>',
    ]
    if not items:
        parts.append(f'<text x="0" y="40" {_FONT}>no data</text>')
    for i, (label, value) in enumerate(items):
        y = 24 + i * row
        w = (width - left - 60) * value / top
        parts += [
            f'<text x="{left - 6}" y="{y + 14}" text-anchor="end" {_FONT}>{escape(label)}</text>',
            f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" fill="{BAR_COLOUR}" '
            f'data-label="{escape(label)}" data-value="{_fmt(value)}"></rect>',
            f'<text x="{left + w + 4:.1f}" y="{y + 14}" {_FONT}>{escape(_fmt(value))}</text>',
        ]
    parts.append("</svg>")
    return "".join(parts)


def histogram(title: str, values: Sequence[float], edges: Sequence[float], unit: str = "") -> str:
    """Counts of `values` in the bins between consecutive `edges` (the last bin is open)."""
    counts = [0] * len(edges)
    for v in values:
        index = max(i for i, edge in enumerate(edges) if v >= edge) if v >= edges[0] else 0
        counts[index] += 1
    labels = [f"{_fmt(lo)}-{_fmt(hi)}{unit}" for lo, hi in itertools.pairwise(edges)] + [
        f"≥ {_fmt(edges[-1])}{unit}"
    ]
    return bar_chart(title, list(zip(labels, [float(c) for c in counts], strict=True)))


def stacked_bars(
    title: str, bins: Sequence[Mapping[str, float]], width: int = 640, height: int = 180
) -> str:
    """One column per time bin, stacked by emotion share of that bin's seconds."""
    left, bottom = 30, 40
    plot_w, plot_h = width - left - 10, height - bottom - 24
    col = plot_w / max(1, len(bins))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart stacked-chart" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="14" {_FONT} font-weight="bold">{escape(title)}</text>',
    ]
    for i, shares in enumerate(bins):
        total = sum(shares.values())
        y = 24.0 + plot_h
        for emotion, seconds in sorted(shares.items()):
            if total <= 0 or seconds <= 0:
                continue
            h = plot_h * seconds / total
            y -= h
            parts.append(
                f'<rect x="{left + i * col + 1:.1f}" y="{y:.1f}" width="{col - 2:.1f}" '
                f'height="{h:.1f}" fill="{EMOTION_COLOURS.get(emotion, "#555")}" '
                f'data-label="{escape(emotion)} {i * 100 // len(bins)}%" '
                f'data-value="{seconds / total:.3f}"><title>{escape(emotion)}: '
                f"{100 * seconds / total:.0f}%</title></rect>"
            )
    axis_y = 24 + plot_h + 14
    parts.append(f'<text x="{left}" y="{axis_y}" {_FONT}>start of call</text>')
    parts.append(
        f'<text x="{left + plot_w}" y="{axis_y}" text-anchor="end" {_FONT}>end of call</text>'
    )
    x = left
    for emotion, colour in EMOTION_COLOURS.items():
        parts.append(
            f'<rect x="{x}" y="{axis_y + 6}" width="10" height="10" fill="{colour}"></rect>'
            f'<text x="{x + 13}" y="{axis_y + 15}" {_FONT}>{emotion.lower()}</text>'
        )
        x += 13 + 7 * len(emotion) + 6
    parts.append("</svg>")
    return "".join(parts)
