"""Decoding every format and layout to 16 kHz float32, and naming what is broken."""

from __future__ import annotations

import subprocess
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from hark_serving.engine.audio import TARGET_RATE, decode_audio
from hark_serving.errors import InputError
from tests.fixtures import audio as fixtures

GOOD = [
    "speech_en_16k.wav", "speech_en_44k_stereo.wav", "speech_en_8k_ulaw.wav", "speech_en.mp3", "speech_en_vbr_noxing.mp3",
    "speech_en.m4a", "speech_en.aac", "speech_en_48k.flac", "speech_en.opus", "speech_en.ogg",
    "speech_en.webm", "speech_en_51.flac", "video_en.mp4", "video_en.mkv", "video_en.mov",
    "call_stereo_8k.wav", "silence_10s.wav",
]  # fmt: skip
BROKEN = {
    "broken_empty.wav": "empty_file",
    "broken_not_audio.mp3": "unsupported_format",
    "broken_truncated.mp3": "truncated_audio",
    "broken_truncated.wav": "truncated_audio",
    "broken_header_only.wav": "empty_audio",
    "broken_video_only.mp4": "no_audio_stream",
}


@pytest.mark.parametrize("name", GOOD)
def test_every_format_decodes_to_16k_mono_of_the_source_duration(
    name: str, audio_dir: Path, corpus: dict[str, fixtures.AudioSpec]
) -> None:
    spec = corpus[name]
    with decode_audio(audio_dir / name) as decoded:
        assert len(decoded.channels) == 1
        samples = decoded.channels[0]
        assert samples.dtype == np.float32
        # Lossy codecs add priming and padding frames (AAC: 2048 samples, 0.128 s at 16 kHz).
        assert abs(len(samples) / TARGET_RATE - spec.duration) < 0.15
        assert decoded.info.sample_rate == spec.sample_rate
        assert decoded.info.channels == spec.channels
        # Lossy decoders may overshoot full scale a little; anything wild is a decoding bug.
        assert np.isfinite(samples).all() and np.abs(samples).max() < 1.5


@pytest.mark.parametrize("name", ["call_stereo_8k.wav", "speech_en_51.flac", "video_en.mov"])
def test_split_gives_one_stream_per_source_channel(
    name: str, audio_dir: Path, corpus: dict[str, fixtures.AudioSpec]
) -> None:
    with decode_audio(audio_dir / name, split_channels=True) as decoded:
        assert len(decoded.channels) == corpus[name].channels
        assert len({len(c) for c in decoded.channels}) == 1


def test_a_call_recording_keeps_each_speaker_on_its_channel(audio_dir: Path) -> None:
    with decode_audio(audio_dir / "call_stereo_8k.wav", split_channels=True) as decoded:
        left, right = decoded.channels
        # The agent speaks first: in the first turn only the left channel has energy.
        first_turn = slice(0, TARGET_RATE)
        assert np.abs(left[first_turn]).max() > 0.05
        assert np.abs(right[first_turn]).max() < 1e-3


def test_a_16k_mono_wav_decodes_sample_exact(audio_dir: Path) -> None:
    import soundfile

    expected, rate = soundfile.read(audio_dir / "speech_en_16k.wav", dtype="float32")
    assert rate == TARGET_RATE
    with decode_audio(audio_dir / "speech_en_16k.wav") as decoded:
        np.testing.assert_array_equal(decoded.channels[0], expected)


@pytest.mark.parametrize("name, code", sorted(BROKEN.items()))
def test_broken_files_give_a_named_error(name: str, code: str, audio_dir: Path) -> None:
    with pytest.raises(InputError) as err:
        decode_audio(audio_dir / name)
    assert err.value.code == code
    assert name in str(err.value)


def test_broken_uploads_are_named_by_the_name_given(audio_dir: Path) -> None:
    with open(audio_dir / "broken_not_audio.mp3", "rb") as f, pytest.raises(InputError) as err:
        decode_audio(f, name="upload.mp3")
    assert "upload.mp3" in str(err.value)


def test_file_objects_decode_like_paths(audio_dir: Path) -> None:
    with (
        open(audio_dir / "speech_en.m4a", "rb") as f,
        decode_audio(f, name="x.m4a") as a,
        decode_audio(audio_dir / "speech_en.m4a") as b,
    ):
        np.testing.assert_array_equal(a.channels[0], b.channels[0])


def test_over_long_audio_is_refused_early(audio_dir: Path) -> None:
    with pytest.raises(InputError) as err:
        decode_audio(audio_dir / "speech_en_16k.wav", max_seconds=5)
    assert err.value.code == "too_long"


def test_memory_stays_bounded_on_long_files(tmp_path: Path) -> None:
    # 20 minutes of 16 kHz mono: 77 MB as float32 if it were all in memory.
    long = tmp_path / "long.wav"
    subprocess.run(
        [
            "sox",
            "-n",
            "-r",
            "16000",
            "-c",
            "1",
            "-b",
            "16",
            str(long),
            "synth",
            "1200",
            "sine",
            "440",
        ],
        check=True,
    )
    tracemalloc.start()
    try:
        decoded = decode_audio(long, spill_after_seconds=30, spill_dir=tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    with decoded:
        assert peak < 16 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
        assert isinstance(decoded.channels[0], np.memmap)
        assert len(decoded.channels[0]) == 1200 * TARGET_RATE
        spill = list(tmp_path.glob("hark-audio-*"))
        assert len(spill) == 1
    assert not list(tmp_path.glob("hark-audio-*")), "spill files are removed on close"


@pytest.mark.parametrize(
    "name, body",
    [
        (
            "list.m3u8",
            "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{url}/a.ts\n#EXT-X-ENDLIST\n",
        ),
        ("list.ffconcat", "ffconcat version 1.0\nfile '{url}/a.wav'\n"),
        ("local.ffconcat", "ffconcat version 1.0\nfile '/etc/hostname'\n"),
    ],
)
def test_playlists_and_concat_lists_are_refused_without_opening_what_they_name(
    tmp_path: Path, name: str, body: str
) -> None:
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.5)
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        path = tmp_path / name
        path.write_text(body.format(url=url))
        with pytest.raises(InputError) as info:
            decode_audio(path)
        assert info.value.code == "unsupported_format"
        assert "playlists" in str(info.value) and name in str(info.value)
        with pytest.raises(TimeoutError):  # nobody came to fetch the URL
            server.accept()
