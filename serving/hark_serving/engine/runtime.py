"""Which runtime runs the model: ONNX Runtime or torch. A plain decision, probed at the edge.

ONNX Runtime runs the CPU's int8 path: it starts without importing torch and, on
the CPUs measured (docs/precision.md), runs the int8 graph faster than torch's
own int8. torch runs everything else: CUDA, float32 (byte for byte funasr's
output), bfloat16, and its own int8 where asked for by name (`--runtime torch`).
"""

from __future__ import annotations

from hark_serving.errors import ModelError

INT8_PRECISIONS = ("auto", "int8")


def choose_runtime(
    runtime: str, precision: str, device: str, *, gpu_present: bool, cpu_int8: bool
) -> str:
    """`onnx` or `torch` for these settings; `gpu_present`: an NVIDIA driver is installed."""
    if runtime == "torch":
        return "torch"
    on_gpu = device.startswith("cuda") or (device == "auto" and gpu_present)
    if runtime == "onnx":
        if device.startswith("cuda") or precision not in INT8_PRECISIONS:
            raise ModelError(
                f"runtime onnx runs int8 on the CPU only, not precision {precision} on device "
                f"{device}; use --runtime auto or torch (HARK_RUNTIME)"
            )
        return "onnx"
    if runtime != "auto":
        raise ModelError(f"unknown runtime {runtime!r}; use auto, torch or onnx")
    if on_gpu:
        return "torch"
    if precision == "int8" or (precision == "auto" and cpu_int8):
        return "onnx"
    return "torch"
