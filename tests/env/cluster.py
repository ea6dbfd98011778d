"""Start and stop one environment: etcd, kube-apiserver, MinIO, KubeRay CRDs.

Used by ``python -m tests.env up`` and by the ``test_env`` fixture, so both run the
same code. Layout of the environment directory::

    pki/            CA, serving/admin certs, ServiceAccount signing keys
    data/etcd       etcd data          data/minio   MinIO drive
    logs/*.log      one log per server
    bin/            symlinks to kubectl, helm, kubeconform (the PATH prefix)
    kubeconfig, env.sh, env.json
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import signal
import ssl
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.env import build, services
from tests.env.build import Tools
from tests.env.environment import Environment
from tests.env.pki import Pki, make_pki
from tests.env.services import Server, StartupError

S3_REGION = "us-east-1"
# Without kube-controller-manager nothing creates a namespace's "default"
# ServiceAccount, so the ServiceAccount admission plugin would reject every Pod
# (envtest disables it for the same reason).
DISABLED_ADMISSION = "ServiceAccount"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
# What `up` creates inside DIR, removed again on stop.
CREATED = ("pki", "data", "logs", "bin", "kube-cache", "helm", "kubeconfig", "env.sh", "env.json")


class Cluster:
    """Owns the server processes of one environment directory."""

    def __init__(self, directory: Path, tools: Tools) -> None:
        self.dir = directory.resolve()
        self.tools = tools
        self.servers: list[Server] = []
        self.environment: Environment | None = None
        self._created_dir = not self.dir.exists()

    # -- components ---------------------------------------------------------------

    def _etcd(self) -> Server:
        client, peer = services.free_port(), services.free_port()
        url = f"http://127.0.0.1:{client}"
        argv = [
            str(self.tools.etcd),
            "--name=default",
            f"--data-dir={self.dir / 'data/etcd'}",
            f"--listen-client-urls={url}",
            f"--advertise-client-urls={url}",
            # The peer port must be ours too, or two environments collide on 2380.
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=default=http://127.0.0.1:{peer}",
            # Throwaway data: fsync only slows every API write down.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]
        return Server("etcd", argv, self.dir / "logs/etcd.log", ports=[client, peer])

    def _apiserver(self, etcd_url: str, pki: Pki) -> Server:
        port = services.free_port()
        argv = [
            str(self.tools.kube_apiserver),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={self.dir / 'pki'}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            "--authorization-mode=RBAC",
            f"--service-account-issuer={SA_ISSUER}",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            f"--disable-admission-plugins={DISABLED_ADMISSION}",
            # Endpoints may not point at 127.0.0.1; no kubelet serves the
            # `kubernetes` Service anyway, so skip reconciling it.
            "--endpoint-reconciler-type=none",
            "--profiling=false",
        ]
        return Server("kube-apiserver", argv, self.dir / "logs/kube-apiserver.log", ports=[port])

    def _minio(self, user: str, password: str) -> Server:
        api, console = services.free_port(), services.free_port()
        env = dict(os.environ)
        env.update(
            MINIO_ROOT_USER=user,
            MINIO_ROOT_PASSWORD=password,
            MINIO_SITE_REGION=S3_REGION,
            MINIO_BROWSER="off",
            MINIO_UPDATE="off",
        )
        argv = [
            str(self.tools.minio),
            "server",
            "--quiet",
            f"--address=127.0.0.1:{api}",
            f"--console-address=127.0.0.1:{console}",
            str(self.dir / "data/minio"),
        ]
        return Server("minio", argv, self.dir / "logs/minio.log", env=env, ports=[api, console])

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> Environment:
        """Start everything, install the KubeRay CRDs, write env files; stop on failure."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> Environment:
        self.dir.mkdir(parents=True, exist_ok=True)
        for name in CREATED:  # leftovers of a killed run would confuse etcd/MinIO
            _remove(self.dir / name)
        (self.dir / "data").mkdir()
        pki = make_pki(self.dir / "pki")
        user, password = "hark-" + secrets.token_hex(4), secrets.token_urlsafe(24)

        etcd = self._launch(self._etcd, lambda s: f"http://127.0.0.1:{s.ports[0]}/health", 30)
        # MinIO starts in parallel with the API server; we wait for it afterwards.
        minio = self._minio(user, password)
        minio.start()
        self.servers.append(minio)
        etcd_url = f"http://127.0.0.1:{etcd.ports[0]}"
        ctx = _client_context(pki)
        api = self._launch(
            lambda: self._apiserver(etcd_url, pki),
            lambda s: f"https://127.0.0.1:{s.ports[0]}/readyz",
            120,
            ctx,
        )
        minio = self._ensure_minio(minio, user, password)

        env = Environment(
            dir=self.dir,
            kubeconfig=self.dir / "kubeconfig",
            api_url=f"https://127.0.0.1:{api.ports[0]}",
            ca_file=pki.ca_cert,
            s3_endpoint=f"http://127.0.0.1:{minio.ports[0]}",
            s3_access_key=user,
            s3_secret_key=password,
            s3_region=S3_REGION,
            bin_dir=self.dir / "bin",
            tools=self.tools,
            pids={s.name: s.pid for s in self.servers},
            ports={s.name: list(s.ports) for s in self.servers},
        )
        self._write_files(env, pki)
        self.environment = env
        self._install_crds(env)
        return env

    def _launch(
        self,
        launch: Callable[[], Server],
        url: Callable[[Server], str],
        timeout: float,
        ctx: ssl.SSLContext | None = None,
    ) -> Server:
        """Start a server and poll ``url`` until ready, retrying on port conflicts."""

        def ready(server: Server) -> None:
            self.servers.append(server)  # tracked at once: a Ctrl-C now still stops it
            try:
                services.wait_ready(
                    server, lambda: services.http_ok(url(server), ctx), timeout, url(server)
                )
            except StartupError:
                self.servers.remove(server)
                raise

        return services.start_with_retry(launch, ready)

    def _ensure_minio(self, first: Server, user: str, password: str) -> Server:
        def health(s: Server) -> bool:
            return services.http_ok(f"http://127.0.0.1:{s.ports[0]}/minio/health/live")

        try:
            services.wait_ready(first, lambda: health(first), 60, "/minio/health/live")
            return first
        except StartupError:
            if not first.port_conflict():
                raise
            self.servers.remove(first)
            first.stop()
        return self._launch(
            lambda: self._minio(user, password),
            lambda s: f"http://127.0.0.1:{s.ports[0]}/minio/health/live",
            60,
        )

    def _write_files(self, env: Environment, pki: Pki) -> None:
        env.bin_dir.mkdir()
        for tool in (self.tools.kubectl, self.tools.helm, self.tools.kubeconform):
            (env.bin_dir / tool.name).symlink_to(tool)
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "hark-test",
                    "cluster": {
                        "server": env.api_url,
                        "certificate-authority-data": b64(pki.ca_cert),
                    },
                }
            ],
            "users": [
                {
                    "name": "hark-admin",
                    "user": {
                        "client-certificate-data": b64(pki.admin_cert),
                        "client-key-data": b64(pki.admin_key),
                    },
                }
            ],
            "contexts": [
                {"name": "hark-test", "context": {"cluster": "hark-test", "user": "hark-admin"}}
            ],
            "current-context": "hark-test",
        }
        env.kubeconfig.write_text(yaml.safe_dump(kubeconfig, sort_keys=False))
        env.kubeconfig.chmod(0o600)
        (self.dir / "env.sh").write_text(env.shell_script())
        (self.dir / "env.json").write_text(env.to_json())

    def _install_crds(self, env: Environment) -> None:
        crds = env.tools.kuberay_crds
        # Server-side apply: the RayService CRD is too large for the client-side
        # last-applied-configuration annotation (262144 bytes).
        env.kubectl("apply", "--server-side", "--force-conflicts", "-f", crds)
        env.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", crds)

    def stop(self) -> None:
        """Stop the servers (API server first), then remove what ``start`` created."""
        errors = []
        for server in reversed(self.servers):
            try:
                server.stop()
            except RuntimeError as exc:
                errors.append(str(exc))
        self.servers.clear()
        keep_logs = os.environ.get("HARK_ENV_KEEP_LOGS") == "1"
        for name in CREATED:
            if not (keep_logs and name == "logs"):
                _remove(self.dir / name)
        if self._created_dir and self.dir.exists() and not any(self.dir.iterdir()):
            self.dir.rmdir()
        if errors:
            raise RuntimeError("; ".join(errors))


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _client_context(pki: Pki) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
    return ctx


