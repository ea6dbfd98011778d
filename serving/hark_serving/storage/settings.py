"""The object-storage part of a process's settings, shared by the data and control planes.

Both `hark_serving.config.Settings` and the operator's settings inherit it, so
the `HARK_S3_*` fallback, the allow-list and the profiles file mean the same
everywhere and are read by one piece of code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from hark_serving.storage.profiles import StorageProfile, StorageProfiles


def split_list(value: object) -> object:
    """`a, b` (how a list is written in one environment variable) as `["a", "b"]`."""
    if isinstance(value, str) and not value.strip().startswith("["):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


class StorageSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HARK_", extra="forbid", validate_default=True, frozen=True
    )
    # A process that serves other people's requests (the Serve app) opens the
    # fallback profile to no bucket unless HARK_ALLOWED_BUCKETS names some.
    restrict_buckets: ClassVar[bool] = False

    s3_endpoint_url: str | None = Field(
        None, description="S3 endpoint (MinIO, Ceph); AWS when unset."
    )
    s3_region: str | None = None
    s3_addressing_style: Literal["auto", "path", "virtual"] = "auto"
    allowed_buckets: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="When set, only these buckets may be read or written."
    )
    storage_profiles: Path | None = Field(
        None,
        description="YAML file of named S3 storage profiles; without it one `default` profile "
        "is built from the HARK_S3_* settings and the AWS environment.",
    )

    @field_validator("allowed_buckets", mode="before")
    @classmethod
    def _split_buckets(cls, value: object) -> object:
        return split_list(value)

    def profiles(self) -> StorageProfiles:
        """The storage profiles of this process (see `storage.profiles`)."""
        fallback = StorageProfile(
            endpoint_url=self.s3_endpoint_url,
            region=self.s3_region,
            addressing_style=self.s3_addressing_style,
            allowed_buckets=tuple(self.allowed_buckets),
        )
        return StorageProfiles.load(
            self.storage_profiles, fallback, restricted=self.restrict_buckets
        )
