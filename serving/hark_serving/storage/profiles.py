"""S3 storage profiles: named endpoints, regions, allowed buckets and credentials.

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
        allowedBuckets: [calls-in, calls-out]
        credentialsSecret: hark-s3-minio
        credentialsDir: /etc/hark/s3/minio

Without a file there is one profile, `default`, built from `HARK_S3_*`
settings and the AWS environment.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hark_serving.errors import ConfigError, InvalidOption
from hark_serving.storage.s3 import S3Settings, S3Store

ACCESS_KEY_FILE = "AWS_ACCESS_KEY_ID"
SECRET_KEY_FILE = "AWS_SECRET_ACCESS_KEY"
SESSION_TOKEN_FILE = "AWS_SESSION_TOKEN"


class StorageProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    endpoint_url: str | None = Field(None, alias="endpointUrl")
    region: str | None = None
    addressing_style: Literal["auto", "path", "virtual"] = Field("auto", alias="addressingStyle")
    allowed_buckets: tuple[str, ...] = Field((), alias="allowedBuckets")
    credentials_secret: str | None = Field(None, alias="credentialsSecret")
    credentials_dir: Path | None = Field(None, alias="credentialsDir")


class ProfilesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default: str = "default"
    profiles: dict[str, StorageProfile] = Field(default_factory=dict)


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


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

    def __init__(self, spec: ProfilesFile) -> None:
        if spec.profiles and spec.default not in spec.profiles:
            raise ConfigError(
                f"default storage profile {spec.default!r} is not among "
                f"{', '.join(sorted(spec.profiles))}"
            )
        self.spec = spec
        self._stores: dict[str, S3Store] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path | None, fallback: StorageProfile | None = None) -> StorageProfiles:
        """From a YAML file, or a single `default` profile when there is none."""
        if path is None or not path.exists():
            return cls(ProfilesFile(profiles={"default": fallback or StorageProfile()}))
        try:
            data = yaml.safe_load(path.read_text()) or {}
            return cls(ProfilesFile.model_validate(data))
        except (yaml.YAMLError, ValidationError) as exc:
            raise ConfigError(f"storage profiles in {path} are invalid: {exc}") from exc

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

    def store(self, name: str | None = None, credentials: Credentials | None = None) -> S3Store:
        key = name or self.spec.default
        with self._lock:
            if key not in self._stores or credentials is not None:
                p = self.profile(key)
                creds = credentials or _read_dir(p.credentials_dir)
                self._stores[key] = S3Store(
                    S3Settings(
                        endpoint_url=p.endpoint_url,
                        region=p.region,
                        addressing_style=p.addressing_style,
                        access_key_id=creds.access_key_id if creds else None,
                        secret_access_key=creds.secret_access_key if creds else None,
                        session_token=creds.session_token if creds else None,
                    ),
                    allowed_buckets=p.allowed_buckets,
                )
            return self._stores[key]
