"""One settings object per data-plane process, read from `HARK_*` environment variables.

CLI flags and the Serve app override fields of this object; they never keep a
second copy of a default. A bad value fails at start with the variable's name
and the value it had.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from hark_serving.errors import ConfigError
from hark_serving.options import (
    Channels,
    Device,
    Language,
    Precision,
    Runtime,
    Segments,
    Timestamps,
    Vad,
)
from hark_serving.storage.settings import StorageSettings

if TYPE_CHECKING:  # boto3 is imported only when a store is made
    from hark_serving.storage.s3 import S3Store

DEFAULT_MODEL = "iic/SenseVoiceSmall"
DEFAULT_MODEL_CACHE = Path.home() / ".cache" / "hark" / "models"


class Settings(StorageSettings):
    """Engine, model and HTTP settings; object storage (`HARK_S3_*`, profiles) is inherited."""

    # Fields named model*: not pydantic's namespace here.
    model_config = SettingsConfigDict(protected_namespaces=())

    # Model
    model: str = Field(
        DEFAULT_MODEL,
        description="Hub id, pinned as id@revision (downloaded once, verified by SHA-256 on "
        "every start), a local SenseVoiceSmall directory, or s3://bucket/prefix/.",
    )
    model_hub: Literal["ms", "hf"] = Field(
        "ms", description="Hub for model ids: ModelScope or Hugging Face."
    )
    model_cache: Path = Field(
        DEFAULT_MODEL_CACHE,
        description="Where hub and s3:// models (and int8 weights and ONNX exports) are cached, "
        "once per node.",
    )
    device: Device = Field("auto", description="auto: cuda when present.")
    precision: Precision = Field(
        "auto",
        description="Encoder dtype. auto: float16 on CUDA; on a CPU int8 (the linear layers "
        "quantized, checked against float32 at load) where torch has fast int8 kernels, else "
        "float32. float32 is exact; bfloat16 is 2-3x float32 on CPUs with AVX512-BF16 or AMX; "
        "int8 and bfloat16 may change transcripts slightly.",
    )
    runtime: Runtime = Field(
        "auto",
        description="What runs the model. auto: ONNX Runtime where the CPU computes int8 "
        "(precision auto or int8 on a CPU: an export made once per model and node, then a "
        "start without torch), else torch. torch: always torch (GPU, float32, bfloat16, and "
        "torch's own int8). onnx: always ONNX Runtime (CPU, int8).",
    )
    threads: int | None = Field(
        None, ge=1, le=256, description="CPU threads for inference; default all usable cores."
    )

    # Segmentation
    vad: Vad = Field("silero", description="Speech detector.")
    vad_model: str = Field(
        "iic/speech_fsmn_vad_zh-cn-16k-common-pytorch",
        description="Model for vad=fsmn: hub id, local directory or s3:// prefix.",
    )
    vad_segments: Segments = Field(
        "auto",
        description="What the model transcribes. speech: only speech; regions more than "
        "0.5 s apart are separate segments, each cut to its speech. recipe: funasr's "
        "merge_vad, the pauses between regions included, for text identical to funasr's "
        "AutoModel. auto: recipe with precision float32, else speech.",
    )
    vad_merge_seconds: float = Field(
        15.0, ge=0, le=60, description="Merge speech regions up to this length (0: no merging)."
    )
    max_segment_seconds: float = Field(
        30.0, gt=1, le=60, description="Split speech longer than this."
    )

    # Batching
    batch_frames: int = Field(
        6000,
        ge=100,
        description="Frame budget of one model batch (60 ms frames, padding included). The "
        "Serve app on a CPU defaults to 500 (30 s of audio), so short requests never wait "
        "behind long batches.",
    )
    max_batch_segments: int = Field(64, ge=1, description="At most this many segments per batch.")

    # Defaults for requests
    language: Language = "auto"
    use_itn: bool = True
    timestamps: Timestamps = "segment"
    channels: Channels = "mix"

    # Limits
    max_upload_bytes: int = Field(512 * 1024 * 1024, ge=1, description="Largest accepted upload.")
    max_audio_seconds: float = Field(4 * 3600.0, gt=0, description="Longest accepted audio.")
    max_item_bytes: int = Field(
        4 * 1024**3,
        ge=1,
        description="Largest object /v1/items (and hark run) downloads; checked before the download.",
    )
    max_split_channels: int = Field(
        8, ge=1, le=64, description="Most channels a file may have with channels=split."
    )
    spill_after_seconds: float = Field(
        600.0, gt=0, description="Decoded audio longer than this is kept on disk, not in memory."
    )

    # Call analytics alerts
    webhook_url: str | None = Field(
        None, description="Where alerts of `alert: true` categories are posted (signed JSON)."
    )
    webhook_secret: SecretStr | None = Field(
        None, description="Shared secret of the alert webhook's HMAC-SHA256 signature."
    )

    @model_validator(mode="after")
    def _precision_fits_device(self) -> Settings:
        # device=auto is only known on the replica; sensevoice.resolve_precision checks it there.
        if self.device == "cpu" and self.precision == "float16":
            raise ValueError(
                "precision float16 runs on CUDA only; on CPU use bfloat16 or float32 "
                "(--precision / HARK_PRECISION)"
            )
        if self.device == "cuda" and self.precision == "int8":
            raise ValueError(
                "precision int8 runs on the CPU only; on CUDA use auto (float16), bfloat16 or "
                "float32 (--precision / HARK_PRECISION), or run int8 with --device cpu"
            )
        if self.runtime == "onnx" and (
            self.device == "cuda" or self.precision not in ("auto", "int8")
        ):
            raise ValueError(
                f"runtime onnx runs int8 on the CPU only, not precision {self.precision} on device "
                f"{self.device}; use runtime auto or torch (--runtime / HARK_RUNTIME)"
            )
        return self

    def s3_store(self) -> S3Store:
        """The default profile's object store."""
        return self.profiles().store(None)


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with `overrides` (CLI flags) on top."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    except SettingsError as exc:
        raise ConfigError(f"{exc} ({exc.__cause__})") from exc
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            flag = field.replace("_", "-")
            problems.append(
                f"{field} (--{flag} / HARK_{field.upper()}) = {err.get('input')!r}: {err['msg']}"
                if field
                else err["msg"]
            )
        raise ConfigError("; ".join(problems)) from exc
