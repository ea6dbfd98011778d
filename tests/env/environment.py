"""A handle on one running environment: addresses, credentials, and tool wrappers.

The same object is returned by ``Cluster.start()`` (``up`` and the ``test_env``
fixture) and by ``Environment.load(dir)`` for an environment started elsewhere
(``HARK_TEST_ENV``). Its fields are persisted in ``DIR/env.json``.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.env.build import Tools


class CommandError(subprocess.CalledProcessError):
    """A failed kubectl/helm call whose message includes what the tool printed."""

    def __str__(self) -> str:
        return (
            f"{shlex.join(str(a) for a in self.cmd)} exited {self.returncode}\n"
            f"stdout: {self.stdout}\nstderr: {self.stderr}"
        )


@dataclass
class Environment:
    """A running control plane + MinIO. Attribute names are the fixture's API."""

    dir: Path
    kubeconfig: Path
    api_url: str
    ca_file: Path
    s3_endpoint: str
    s3_access_key: str
    s3_secret_key: str
    s3_region: str
    bin_dir: Path
    tools: Tools
    pids: dict[str, int] = field(default_factory=dict)
    ports: dict[str, list[int]] = field(default_factory=dict)

    def variables(self) -> dict[str, str]:
        """Exactly what ``env.sh`` exports (PATH without the inherited part)."""
        return {
            "KUBECONFIG": str(self.kubeconfig),
            "AWS_ENDPOINT_URL": self.s3_endpoint,
            "AWS_ACCESS_KEY_ID": self.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": self.s3_secret_key,
            "AWS_DEFAULT_REGION": self.s3_region,
            "AWS_REGION": self.s3_region,
            # Keep kubectl's discovery cache and helm's state inside this env, so a
            # later env on a reused port never sees stale discovery data, and tests
            # never touch the user's ~/.kube or ~/.config/helm.
            "KUBECACHEDIR": str(self.dir / "kube-cache"),
            "HELM_CACHE_HOME": str(self.dir / "helm/cache"),
            "HELM_CONFIG_HOME": str(self.dir / "helm/config"),
            "HELM_DATA_HOME": str(self.dir / "helm/data"),
            "HARK_TEST_ENV": str(self.dir),
        }

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment after ``source env.sh``: ``base`` (default os.environ) plus
        our variables, with PATH prefixed by the directory of kubectl/helm/kubeconform.
        """
        merged = dict(os.environ if base is None else base)
        merged.update(self.variables())
        merged["PATH"] = os.pathsep.join(filter(None, [str(self.bin_dir), merged.get("PATH")]))
        return merged

    def run(
        self,
        binary: Path,
        *args: str | Path,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        cmd = [str(binary), *map(str, args)]
        proc = subprocess.run(
            cmd,
            input=input,
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise CommandError(proc.returncode, cmd, proc.stdout, proc.stderr)
        return proc

    def kubectl(
        self,
        *args: str | Path,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the pinned kubectl against this environment (admin credentials)."""
        return self.run(self.tools.kubectl, *args, input=input, check=check, timeout=timeout)

    def helm(
        self,
        *args: str | Path,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the pinned helm (KUBECONFIG and helm's home dirs point into this env)."""
        return self.run(self.tools.helm, *args, input=input, check=check, timeout=timeout)

    def kubeconform(
        self,
        *args: str | Path,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the pinned kubeconform (offline: pass ``-schema-location`` yourself)."""
        return self.run(self.tools.kubeconform, *args, input=input, check=check, timeout=timeout)

    # -- persistence (env.json) ---------------------------------------------------

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps(data, indent=2, default=str) + "\n"

    @classmethod
    def load(cls, path: Path) -> Environment:
        """Read ``DIR/env.json``; ``path`` may be DIR, DIR/env.sh or DIR/env.json."""
        directory = path if path.is_dir() else path.parent
        data = json.loads((directory / "env.json").read_text())
        tools = Tools(**{k: Path(v) for k, v in data.pop("tools").items()})
        for key in ("dir", "kubeconfig", "ca_file", "bin_dir"):
            data[key] = Path(data[key])
        return cls(tools=tools, **data)

    def shell_script(self) -> str:
        """The text of ``env.sh``."""
        lines = ["# Generated by `python -m tests.env up`; source it to use this env."]
        lines += [f"export {k}={shlex.quote(v)}" for k, v in self.variables().items()]
        lines.append(f'export PATH={shlex.quote(str(self.bin_dir))}:"$PATH"')
        return "\n".join(lines) + "\n"
