"""S3 storage profiles: named endpoints, regions, bucket rights, namespaces and credentials.

The platform team defines profiles at install time (the chart writes them to a
YAML file, `HARK_STORAGE_PROFILES`); a TranscriptionJob names one and never
carries credentials. Credentials come, in order, from what the caller passes
(the operator reads the profile's Secret in its own namespace), from files in
the profile's `credentialsDir` (the Secret mounted into Serve pods), or from
the standard AWS chain (environment, instance role).

    default: minio
    profiles:
      minio:
        endpointUrl: http://minio.storage:9000
        region: us-east-1
        addressingStyle: path
        readBuckets: [calls-in, models]     # inputs and models: read only
        writeBuckets: [calls-out]           # outputs: read and write
        namespaces: [callcentre]            # whose TranscriptionJobs may use it
        credentialsSecret: hark-s3-minio
        credentialsDir: /etc/hark/s3/minio

Reading and writing are separate rights: a bucket in `writeBuckets` may be
read and written, one in `readBuckets` only read; `allowedBuckets` is the
older shorthand for buckets that may be both. The Serve app refuses to start
with a profile that names no bucket (an empty allow-list would allow every
bucket the credentials reach). `namespaces` limits which jobs may use the profile;
without it, jobs of any watched namespace may.

Without a file there is one profile, `default`, built from `HARK_S3_*`
settings and the AWS environment; a process that serves other people
(`restricted`, the Serve app) opens it to no bucket unless
`HARK_ALLOWED_BUCKETS` names some.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hark_serving.errors import ConfigError, InvalidOption, ProfileNotAllowed

if TYPE_CHECKING:
    from hark_serving.storage.s3 import S3Store

log = logging.getLogger(__name__)

ACCESS_KEY_FILE = "AWS_ACCESS_KEY_ID"
SECRET_KEY_FILE = "AWS_SECRET_ACCESS_KEY"
SESSION_TOKEN_FILE = "AWS_SESSION_TOKEN"


class StorageProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    endpoint_url: str | None = Field(None, alias="endpointUrl")
    region: str | None = None
    addressing_style: Literal["auto", "path", "virtual"] = Field("auto", alias="addressingStyle")
    allowed_buckets: tuple[str, ...] = Field((), alias="allowedBuckets")
    read_buckets: tuple[str, ...] = Field((), alias="readBuckets")
    write_buckets: tuple[str, ...] = Field((), alias="writeBuckets")
    namespaces: tuple[str, ...] = ()
    credentials_secret: str | None = Field(None, alias="credentialsSecret")
    credentials_dir: Path | None = Field(None, alias="credentialsDir")

    @property
    def readable(self) -> tuple[str, ...]:
        """Buckets this profile may read (written ones included)."""
        return tuple(
            dict.fromkeys((*self.allowed_buckets, *self.read_buckets, *self.write_buckets))
        )

    @property
    def writable(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.allowed_buckets, *self.write_buckets)))


class ProfilesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default: str = "default"
    profiles: dict[str, StorageProfile] = Field(default_factory=dict)


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


# (inode, mtime, size) of each key file; `None` for one that is absent.
DirStamp = tuple[tuple[int, int, int] | None, ...]


def _dir_stamp(path: Path | None) -> DirStamp | None:
    """What the credential files look like now: Kubernetes rotates a mounted Secret by
    swapping a symlink, which changes each file's inode and mtime, so a rotation always
    changes the stamp."""
    if path is None:
        return None
    stamps: list[tuple[int, int, int] | None] = []
    for name in (ACCESS_KEY_FILE, SECRET_KEY_FILE, SESSION_TOKEN_FILE):
        try:
            st = os.stat(path / name)
        except OSError:
            stamps.append(None)
        else:
            stamps.append((st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(stamps)


def _read_dir(path: Path | None) -> Credentials | None:
    if path is None or not (path / ACCESS_KEY_FILE).is_file():
        return None
    token = path / SESSION_TOKEN_FILE
    return Credentials(
        (path / ACCESS_KEY_FILE).read_text().strip(),
        (path / SECRET_KEY_FILE).read_text().strip(),
        token.read_text().strip() if token.is_file() else None,
    )


class StorageProfiles:
    """The profiles of one process, with one `S3Store` per profile, made on first use."""

    def __init__(self, spec: ProfilesFile, *, restricted: bool = False) -> None:
        if spec.profiles and spec.default not in spec.profiles:
            raise ConfigError(
                f"default storage profile {spec.default!r} is not among "
                f"{', '.join(sorted(spec.profiles))}"
            )
        self.spec = spec
        self.restricted = restricted
        self._stores: dict[str, S3Store] = {}
        self._stamps: dict[str, DirStamp | None] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        path: Path | None,
        fallback: StorageProfile | None = None,
        *,
        restricted: bool = False,
    ) -> StorageProfiles:
        """From a YAML file, or a single `default` profile when there is none.

        `restricted` (a process that acts for others: the Serve app): a profile
        in the file without any bucket is refused, since an empty allow-list
        would open every bucket its credentials reach, and the fallback profile
        without `HARK_ALLOWED_BUCKETS` opens none.
        """
        if path is None or not path.exists():
            only = {"default": fallback or StorageProfile()}
            return cls(ProfilesFile(profiles=only), restricted=restricted)
        try:
            data = yaml.safe_load(path.read_text()) or {}
            spec = ProfilesFile.model_validate(data)
        except (yaml.YAMLError, ValidationError) as exc:
            raise ConfigError(f"storage profiles in {path} are invalid: {exc}") from exc
        if not spec.profiles:  # a file that defines none: the fallback, under its name
            only = {spec.default: fallback or StorageProfile()}
            return cls(ProfilesFile(default=spec.default, profiles=only), restricted=restricted)
        for name, profile in spec.profiles.items():
            if restricted and not profile.readable:
                raise ConfigError(
                    f"storage profile {name!r} in {path} names no bucket; list its input "
                    "buckets in readBuckets and its output buckets in writeBuckets"
                )
        return cls(spec, restricted=restricted)

    @property
    def names(self) -> list[str]:
        return sorted(self.spec.profiles)

    def profile(self, name: str | None) -> StorageProfile:
        key = name or self.spec.default
        try:
            return self.spec.profiles[key]
        except KeyError:
            raise InvalidOption(
                f"unknown storage profile {key!r}; defined profiles: {', '.join(self.names)}"
            ) from None

    def check_namespace(self, name: str | None, namespace: str | None) -> None:
        """Raise `ProfileNotAllowed` unless jobs of `namespace` may use profile `name`."""
        key = name or self.spec.default
        allowed = self.profile(name).namespaces
        if allowed and namespace not in allowed:
            who = f"namespace {namespace!r}" if namespace else "a request that names no job"
            raise ProfileNotAllowed(
                f"storage profile {key!r} may be used by jobs in {', '.join(allowed)} only, "
                f"not by {who}; use a profile that lists the namespace, or ask the platform "
                "team to add it"
            )

    def store(self, name: str | None = None, credentials: Credentials | None = None) -> S3Store:
        """The profile's store, with `credentials` when given, else with the keys in its
        `credentialsDir`, read again whenever those files change (a rotated Secret), so
        the next call after a rotation uses the new keys without a restart."""
        # boto3 (0.3 s) only once a store is wanted: a local `hark transcribe` needs none.
        from hark_serving.storage.s3 import S3Settings, S3Store

        key = name or self.spec.default
        with self._lock:
            p = self.profile(key)
            stamp = _dir_stamp(p.credentials_dir) if credentials is None else None
            changed = credentials is None and stamp != self._stamps.get(key, stamp)
            if key not in self._stores or credentials is not None or changed:
                try:
                    creds = credentials or _read_dir(p.credentials_dir)
                except OSError as exc:
                    if key not in self._stores:
                        raise ConfigError(
                            f"storage profile {key!r}: cannot read the keys in "
                            f"{p.credentials_dir} ({exc}); mount the profile's Secret there"
                        ) from exc
                    # A Secret volume mid-update: keep the keys we have, look again next call.
                    log.warning("cannot read %s (%s); keeping the keys", p.credentials_dir, exc)
                    return self._stores[key]
                if changed:
                    log.info("the keys in %s changed; using the new ones", p.credentials_dir)
                self._stamps[key] = stamp
                self._stores[key] = S3Store(
                    S3Settings(
                        endpoint_url=p.endpoint_url,
                        region=p.region,
                        addressing_style=p.addressing_style,
                        access_key_id=creds.access_key_id if creds else None,
                        secret_access_key=creds.secret_access_key if creds else None,
                        session_token=creds.session_token if creds else None,
                    ),
                    allowed_buckets=p.readable,
                    write_buckets=p.writable,
                    restricted=self.restricted,
                    profile=key,
                )
            return self._stores[key]
