#!/usr/bin/env bash
# The GPU benchmark suite in one command, on a machine with an NVIDIA GPU and Python:
#   benchmarks/gpu_suite.sh                  # builds .venv-gpu, runs the suite, writes gpu_suite.json
#   benchmarks/gpu_suite.sh --dry-run        # the same chain on CPU with tiny sizes
# Environment: PYTHON (the interpreter that makes the venv, default python3),
# HARK_SUITE_VENV (venv to create or reuse, default .venv-gpu), HARK_SUITE_OUT (the JSON).
# The audio fixtures need ffmpeg, espeak-ng and sox; they are installed with apt-get
# when missing (as .ci/setup does).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
venv=${HARK_SUITE_VENV:-$here/.venv-gpu}
out=${HARK_SUITE_OUT:-$here/gpu_suite.json}
python=${PYTHON:-python3}
fail() { printf '\nFAILED: %s\n' "$*" >&2; exit 1; }

missing=()
for tool in ffmpeg espeak-ng sox; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq || fail "apt-get update failed; install ${missing[*]} by hand"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq ffmpeg espeak-ng sox libsox-fmt-all \
    || fail "could not install ${missing[*]} with apt-get"
fi

"$python" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' \
  || fail "Python 3.11+ is required (found $("$python" --version 2>&1))"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import hark_serving, funasr, ray' 2>/dev/null; then
  echo "== environment: $venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -c .ci/constraints.txt -e '.[test]' \
    || fail "pip install -e '.[test]' failed"
fi
if [[ " $* " != *" --dry-run "* ]]; then
  "$venv/bin/python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' \
    || fail "torch sees no CUDA device; run with --dry-run on a machine without a GPU"
fi
export PATH="$venv/bin:$PATH"
exec "$venv/bin/python" benchmarks/gpu_suite.py --out "$out" "$@"
