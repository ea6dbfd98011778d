"""From a greedy CTC path to rich text and word timings: numpy and sentencepiece, no torch.

Both runtimes (torch in `engine.sensevoice`, ONNX Runtime in `engine.onnx_model`)
pick each encoder frame's best token and hand the path here, so they turn
tokens into text and words the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hark_serving.engine.recognition import FRAME_SECONDS, QUERY_FRAMES, Recognized, WordTiming


def decode_path(path: np.ndarray, blank_id: int, sp: Any, words: bool) -> Recognized:
    """One row's best token per frame (the query frames included) into text and words.

    `sp`: a `sentencepiece.SentencePieceProcessor` (funasr's tokenizer keeps one as `.sp`).
    """
    path = np.asarray(path).reshape(-1)
    if path.size == 0:
        return Recognized("", () if words else None)
    # Runs of equal tokens: where each starts, and how many frames it lasts.
    starts = np.flatnonzero(np.concatenate(([True], path[1:] != path[:-1])))
    counts = np.diff(np.append(starts, path.size))
    ids = path[starts]
    keep = ids != blank_id
    token_ids = [int(t) for t in ids[keep]]
    raw: str = sp.DecodeIds(token_ids)
    if not words:
        return Recognized(raw)
    return Recognized(
        raw, word_timings(sp, token_ids, starts[keep].tolist(), counts[keep].tolist())
    )


def word_timings(
    sp: Any, token_ids: list[int], starts: list[int], counts: list[int]
) -> tuple[WordTiming, ...]:
    """Group fired tokens into words: `▁` starts one; ASCII pieces continue it."""
    out: list[list[Any]] = []  # [text, start, end, continuable]
    new_word = True
    for tid, start, count in zip(token_ids, starts, counts, strict=True):
        piece = sp.IdToPiece(tid)
        if (
            sp.IsControl(tid)
            or sp.IsUnknown(tid)
            or (piece.startswith("<|") and piece.endswith("|>"))
        ):
            continue
        t0 = max(0, start - QUERY_FRAMES) * FRAME_SECONDS
        t1 = max(0, start + count - QUERY_FRAMES) * FRAME_SECONDS
        if piece == "▁":
            new_word = True
            continue
        if piece.startswith("▁"):
            new_word, piece = True, piece[1:]
        ascii_piece = piece.isascii() and piece.replace("'", "").isalnum()
        if not new_word and out and out[-1][3] and ascii_piece:
            out[-1][0] += piece
            out[-1][2] = t1
        else:
            out.append([piece, t0, t1, ascii_piece])
        new_word = False
    return tuple(WordTiming(w[0], round(w[1], 3), round(max(w[2], w[1]), 3)) for w in out)
