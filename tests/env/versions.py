"""Every pinned version of the real test environment, in one place.

Bumping a pin here changes the cache key (``<name>-<version>``), so the next
``python -m tests.env build`` builds the new version next to the old one.
"""

from __future__ import annotations

from typing import Final

# Kubernetes: the newest 1.33-1.35 release the Go module proxy serves. The staging
# modules (k8s.io/api, client-go, ...) are released as v0.<minor>.<patch> in lockstep.
KUBERNETES: Final = "v1.35.4"
KUBERNETES_STAGING: Final = "v0" + KUBERNETES[2:]  # "v0.35.4"

# etcd 3.6 is what Kubernetes 1.34+ is tested with (1.35.4 pins client v3.6.5);
# the newest 3.6 patch release.
ETCD: Final = "v3.6.16"

# Helm 3.20 is built against k8s.io/client-go v0.35, so its default
# .Capabilities.KubeVersion and its deprecation lint rules match our API server.
HELM: Final = "v3.20.2"

# MinIO's upstream repository was archived in February 2026; its RELEASE.* tags are
# not semver, so the proxy serves it as a pseudo-version. This is its final commit.
MINIO: Final = "v0.0.0-20260212201848-7aac2a2c5b7c"
MINIO_COMMIT_TIME: Final = "2026-02-12T20:18:48Z"

KUBECONFORM: Final = "v0.8.0"

# promtool checks the chart's alerting rules. Prometheus 3.x is released as module
# versions v0.3XX.Y (3.16.0 here), which the proxy serves like any other module.
PROMETHEUS: Final = "v0.316.0"
PROMETHEUS_RELEASE: Final = "3.16.0"  # what promtool --version prints

# KubeRay ray-operator module: we copy its config/crd/bases/*.yaml (ray.io/v1).
KUBERAY: Final = "v1.6.2"

# Only the public module proxy: GitHub is unreachable from the build machines, so
# there is deliberately no ",direct" fallback.
GOPROXY: Final = "https://proxy.golang.org"
