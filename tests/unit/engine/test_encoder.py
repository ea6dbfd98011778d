"""The leaner encoder pass (engine.encoder) computes funasr's encoder, on the fixture model."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from hark_serving.engine import encoder
from hark_serving.engine.sensevoice import SenseVoice

# float32, summed in another order: far below the model's own int8 error (~0.03).
TOLERANCE = 1e-4


def features(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    speech = rng.standard_normal((len(lengths), max(lengths), 560)).astype(np.float32)
    for row, length in enumerate(lengths):
        speech[row, length:] = 0.0  # padding, as the frontend pads
    return torch.from_numpy(speech), torch.tensor(lengths)


@pytest.mark.parametrize(
    "lengths",
    [[57], [40, 40, 40], [61, 45, 12, 1]],
    ids=["one-row", "equal-rows-unmasked", "padded-rows"],
)
@pytest.mark.parametrize(
    "variant",
    [{}, {"masked": True, "explicit_attention": True}],
    ids=["torch-int8-pass", "exported-graph-pass"],
)
def test_the_lean_pass_computes_funasrs_encoder(
    recognizer: SenseVoice, lengths: list[int], variant: dict[str, bool]
) -> None:
    model = recognizer.model.encoder
    assert encoder.supports(model)
    speech, ilens = features(lengths)
    ctc = recognizer.model.ctc
    with torch.inference_mode():
        expected, expected_lengths = model(speech.clone(), ilens)  # funasr scales in place
        got, got_lengths = encoder.forward(model, speech, ilens, **variant)
        best, expected_best = ctc.ctc_lo(got).argmax(-1), ctc.log_softmax(expected).argmax(-1)
    assert got_lengths.tolist() == expected_lengths.tolist() == lengths
    valid = torch.arange(max(lengths))[None, :] < ilens[:, None]
    difference = (got - expected)[valid].abs().max().item()
    assert difference < TOLERANCE * expected[valid].abs().max().item()
    # What decoding reads: the best token of every valid frame is the same.
    assert torch.equal(best[valid], expected_best[valid])


def test_the_input_features_are_left_as_they_were(recognizer: SenseVoice) -> None:
    speech, ilens = features([30, 20])
    before = speech.clone()
    with torch.inference_mode():
        encoder.forward(recognizer.model.encoder, speech, ilens)
    assert torch.equal(speech, before)


def test_a_layout_it_does_not_compute_is_not_supported(recognizer: SenseVoice) -> None:
    post_norm = copy.deepcopy(recognizer.model.encoder)
    post_norm.encoders[0].normalize_before = False
    assert not encoder.supports(post_norm)
    shifted = copy.deepcopy(recognizer.model.encoder)
    shifted.tp_encoders[0].self_attn.pad_fn.padding = (6, 4)  # sanm_shfit=1
    assert not encoder.supports(shifted)


def test_only_int8_runs_the_lean_pass(
    recognizer: SenseVoice, tiny_model_dir: Path, tmp_path: Path
) -> None:
    # float32 is funasr's own forward, for the same text as AutoModel.
    assert recognizer.precision == "float32" and not recognizer.lean
    int8 = SenseVoice(tiny_model_dir, device="cpu", precision="int8", cache=tmp_path)
    assert int8.lean
