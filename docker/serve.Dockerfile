# syntax=docker/dockerfile:1.7
#
# Ray pods of the Hark RayService (head and workers): Ray with CUDA plus
# `hark[serve]` (the engine, torch, funasr, silero-vad with onnxruntime, the Serve app).
#
#   docker build -f docker/serve.Dockerfile -t hark-serve:0.1.0 .
#
# RAY_IMAGE must carry the Ray version the chart names (ray.version) and a
# CUDA that TORCH_INDEX_URL's wheels support. Release builds pin the digest:
#   --build-arg RAY_IMAGE=rayproject/ray:2.60.0-py311-cu128@sha256:<digest>
ARG RAY_IMAGE=rayproject/ray:2.60.0-py311-cu128
ARG PYTHON_IMAGE=python:3.11.12-slim-bookworm

# --- build: a wheel of the hark distribution -----------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE NOTICE ./
COPY serving/ serving/
COPY operator/hark_operator/ operator/hark_operator/
COPY charts/hark/crds/ charts/hark/crds/
RUN pip wheel --no-deps --wheel-dir /wheels .

# --- runtime --------------------------------------------------------------------
FROM ${RAY_IMAGE}
ARG RAY_VERSION=2.60.0
# CUDA 12.8 wheels of torch, matching the -cu128 Ray image.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
LABEL org.opencontainers.image.title="hark-serve" \
      org.opencontainers.image.description="Hark Ray Serve application (SenseVoiceSmall on GPU)" \
      org.opencontainers.image.source="https://github.com/hark-dev/hark" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HARK_MODEL_CACHE=/var/cache/hark/models \
    HARK_LOG_FORMAT=json

# The model cache (HARK_MODEL_CACHE): the chart mounts an emptyDir or a
# PersistentVolumeClaim here; owned by the image's non-root user (ray, 1000:100).
USER root
RUN mkdir -p /var/cache/hark/models \
 && chown -R 1000:100 /var/cache/hark \
 && chmod 0775 /var/cache/hark/models
USER 1000:100

COPY --from=build /wheels/ /tmp/wheels/
# The same pins CI tests with (.ci/constraints.txt: torch and the torchaudio built
# for it, funasr, Ray, ...). torch 2.11.0+cu128 from TORCH_INDEX_URL satisfies the
# torch==2.11.0 pin. Keep the image's Ray too, so pip never swaps it for another release.
COPY .ci/constraints.txt /tmp/wheels/constraints.txt
RUN pip install --extra-index-url "${TORCH_INDEX_URL}" -c /tmp/wheels/constraints.txt \
      "$(ls /tmp/wheels/hark-*.whl)[serve]" "ray[serve]==${RAY_VERSION}" \
 && rm -rf /tmp/wheels \
 && python -c "import hark_serving.serve, torch, funasr, silero_vad, onnxruntime"
# KubeRay supplies the command (`ray start ...`); nothing to run by default.
