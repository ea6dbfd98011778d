"""The chart on a real API server: kubeconform, a server-side dry run, a real install,
and the operator's permissions checked with `kubectl auth can-i`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.env.environment import Environment
from tests.env.kube import unique_name
from tests.unit.chart.helpers import (
    MONITORING_KINDS,
    VALUES_FILES,
    Helm,
    Rendered,
    render,
)

from .conftest import ensure_namespace

pytestmark = pytest.mark.integration

CASES = [None, *VALUES_FILES]


def case_id(path: Path | None) -> str:
    return path.name if path else "defaults"


@pytest.fixture(params=CASES, ids=case_id)
def rendered(request: pytest.FixtureRequest, helm: Helm, chart: Path, namespace: str) -> Rendered:
    """The chart rendered for release `hark` in a fresh namespace."""
    files = [request.param] if request.param else []
    return render(helm, chart, values_files=files, namespace=namespace)


def summary(output: str) -> dict[str, int]:
    match = re.search(r"Valid: (\d+), Invalid: (\d+), Errors: (\d+), Skipped: (\d+)", output)
    assert match, output
    return dict(
        zip(("valid", "invalid", "errors", "skipped"), map(int, match.groups()), strict=True)
    )


# -- kubeconform, offline ------------------------------------------------------------


def test_kubeconform_accepts_every_rendering_strictly(
    test_env: Environment, rendered: Rendered, crd_schema_location: str, kubeconform_schemas: str
) -> None:
    """Custom resources against JSON schemas made from the CRD files (ours and
    KubeRay's); built-in kinds against the schemas the API server publishes.
    Only the Prometheus Operator kinds have no schema here (their CRDs are not
    installed); the test counts them as the only skipped documents."""
    monitors = [d for d in rendered.docs if d["kind"] in MONITORING_KINDS]

    result = test_env.kubeconform(
        "-strict",
        "-summary",
        "-schema-location",
        crd_schema_location,
        "-schema-location",
        kubeconform_schemas,
        "-skip",
        ",".join(MONITORING_KINDS),
        "-",
        input=rendered.text,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert summary(result.stdout) == {
        "valid": len(rendered.docs) - len(monitors),
        "invalid": 0,
        "errors": 0,
        "skipped": len(monitors),
    }


def test_kubeconform_checks_custom_resources_against_the_crd_files(
    test_env: Environment, defaults_text: str, crd_schema_location: str
) -> None:
    custom = "\n---\n".join(
        block
        for block in defaults_text.split("\n---\n")
        if re.search(r"^kind: (RayService|ClusterKopfPeering|KopfPeering)$", block, re.M)
    )
    broken = custom.replace(
        "enableInTreeAutoscaling: true", "enableInTreeAutoscaling: true\n    autoscale: yes"
    )

    good = test_env.kubeconform(
        "-strict", "-summary", "-schema-location", crd_schema_location, "-", input=custom
    )
    bad = test_env.kubeconform(
        "-strict", "-schema-location", crd_schema_location, "-", input=broken, check=False
    )

    assert summary(good.stdout)["valid"] == 2  # the RayService and the ClusterKopfPeering
    assert bad.returncode == 1
    assert "autoscale" in bad.stdout


@pytest.fixture
def defaults_text(helm: Helm, chart: Path) -> str:
    return render(helm, chart).text


# -- the API server --------------------------------------------------------------------


def test_the_api_server_accepts_every_rendering_in_a_server_side_dry_run(
    test_env: Environment, rendered: Rendered, hark_crds: Path, namespace: str
) -> None:
    for role in rendered.all("Role") + rendered.all("KopfPeering"):
        ensure_namespace(test_env, role["metadata"]["namespace"])

    result = test_env.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=rendered.without(MONITORING_KINDS)
    )

    expected = [d for d in rendered.docs if d["kind"] not in MONITORING_KINDS]
    assert result.stdout.count("(server dry run)") == len(expected)


def test_the_api_server_refuses_a_rendering_that_breaks_the_rayservice_schema(
    test_env: Environment, helm: Helm, chart: Path, namespace: str
) -> None:
    text = render(helm, chart, namespace=namespace).text.replace(
        "upscalingMode: Default", "upscalingMode: Eager"
    )

    result = test_env.kubectl("apply", "--dry-run=server", "-f", "-", input=text, check=False)

    assert result.returncode != 0
    assert "spec.rayClusterConfig.autoscalerOptions.upscalingMode" in result.stderr


# -- a real install and the operator's permissions ------------------------------------


class Release:
    def __init__(self, env: Environment, name: str, namespace: str) -> None:
        self.env, self.name, self.namespace = env, name, namespace
        self.sa = f"system:serviceaccount:{namespace}:{name}-operator"

    def can_i(self, verb: str, resource: str, namespace: str | None = None, *extra: str) -> str:
        where = ["-n", namespace] if namespace else []
        result = self.env.kubectl(
            "auth", "can-i", verb, resource, *where, *extra, f"--as={self.sa}", check=False
        )
        answer = result.stdout.strip()
        assert answer in ("yes", "no"), result.stderr
        return answer


def install(env: Environment, chart: Path, tmp: Path, values: str, label: str) -> Iterator[Release]:
    namespace = unique_name(f"chart-{label}", max_len=30)
    release = unique_name(f"hark-{label}", max_len=24)
    env.kubectl("create", "namespace", namespace)
    (tmp / "values.yaml").write_text(values)
    env.helm("install", release, chart, "--namespace", namespace, "--values", tmp / "values.yaml")
    try:
        yield Release(env, release, namespace)
    finally:
        env.helm("uninstall", release, "--namespace", namespace, check=False)
        env.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


PROFILES = """
storage:
  defaultProfile: archive
  profiles:
    archive:
      readBuckets: [calls-in, models]
      writeBuckets: [calls-out]
      namespaces: [callcentre]
      credentials:
        existingSecret: team-s3
    minio:
      endpointUrl: http://minio:9000
      allowedBuckets: [dropbox]
      credentials:
        accessKeyId: hark
        secretAccessKey: not-a-real-key
"""


def test_helm_install_dry_run_needs_no_network(
    test_env: Environment,
    hark_crds: Path,
    chart: Path,
    module_namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An air-gapped cluster: the API server answers, anything outside would not.

    KubeRay's CRDs are there (a prerequisite), and so are the chart's own: helm
    installs `crds/` on a real install but skips it in a dry run, so a dry run on a
    cluster that never had Hark needs `kubectl apply -f charts/hark/crds/` first.
    """
    dead = "http://127.0.0.1:9"  # the discard port: nothing listens there
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, dead)  # Go never proxies loopback: the API server still answers
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)

    proc = test_env.helm("install", "hark", chart, "--namespace", module_namespace, "--dry-run")

    assert "STATUS: pending-install" in proc.stdout
    assert "kind: RayService" in proc.stdout
    assert "kind: Pod" in proc.stdout  # the `helm test` hook


