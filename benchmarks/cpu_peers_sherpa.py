"""sherpa-onnx's VAD-plus-SenseVoice pipeline over files, and the ONNX export it reads.

`export_onnx(model_dir)` follows the export sherpa-onnx documents for SenseVoice
(its scripts/sense-voice/export-onnx.py): the funasr SenseVoiceSmall with the
language, event/emotion and text-norm queries put in front of the features,
exported with torch.onnx (TorchScript exporter, opset 13, dynamic batch and
length), the metadata sherpa-onnx reads (LFR window, normalisation from
am.mvn, vocabulary size, language and text-norm ids), tokens.txt from the
tokenizer, and an int8 copy by onnxruntime's dynamic quantisation of the
MatMuls (QUInt8, as the recipe says QInt8 decodes wrongly). The files are
cached under the benchmark cache, keyed by the weights.

Run as a script, it is the pipeline of sherpa-onnx's python example for VAD
with a non-streaming model, reading files instead of a microphone: silero VAD
(ONNX) cuts speech, and `OfflineRecognizer.from_sense_voice` decodes each
piece. It prints `READY <epoch seconds>` on stderr once both are loaded.

    python benchmarks/cpu_peers_sherpa.py --model model.int8.onnx --tokens tokens.txt \\
        --vad silero_vad.onnx --threads 2 a.wav b.wav
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
import wave
from pathlib import Path
from typing import Any

BENCH_EXTRA = "pip install 'hark[bench]'"


def require_bench_packages() -> None:
    """Exit with the install command when sherpa-onnx, onnx or onnxruntime is missing."""
    import importlib.util

    missing = [m for m in ("sherpa_onnx", "onnx", "onnxruntime") if not importlib.util.find_spec(m)]
    if missing:
        sys.exit(f"the sherpa-onnx pipelines need {', '.join(missing)}: {BENCH_EXTRA}")


def silero_vad_onnx() -> Path:
    """The silero VAD ONNX file that the `silero_vad` package ships."""
    import silero_vad

    return Path(silero_vad.__file__).parent / "data" / "silero_vad.onnx"


def weights_key(model_dir: Path) -> str:
    digest = hashlib.sha256()
    for name in ("model.pt", "config.yaml", "am.mvn"):
        with open(model_dir / name, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def cmvn(path: Path) -> tuple[str, str]:
    """(negative means, inverse standard deviations) from a Kaldi-style am.mvn."""
    rows = [
        ",".join(line.split()[3:-1])
        for line in path.read_text().splitlines()
        if line.startswith("<LearnRateCoef>")
    ]
    return rows[0], rows[1]


def _export(model_dir: Path, out: Path) -> None:
    import onnx
    import sentencepiece as spm
    import torch
    import yaml
    from funasr import AutoModel
    from onnxruntime.quantization import QuantType, quantize_dynamic

    sense_voice = AutoModel(model=str(model_dir), device="cpu", disable_update=True).model
    sense_voice.eval()

    class Logits(torch.nn.Module):
        """SenseVoiceSmall as sherpa-onnx calls it: features and query ids in, CTC logits out."""

        def __init__(self) -> None:
            super().__init__()
            self.m = sense_voice

        def forward(self, x: Any, x_length: Any, language: Any, text_norm: Any) -> Any:
            m = self.m
            language_query = m.embed(language).unsqueeze(1)
            text_norm_query = m.embed(text_norm).unsqueeze(1)
            event_emo_query = m.embed(torch.LongTensor([[1, 2]])).repeat(x.size(0), 1, 1)
            x = torch.cat((language_query, event_emo_query, text_norm_query, x), dim=1)
            encoder_out, _ = m.encoder(x, x_length + 4)
            if isinstance(encoder_out, tuple):
                encoder_out = encoder_out[0]
            return m.ctc.ctc_lo(encoder_out)

    sp = spm.SentencePieceProcessor(
        model_file=str(model_dir / "chn_jpn_yue_eng_ko_spectok.bpe.model")
    )
    with open(out / "tokens.txt", "w", encoding="utf-8") as f:
        for i in range(sp.vocab_size()):
            f.write(f"{sp.id_to_piece(i)} {i}\n")

    frontend = yaml.safe_load((model_dir / "config.yaml").read_text())["frontend_conf"]
    fp32 = out / "model.onnx"
    with torch.no_grad():
        torch.onnx.export(
            Logits(),
            (
                torch.randn(2, 100, 560),
                torch.tensor([80, 100], dtype=torch.int32),
                torch.tensor([0, 3], dtype=torch.int32),
                torch.tensor([14, 15], dtype=torch.int32),
            ),
            str(fp32),
            opset_version=13,
            dynamo=False,  # the recipe's exporter (torch now defaults to dynamo)
            input_names=["x", "x_length", "language", "text_norm"],
            output_names=["logits"],
            dynamic_axes={
                "x": {0: "N", 1: "T"},
                "x_length": {0: "N"},
                "language": {0: "N"},
                "text_norm": {0: "N"},
                "logits": {0: "N", 1: "T"},
            },
        )
    neg_mean, inv_stddev = cmvn(model_dir / "am.mvn")
    lid, itn = sense_voice.lid_dict, sense_voice.textnorm_dict
    meta = {
        "lfr_window_size": frontend.get("lfr_m", 7),
        "lfr_window_shift": frontend.get("lfr_n", 6),
        "normalize_samples": 0,  # samples in [-32768, 32767]
        "neg_mean": neg_mean,
        "inv_stddev": inv_stddev,
        "model_type": "sense_voice_ctc",
        "version": "2",  # 2: the int8 copy uses QUInt8
        "model_author": "iic",
        "maintainer": "k2-fsa",
        "vocab_size": sp.vocab_size(),
        "comment": f"random weights from {model_dir.name}",
        **{f"lang_{k}": lid[k] for k in ("auto", "zh", "en", "yue", "ja", "ko", "nospeech")},
        "with_itn": itn["withitn"],
        "without_itn": itn["woitn"],
    }
    proto = onnx.load(str(fp32))
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=str(value))
    onnx.save(proto, str(fp32))
    quantize_dynamic(
        model_input=str(fp32),
        model_output=str(out / "model.int8.onnx"),
        op_types_to_quantize=["MatMul"],
        weight_type=QuantType.QUInt8,
    )


def export_onnx(model_dir: Path) -> Path:
    """model.onnx, model.int8.onnx and tokens.txt for `model_dir`, built once (cached)."""
    from serve_load import CACHE, cached_dir

    target = CACHE / f"sherpa-onnx-{weights_key(model_dir)}"
    return cached_dir(target, "model.int8.onnx", lambda tmp: _export(model_dir, tmp))


def read_wav(path: Path) -> Any:
    import numpy as np

    with wave.open(str(path)) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    return pcm.astype(np.float32) / 32768


def decode_ready(vad: Any, recognizer: Any) -> int:
    """Decode every segment the VAD has finished, one at a time; how many."""
    done = 0
    while not vad.empty():
        stream = recognizer.create_stream()
        stream.accept_waveform(16000, vad.front.samples)
        vad.pop()
        recognizer.decode_stream(stream)
        done += 1
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="model.onnx or model.int8.onnx")
    parser.add_argument("--tokens", type=Path, required=True)
    parser.add_argument("--vad", type=Path, required=True, help="silero_vad.onnx")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("files", type=Path, nargs="+")
    args = parser.parse_args()
    require_bench_packages()
    import sherpa_onnx

    recognizer = sherpa_onnx.OfflineRecognizer.from_sense_voice(
        model=str(args.model), tokens=str(args.tokens), num_threads=args.threads, use_itn=True
    )
    config = sherpa_onnx.VadModelConfig()
    config.silero_vad.model = str(args.vad)
    config.silero_vad.min_silence_duration = 0.25
    config.sample_rate = 16000
    window = config.silero_vad.window_size
    print(f"READY {time.time()}", file=sys.stderr, flush=True)

    segments: dict[str, int] = {}
    for path in args.files:
        vad = sherpa_onnx.VoiceActivityDetector(config, buffer_size_in_seconds=600)
        samples = read_wav(path)
        count = 0

        for start in range(0, len(samples), window):
            vad.accept_waveform(samples[start : start + window])
            count += decode_ready(vad, recognizer)
        vad.flush()
        segments[path.name] = count + decode_ready(vad, recognizer)
    print(json.dumps({"segments": segments}))


if __name__ == "__main__":
    main()
