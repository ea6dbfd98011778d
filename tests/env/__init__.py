"""Hark's real test environment: pinned etcd, kube-apiserver, kubectl, helm, MinIO,
kubeconform and KubeRay CRDs, built once from the Go module proxy, plus pytest fixtures.

``python -m tests.env build`` fills the tool cache; ``python -m tests.env up --dir DIR``
starts a control plane and MinIO; ``tests.env.pytest_plugin`` provides the fixtures.
"""