@pytest.fixture(scope="module")
def cluster_wide(
    test_env: Environment, hark_crds: Path, chart: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    yield from install(test_env, chart, tmp_path_factory.mktemp("cw"), PROFILES, "cw")


@pytest.fixture(scope="module")
def other_namespace(module_namespace: str) -> str:
    return module_namespace


def test_helm_install_creates_the_release_on_the_api_server(
    test_env: Environment, cluster_wide: Release
) -> None:
    ns, name = cluster_wide.namespace, cluster_wide.name

    listed = test_env.kubectl(
        "get",
        "deployment,service,configmap,rayservice,role,rolebinding,serviceaccount,secret",
        "-n",
        ns,
        "-o",
        "name",
    ).stdout.split()
    cluster = test_env.kubectl(
        "get", f"clusterrole/{ns}-{name}-operator", f"clusterkopfpeering/{name}", "-o", "name"
    ).stdout.split()

    assert f"rayservice.ray.io/{name}" in listed
    assert f"deployment.apps/{name}-operator" in listed
    assert f"secret/{name}-s3-minio" in listed
    assert len(cluster) == 2


@pytest.mark.parametrize(
    ("verb", "resource", "where", "extra"),
    [
        ("list", "transcriptionjobs.hark.dev", "other", ()),
        ("watch", "transcriptionjobs.hark.dev", "other", ()),
        ("get", "transcriptionjobs.hark.dev", "other", ()),
        ("patch", "transcriptionjobs.hark.dev", "other", ()),
        ("update", "transcriptionjobs.hark.dev", "other", ()),
        ("delete", "transcriptionjobs.hark.dev", "other", ()),
        ("patch", "transcriptionjobs.hark.dev", "other", ("--subresource=status",)),
        ("update", "transcriptionjobs.hark.dev", "other", ("--subresource=finalizers",)),
        ("list", "transcriptionjobs.hark.dev", None, ("--all-namespaces",)),
        ("create", "events", "other", ()),
        ("patch", "events", "other", ()),
        ("patch", "clusterkopfpeerings.kopf.dev/{release}", None, ()),
        ("watch", "clusterkopfpeerings.kopf.dev", None, ()),
        ("get", "configmaps/{release}-config", "own", ()),
        ("get", "secrets/team-s3", "own", ()),
        ("get", "secrets/{release}-s3-minio", "own", ()),
        ("get", "rayservices.ray.io/{release}", "own", ()),
        ("patch", "rayservices.ray.io/{release}", "own", ()),
        ("create", "events", "own", ()),
    ],
)
def test_the_cluster_wide_operator_may_do_what_it_needs(
    cluster_wide: Release,
    other_namespace: str,
    verb: str,
    resource: str,
    where: str | None,
    extra: tuple[str, ...],
) -> None:
    namespace = {"own": cluster_wide.namespace, "other": other_namespace, None: None}[where]

    answer = cluster_wide.can_i(verb, resource.format(release=cluster_wide.name), namespace, *extra)

    assert answer == "yes"


@pytest.mark.parametrize(
    ("verb", "resource", "where"),
    [
        ("get", "secrets/team-s3", "other"),  # a profile's Secret name, elsewhere
        ("get", "secrets/{release}-api-token", "own"),  # another Secret at home
        ("get", "secrets/some-other-secret", "own"),
        ("list", "secrets", "own"),
        ("watch", "secrets", "own"),
        ("get", "configmaps/kube-root-ca.crt", "own"),
        ("get", "configmaps/{release}-config", "other"),
        ("delete", "rayservices.ray.io/{release}", "own"),
        ("update", "rayservices.ray.io/{release}", "own"),
        ("create", "rayservices.ray.io", "own"),
        ("list", "rayservices.ray.io", "own"),
        ("get", "rayservices.ray.io/{release}", "other"),
        ("patch", "rayservices.ray.io/another-service", "own"),
        ("patch", "rayclusters.ray.io", "own"),
        ("get", "pods", "own"),
        ("create", "pods", "own"),
        ("delete", "pods", "other"),
        ("create", "pods/exec", "own"),
        ("create", "transcriptionjobs.hark.dev", "other"),
        ("list", "namespaces", None),
        ("delete", "namespaces", None),
        ("get", "nodes", None),
        ("create", "clusterkopfpeerings.kopf.dev", None),
        ("create", "roles.rbac.authorization.k8s.io", "own"),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io", None),
        ("impersonate", "serviceaccounts", "own"),
        ("create", "serviceaccounts/token", "own"),
        ("list", "customresourcedefinitions.apiextensions.k8s.io", None),
        ("patch", "deployments.apps/{release}-operator", "own"),
    ],
)
def test_the_cluster_wide_operator_may_not_do_anything_else(
    cluster_wide: Release, other_namespace: str, verb: str, resource: str, where: str | None
) -> None:
    namespace = {"own": cluster_wide.namespace, "other": other_namespace, None: None}[where]

    answer = cluster_wide.can_i(verb, resource.format(release=cluster_wide.name), namespace)

    assert answer == "no"


@pytest.mark.parametrize(
    ("verb", "resource"),
    [
        ("get", "secrets/{release}-api-token"),
        ("get", "secrets/{release}-s3-minio"),
        ("list", "secrets"),
        ("get", "configmaps/{release}-config"),
        ("list", "pods"),
        ("create", "pods"),
        ("get", "rayservices.ray.io/{release}"),
        ("list", "transcriptionjobs.hark.dev"),
        ("create", "serviceaccounts/token"),
    ],
)
def test_the_ray_worker_pods_may_do_nothing_on_the_api_server(
    cluster_wide: Release, verb: str, resource: str
) -> None:
    # Replicas read their tokens and keys from mounted files; their identity needs no rights.
    workers = Release(cluster_wide.env, cluster_wide.name, cluster_wide.namespace)
    workers.sa = f"system:serviceaccount:{workers.namespace}:{workers.name}-ray"

    answer = workers.can_i(verb, resource.format(release=workers.name), workers.namespace)

    assert answer == "no"


def test_the_release_holds_its_own_api_and_items_tokens(
    test_env: Environment, cluster_wide: Release, chart: Path
) -> None:
    secret = test_env.kubectl(
        "get", f"secret/{cluster_wide.name}-api-token", "-n", cluster_wide.namespace,
        "-o", "jsonpath={.data}",
    ).stdout  # fmt: skip
    data = json.loads(secret)
    assert set(data) == {"token", "itemsToken"} and data["token"] != data["itemsToken"]
    # An upgrade keeps both (lookup of the Secret the install made).
    test_env.helm(
        "upgrade", cluster_wide.name, chart, "--namespace", cluster_wide.namespace,
        "--reuse-values",
    )  # fmt: skip
    again = test_env.kubectl(
        "get", f"secret/{cluster_wide.name}-api-token", "-n", cluster_wide.namespace,
        "-o", "jsonpath={.data}",
    ).stdout  # fmt: skip
    assert json.loads(again) == data


@pytest.fixture(scope="module")
def namespaced(
    test_env: Environment, hark_crds: Path, chart: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Release, list[str]]]:
    watched = [unique_name("jobs-a", max_len=20), unique_name("jobs-b", max_len=20)]
    for ns in watched:
        test_env.kubectl("create", "namespace", ns)
    values = f"operator:\n  watchNamespaces: [{', '.join(watched)}]\n"
    try:
        for release in install(test_env, chart, tmp_path_factory.mktemp("ns"), values, "ns"):
            yield release, watched
    finally:
        for ns in watched:
            test_env.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_the_namespaced_operator_handles_jobs_only_in_its_watch_namespaces(
    namespaced: tuple[Release, list[str]], other_namespace: str
) -> None:
    release, (a, b) = namespaced

    for ns in (a, b):
        assert release.can_i("watch", "transcriptionjobs.hark.dev", ns) == "yes"
        assert (
            release.can_i("patch", "transcriptionjobs.hark.dev", ns, "--subresource=status")
            == "yes"
        )
        assert release.can_i("create", "events", ns) == "yes"
        assert release.can_i("patch", f"kopfpeerings.kopf.dev/{release.name}", ns) == "yes"
    assert release.can_i("list", "transcriptionjobs.hark.dev", other_namespace) == "no"
    assert release.can_i("list", "transcriptionjobs.hark.dev", release.namespace) == "no"
    assert release.can_i("list", "transcriptionjobs.hark.dev", None, "--all-namespaces") == "no"
    assert release.can_i("create", "events", other_namespace) == "no"
    assert release.can_i("list", "namespaces") == "no"
    assert release.can_i("watch", "clusterkopfpeerings.kopf.dev") == "no"
    assert release.can_i("patch", f"rayservices.ray.io/{release.name}", release.namespace) == "yes"
    assert release.can_i("get", f"configmaps/{release.name}-config", release.namespace) == "yes"


