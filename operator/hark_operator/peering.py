"""Who may act: kopf peering, read the way kopf reads it.

Every operator replica keeps a keep-alive (priority, lifetime, last seen) in
the status of a `ClusterKopfPeering` (cluster-wide operator) or of a
`KopfPeering` in each watched namespace. kopf pauses a replica's handlers and
daemons while another live replica has a higher or the same priority; each
replica draws a random priority at start, so exactly one works. The scaling
loop is not a kopf handler, so it asks `PeeringLeader.is_active` before each
step, which applies the same rule to the same objects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone

from hark_operator.clients.kube import KubeClient, is_not_found

log = logging.getLogger(__name__)

GROUP, VERSION = "kopf.dev", "v1"
CLUSTER_PLURAL, CLUSTER_KIND = "clusterkopfpeerings", "ClusterKopfPeering"
NAMESPACED_PLURAL, NAMESPACED_KIND = "kopfpeerings", "KopfPeering"
DEFAULT_LIFETIME = 60  # what kopf assumes for peers that do not say


def _now() -> datetime:
    return datetime.now(timezone.utc)


def higher_live_peers(
    peers: dict[str, dict[str, object]], identity: str, priority: int, now: datetime
) -> list[str]:
    """Identities of live peers that make `identity` pause (priority >= its own)."""
    out = []
    for peer, info in peers.items():
        if peer == identity or not isinstance(info, dict):
            continue
        try:
            seen = datetime.fromisoformat(str(info.get("lastseen")).replace("Z", "+00:00"))
            if seen.tzinfo is None:
                seen = seen.replace(tzinfo=timezone.utc)
            lifetime = int(str(info.get("lifetime", DEFAULT_LIFETIME)))
            their = int(str(info.get("priority", 0)))
        except ValueError:
            continue
        if seen + timedelta(seconds=lifetime) > now and their >= priority:
            out.append(peer)
    return out


class PeeringLeader:
    def __init__(
        self,
        kube: KubeClient,
        name: str,
        identity: str,
        priority: int,
        *,
        namespaces: Sequence[str] = (),
        standalone: bool = False,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.kube = kube
        self.name = name
        self.identity = identity
        self.priority = priority
        self.namespaces = list(namespaces)
        self.standalone = standalone
        self.clock = clock

    def _objects(self) -> list[tuple[str, str, str | None]]:
        if self.namespaces:
            return [(NAMESPACED_PLURAL, NAMESPACED_KIND, ns) for ns in self.namespaces]
        return [(CLUSTER_PLURAL, CLUSTER_KIND, None)]

    async def ensure_objects(self) -> None:
        """Create the peering objects kopf keeps its keep-alives in, if missing."""
        if self.standalone:
            return
        for plural, kind, namespace in self._objects():
            body = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": kind,
                "metadata": {"name": self.name},
            }
            try:
                await self.kube.create_object(GROUP, VERSION, plural, namespace, body)
            except Exception as exc:  # RBAC may leave creating them to the chart
                log.warning("%s %s not created: %s", kind, self.name, exc)

    async def is_active(self) -> bool:
        if self.standalone:
            return True
        for plural, _, namespace in self._objects():
            try:
                obj = await self.kube.get_object(GROUP, VERSION, plural, namespace, self.name)
            except Exception as exc:
                if is_not_found(exc):
                    continue  # no peering there: kopf runs standalone too
                raise
            blockers = higher_live_peers(
                obj.get("status") or {}, self.identity, self.priority, self.clock()
            )
            if blockers:
                log.debug("paused in favour of %s", ", ".join(blockers))
                return False
        return True
