"""Silero without torch: the same probabilities and regions as the silero-vad package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hark_serving.engine.audio import decode_audio
from hark_serving.engine.silero import SequenceModel, timestamps_function


@pytest.fixture(scope="module")
def waves(audio_dir: Path) -> dict[str, np.ndarray]:
    out = {}
    for name in ("speech_en_16k.wav", "speech_zh_16k.wav", "silence_10s.wav"):
        with decode_audio(audio_dir / name) as decoded:
            out[name] = np.ascontiguousarray(decoded.channels[0])
    return out


def test_probabilities_equal_the_packages_sequence_model(waves: dict[str, np.ndarray]) -> None:
    import silero_vad

    theirs = silero_vad.load_silero_vad(sequence=True)
    ours = SequenceModel()
    for name, wave in waves.items():
        for cut in (wave, wave[: 512 * 600 + 77]):  # several blocks, a partial last frame
            np.testing.assert_array_equal(ours.probabilities(cut), theirs.audio_forward(cut), name)
    assert ours.probabilities(np.zeros(0, np.float32)).size == 0


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"threshold": 0.3, "min_silence_duration_ms": 300, "speech_pad_ms": 0},
        {"max_speech_duration_s": 2.0, "min_speech_duration_ms": 50},
    ],
)
def test_regions_equal_the_packages_state_machine(
    waves: dict[str, np.ndarray], settings: dict[str, float]
) -> None:
    from silero_vad.utils_vad import get_speech_timestamps_from_probs

    model = SequenceModel()
    for name, wave in waves.items():
        probs = model.probabilities(wave)
        kwargs = {**settings, "audio_length_samples": len(wave)}
        ours = timestamps_function()(probs, **kwargs)
        assert ours == get_speech_timestamps_from_probs(probs, **kwargs), name
    rng = np.random.default_rng(0)  # random probabilities: every branch of the machine
    probs = rng.random(3000).astype(np.float32)
    assert timestamps_function()(probs, **settings) == get_speech_timestamps_from_probs(
        probs, **settings
    )


def test_the_detector_runs_without_importing_torch(audio_dir: Path) -> None:
    code = (
        "import sys\n"
        "from hark_serving.engine.audio import decode_audio\n"
        "from hark_serving.engine.vad import SileroDetector\n"
        f"with decode_audio({str(audio_dir / 'speech_en_16k.wav')!r}) as d:\n"
        "    regions = SileroDetector().detect(d.channels[0])\n"
        "assert regions, regions\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'silero_vad')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
