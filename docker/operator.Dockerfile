# syntax=docker/dockerfile:1.7
#
# The Hark operator: `hark[operator]` (kopf, the Kubernetes client and the light
# modules of hark_serving) on a slim Python. No torch, no Ray, no model.
#
#   docker build -f docker/operator.Dockerfile -t hark-operator:0.1.0 .
#
# The base is pinned by version; release builds pin its digest as well, e.g.
#   --build-arg PYTHON_IMAGE=python:3.11.12-slim-bookworm@sha256:<digest>
# (`docker buildx imagetools inspect python:3.11.12-slim-bookworm` prints it).
ARG PYTHON_IMAGE=python:3.11.12-slim-bookworm

# --- build: a wheel of the hark distribution -----------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# README.m[d]: the package's long description, copied when present.
COPY pyproject.toml README.md LICENSE NOTICE ./
COPY serving/ serving/
COPY operator/hark_operator/ operator/hark_operator/
# hark_operator/crds/ links here: the wheel carries the CRD the operator validates with.
COPY charts/hark/crds/ charts/hark/crds/
RUN pip wheel --no-deps --wheel-dir /wheels .

# --- runtime --------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="hark-operator" \
      org.opencontainers.image.description="Hark TranscriptionJob operator" \
      org.opencontainers.image.source="https://github.com/hark-dev/hark" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HARK_LOG_FORMAT=json
RUN groupadd --system --gid 10001 hark \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/hark --create-home \
      --shell /usr/sbin/nologin hark
COPY --from=build /wheels/ /wheels/
# The same pins CI tests with (.ci/constraints.txt), so an image never gets a
# dependency release that no test has seen.
COPY .ci/constraints.txt /wheels/constraints.txt
# Only the operator extra; fail the build if torch or ray sneak in.
RUN pip install -c /wheels/constraints.txt "$(ls /wheels/hark-*.whl)[operator]" \
 && rm -rf /wheels \
 && python -c "import hark_operator, kopf" \
 && ! pip show torch ray >/dev/null 2>&1
# Numeric, so Kubernetes can check runAsNonRoot. The chart mounts /tmp as an
# emptyDir and keeps the root filesystem read-only.
USER 10001:10001
WORKDIR /home/hark
EXPOSE 8080 9090
ENTRYPOINT ["hark"]
CMD ["operator"]