def test_the_namespaced_install_makes_nothing_cluster_wide_but_its_crds(
    test_env: Environment, namespaced: tuple[Release, list[str]]
) -> None:
    release, watched = namespaced
    manifest = test_env.helm(
        "get", "manifest", release.name, "--namespace", release.namespace
    ).stdout

    kinds = set(re.findall(r"^kind: (\w+)$", manifest, re.M))
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering"}
    peerings = test_env.kubectl(
        "get",
        "kopfpeerings.kopf.dev",
        "-A",
        "--no-headers",
        "-o",
        "custom-columns=NS:.metadata.namespace,NAME:.metadata.name",
    ).stdout.split("\n")
    for ns in watched:
        assert f"{ns}   {release.name}".split() in [line.split() for line in peerings]


# -- Pod Security ----------------------------------------------------------------------


def pods_from(rendered: Rendered) -> dict[str, dict[str, object]]:
    """Pods as the Deployment and KubeRay would make them from the rendered templates."""
    cluster = rendered.rayservice()["spec"]["rayClusterConfig"]
    templates = {
        "operator": rendered.one("Deployment")["spec"]["template"],
        "ray-head": cluster["headGroupSpec"]["template"],
        "ray-worker": cluster["workerGroupSpecs"][0]["template"],
    }
    return {
        name: {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"psa-{name}", "labels": template["metadata"]["labels"]},
            "spec": template["spec"],
        }
        for name, template in templates.items()
    }


@pytest.mark.parametrize("values_file", CASES, ids=case_id)
def test_every_pod_meets_the_restricted_pod_security_standard(
    test_env: Environment, helm: Helm, chart: Path, namespace: str, values_file: Path | None
) -> None:
    test_env.kubectl(
        "label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted"
    )
    rendered = render(
        helm, chart, values_files=[values_file] if values_file else [], namespace=namespace
    )

    for name, pod in pods_from(rendered).items():
        result = test_env.kubectl(
            "create",
            "--dry-run=server",
            "-n",
            namespace,
            "-f",
            "-",
            input=json.dumps(pod),
            check=False,
        )
        assert result.returncode == 0, f"{name}: {result.stderr}"
        assert "violate" not in result.stderr, f"{name}: {result.stderr}"
