"""The numpy frontend against funasr's own (torchaudio's Kaldi fbank, LFR, CMVN)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hark_serving.engine.audio import decode_audio
from hark_serving.engine.features import Frontend, FrontendSettings, load_cmvn
from hark_serving.engine.loading import load, resolve_config


@pytest.fixture(scope="module")
def frontends(tiny_model_dir: Path) -> tuple[Frontend, object]:
    conf = dict(resolve_config(tiny_model_dir)["frontend_conf"])
    ours = Frontend(FrontendSettings.from_config(conf), load_cmvn(Path(conf["cmvn_file"])))
    return ours, load(tiny_model_dir, "cpu", 1).frontend  # funasr's, dither off


def funasr_features(frontend: object, samples: np.ndarray) -> np.ndarray:
    from funasr.utils.load_utils import extract_fbank

    feats, lengths = extract_fbank([torch.from_numpy(samples)], frontend=frontend)
    return feats[0, : int(lengths[0])].numpy()


@pytest.mark.parametrize(
    "seconds", [0.02, 0.025, 0.3, 1.0, 1.037, 3.33, 12.0]
)  # shorter than a frame, one frame, odd stacking remainders, a long segment
def test_features_equal_funasrs_frontend(
    frontends: tuple[Frontend, object], audio_dir: Path, seconds: float
) -> None:
    ours, theirs = frontends
    with decode_audio(audio_dir / "speech_en_16k.wav") as decoded:
        samples = np.ascontiguousarray(decoded.channels[0][16000 : 16000 + int(16000 * seconds)])
    got, want = ours(samples), funasr_features(theirs, samples)
    assert got.shape == want.shape and got.dtype == np.float32
    # float32 rounding of a float64 FFT: far below what changes a token.
    assert np.abs(got - want).max() < 2e-3 * max(1.0, float(np.abs(want).max()))


def test_silence_and_an_empty_segment_give_finite_features(
    frontends: tuple[Frontend, object],
) -> None:
    ours, _ = frontends
    assert ours(np.zeros(0, np.float32)).shape == (0, ours.output_size())
    silent = ours(np.zeros(16000, np.float32))
    assert silent.shape[0] > 0 and np.isfinite(silent).all()


def test_a_cmvn_file_without_its_rows_is_refused_by_name(tmp_path: Path) -> None:
    bad = tmp_path / "am.mvn"
    bad.write_text("<Nnet>\n</Nnet>\n")
    with pytest.raises(ValueError, match=r"am\.mvn: no <AddShift>/<Rescale>"):
        load_cmvn(bad)


def test_an_unknown_window_is_refused() -> None:
    with pytest.raises(ValueError, match="window 'blackman' is not supported"):
        FrontendSettings.from_config({"window": "blackman"})