class _Stop(Exception):
    """Raised from the SIGINT/SIGTERM handler to unwind into the cleanup code."""


def _raise_stop(signum: int, _frame: object) -> None:
    raise _Stop(signal.Signals(signum).name)


def run_until_signalled(directory: Path) -> int:
    """``python -m tests.env up``: start, print ``ready``, wait for SIGINT/SIGTERM."""
    try:
        tools = build.tools_or_fail()
    except build.ToolsMissingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    cluster = Cluster(directory, tools)
    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)
    started = time.monotonic()
    code = 0
    try:
        env = cluster.start()
        print(
            f"ready in {time.monotonic() - started:.1f}s: source {env.dir / 'env.sh'} "
            f"(api {env.api_url}, s3 {env.s3_endpoint}, pids {env.pids}, ports {env.ports})",
            flush=True,
        )
        while True:
            dead = [s.name for s in cluster.servers if not s.alive()]
            if dead:
                print(f"error: {', '.join(dead)} exited unexpectedly", file=sys.stderr)
                code = 1
                break
            time.sleep(0.5)
    except _Stop as sig:
        print(f"{sig}: stopping", flush=True)
    except Exception as exc:  # top level of the CLI: report, clean up, exit 1
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    finally:
        # A second Ctrl-C must not abort the cleanup half-way.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        cluster.stop()
        print("stopped", flush=True)
    return code
