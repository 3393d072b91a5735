"""The service's configuration: one frozen dataclass, read from the environment once at start-up."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from arq.connections import RedisSettings

from jobs.errors import ConfigError

LogFormat = Literal["auto", "json", "console"]

GIB = 1024**3


@dataclass(frozen=True)
class Settings:
    """Everything the server and the workers are configured with.

    Build it with :meth:`from_env` at start-up and pass it down; nothing else reads the environment.
    """

    data_dir: Path = Path("data")
    #: ``None`` means "embedded": ``vidcorrect serve`` starts its own redis-server and worker.
    redis_url: str | None = None
    max_jobs: int = 4
    job_timeout: int = 3600
    max_upload_bytes: int = 8 * GIB
    x264_preset: str = "veryfast"
    x264_crf: int = 18
    #: Prefix of every Redis key the service owns, and of its arq queue name.
    key_prefix: str = "vidcorrect"
    #: A running task whose worker has not been heard of for this long is retried (seconds).
    heartbeat_timeout: int = 20
    #: Tasks that may wait in the queue; past that, submissions get 429.
    max_queued: int = 100
    #: False: the legacy synchronous API, where a POST answers when its job has ended.
    use_async_tasks: bool = True
    #: Finished tasks older than this many days are deleted with their outputs; 0 keeps all.
    task_retention_days: int = 0
    log_format: LogFormat = "auto"
    log_level: str = "info"
    #: When set, every /api route needs ``Authorization: Bearer <token>`` (or the page's session
    #: cookie); ``None`` leaves the API open (``serve`` then listens on loopback only).
    api_token: str | None = dataclasses.field(default=None, repr=False)
    #: Uploads wider or taller than this many pixels are refused at probe time.
    max_video_side: int = 8192
    #: Uploads with more frames than this are refused at probe time.
    max_video_frames: int = 2_000_000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read ``REDIS_URL`` and the ``VIDCORRECT_*`` variables; ``overrides`` (CLI flags) win.

        Raises :class:`ConfigError` naming the variable when a value cannot be used.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if url := env.get("REDIS_URL", "").strip():
            values["redis_url"] = url
        if data_dir := env.get("VIDCORRECT_DATA_DIR", "").strip():
            values["data_dir"] = Path(data_dir)
        for name, field, minimum in (
            ("VIDCORRECT_MAX_JOBS", "max_jobs", 1),
            ("VIDCORRECT_JOB_TIMEOUT", "job_timeout", 1),
            ("VIDCORRECT_MAX_UPLOAD_BYTES", "max_upload_bytes", 1),
            ("VIDCORRECT_X264_CRF", "x264_crf", 0),
            ("VIDCORRECT_TASK_RETENTION_DAYS", "task_retention_days", 0),
            ("VIDCORRECT_HEARTBEAT_TIMEOUT", "heartbeat_timeout", 3),
            ("VIDCORRECT_MAX_QUEUED", "max_queued", 1),
            ("VIDCORRECT_MAX_VIDEO_SIDE", "max_video_side", 16),
            ("VIDCORRECT_MAX_VIDEO_FRAMES", "max_video_frames", 1),
        ):
            if name in env:
                values[field] = _int_var(env, name, minimum)
        for name, field in (
            ("VIDCORRECT_X264_PRESET", "x264_preset"),
            ("VIDCORRECT_KEY_PREFIX", "key_prefix"),
            ("VIDCORRECT_LOG_LEVEL", "log_level"),
        ):
            if value := env.get(name, "").strip():
                values[field] = value
        if token := env.get("VIDCORRECT_API_TOKEN", "").strip():
            values["api_token"] = token
        if "USE_ASYNC_TASKS" in env:
            flag = env["USE_ASYNC_TASKS"].strip().lower()
            if flag not in ("true", "false", "1", "0", "yes", "no"):
                raise ConfigError("USE_ASYNC_TASKS must be true or false")
            values["use_async_tasks"] = flag in ("true", "1", "yes")
        if fmt := env.get("VIDCORRECT_LOG_FORMAT", "").strip():
            if fmt not in ("auto", "json", "console"):
                raise ConfigError("VIDCORRECT_LOG_FORMAT must be one of auto, json, console")
            values["log_format"] = fmt
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise :class:`ConfigError` for values no part of the service can work with."""
        if self.x264_crf > 51:
            raise ConfigError("VIDCORRECT_X264_CRF must be between 0 and 51")
        if self.x264_preset not in X264_PRESETS:
            raise ConfigError(f"VIDCORRECT_X264_PRESET must be one of {', '.join(X264_PRESETS)}")
        if self.redis_url is not None and not self.redis_url.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ConfigError("REDIS_URL must start with redis://, rediss:// or unix://")
        if self.api_token is not None and not all(33 <= ord(c) < 127 for c in self.api_token):
            raise ConfigError(
                "VIDCORRECT_API_TOKEN must be printable ASCII without spaces (it is sent in an "
                "Authorization header)"
            )
        if self.api_token is not None and len(self.api_token) < MIN_TOKEN_LENGTH:
            raise ConfigError(
                f"VIDCORRECT_API_TOKEN must be at least {MIN_TOKEN_LENGTH} characters long "
                "(e.g. the output of: python3 -c 'import secrets; print(secrets.token_urlsafe())')"
            )

    def with_redis(self, redis_url: str) -> Settings:
        """A copy pointing at ``redis_url`` (used once the embedded Redis has started)."""
        return replace(self, redis_url=redis_url)

    @property
    def embedded(self) -> bool:
        """True when no ``REDIS_URL`` was given: the server runs its own Redis and worker."""
        return self.redis_url is None

    @property
    def queue_name(self) -> str:
        """The arq queue the server enqueues to and the workers read."""
        return f"{self.key_prefix}:queue"

    def redis_settings(self) -> RedisSettings:
        """arq connection settings for :attr:`redis_url` (localhost:6379 when unset)."""
        if self.redis_url is None:
            return RedisSettings()
        return RedisSettings.from_dsn(self.redis_url)


#: Shortest API token accepted: long enough that guessing it is hopeless.
MIN_TOKEN_LENGTH = 16

X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)


def _int_var(env: Mapping[str, str], name: str, minimum: int) -> int:
    raw = env[name].strip()
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value
