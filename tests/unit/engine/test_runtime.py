"""Which runtime runs the model: the plain decision, and the CPU facts it reads."""

from __future__ import annotations

import pytest

from hark_serving.engine.cpu import cpu_computes_int8
from hark_serving.engine.runtime import choose_runtime
from hark_serving.errors import ModelError

AVX2 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
NO_AVX2 = "processor\t: 0\nflags\t\t: fpu sse2 avx\n"


@pytest.mark.parametrize(
    "runtime, precision, device, gpu, int8, expected",
    [
        ("auto", "auto", "cpu", False, True, "onnx"),  # the CPU default where int8 computes well
        ("auto", "auto", "auto", False, True, "onnx"),
        ("auto", "auto", "cpu", False, False, "torch"),  # float32 there: torch, funasr's exact text
        ("auto", "int8", "cpu", False, False, "onnx"),  # asked for by name
        ("auto", "float32", "cpu", False, True, "torch"),
        ("auto", "bfloat16", "cpu", False, True, "torch"),
        ("auto", "auto", "auto", True, True, "torch"),  # a GPU: torch decides cuda or cpu
        ("auto", "auto", "cuda", False, True, "torch"),
        ("auto", "int8", "cpu", True, True, "onnx"),  # --device cpu on a GPU machine
        ("torch", "auto", "cpu", False, True, "torch"),
        ("torch", "int8", "cpu", False, True, "torch"),
        ("onnx", "auto", "cpu", False, False, "onnx"),
        ("onnx", "int8", "auto", True, True, "onnx"),
    ],
)
def test_the_runtime_for_each_setting(
    runtime: str, precision: str, device: str, gpu: bool, int8: bool, expected: str
) -> None:
    assert choose_runtime(runtime, precision, device, gpu_present=gpu, cpu_int8=int8) == expected


@pytest.mark.parametrize("precision, device", [("float32", "cpu"), ("auto", "cuda")])
def test_runtime_onnx_refuses_what_it_cannot_run(precision: str, device: str) -> None:
    with pytest.raises(ModelError, match="runtime onnx runs int8 on the CPU only"):
        choose_runtime("onnx", precision, device, gpu_present=False, cpu_int8=True)


def test_an_unknown_runtime_is_named() -> None:
    with pytest.raises(ModelError, match="unknown runtime 'tvm'"):
        choose_runtime("tvm", "auto", "cpu", gpu_present=False, cpu_int8=True)


@pytest.mark.parametrize(
    "cpuinfo, machine, expected",
    [
        (AVX2, "x86_64", True),
        (NO_AVX2, "x86_64", False),
        ("", "x86_64", False),
        ("", "aarch64", True),
        ("", "arm64", True),
        (AVX2, "ppc64le", False),
    ],
)
def test_int8_instructions_are_read_from_cpuinfo(
    cpuinfo: str, machine: str, expected: bool
) -> None:
    assert cpu_computes_int8(cpuinfo, machine) is expected


def test_this_ci_machine_computes_int8() -> None:
    # CI's machine is x86-64 with AVX2: the default there is the ONNX Runtime int8 path.
    assert cpu_computes_int8()
