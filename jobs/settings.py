"""The service's configuration: one frozen dataclass, read from the environment once at start-up."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from arq.connections import RedisSettings

from jobs.audio_policy import AUDIO_POLICIES, AudioPolicy
from jobs.errors import ConfigError
from jobs.keys import Keys

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
    #: The least time limit of a job (seconds); a long video gets more (:meth:`time_limit`).
    job_timeout: int = 3600
    #: The slowest rate (frames per second) a job is given time for: its time limit is at least
    #: its video's frames over this rate, so a long video on a busy service is not stopped while
    #: it still progresses (:meth:`time_limit`).
    timeout_floor_fps: int = 5
    #: A frame loop that reports no progress for this long (a hung decoder or child) is killed
    #: and its task retried as a lost attempt (seconds; 0: never).
    stall_timeout: int = 120
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
    #: Originals (with their video's record) older than this many days are deleted; 0 keeps all.
    original_retention_days: int = 0
    #: Outputs finished more than this many days ago are deleted; 0 keeps all.
    output_retention_days: int = 0
    log_format: LogFormat = "auto"
    log_level: str = "info"
    #: When set, every /api route needs ``Authorization: Bearer <token>`` (or the page's session
    #: cookie); ``None`` leaves the API open (``serve`` then listens on loopback only).
    api_token: str | None = dataclasses.field(default=None, repr=False)
    #: Uploads wider or taller than this many pixels are refused at probe time.
    max_video_side: int = 8192
    #: Uploads with more frames than this are refused at probe time.
    max_video_frames: int = 2_000_000
    #: Host names (``name`` for any port, ``name:port``) the server answers to besides the
    #: loopback names, normalized (lower case, IPv6 in brackets); see :func:`split_host`.
    allowed_hosts: tuple[str, ...] = ()
    #: SSE clients one server process follows at once; past that, 503 with ``Retry-After``.
    max_sse_clients: int = 1000
    #: Seconds a connection may take to send a complete request head (from connecting, or from
    #: the end of the previous response: also the idle keep-alive limit).
    header_timeout: int = 15
    #: An upload is cut off (408) when, in any span of this many seconds, it delivers fewer
    #: than ``upload_min_rate`` bytes a second on average (nothing at all: idle).
    upload_idle_timeout: int = 30
    #: Lowest average rate (bytes/s) an upload must keep over each ``upload_idle_timeout``.
    upload_min_rate: int = 1024
    #: Uploads one server process receives at once; past that, 503 with ``Retry-After``.
    max_concurrent_uploads: int = 16
    #: Seconds an answer may stay unsent because its client takes nothing (a download or event
    #: stream it does not read: a full TCP window) or acknowledges nothing before the
    #: connection is closed (``TCP_USER_TIMEOUT``; Linux only).
    send_timeout: int = 60
    #: What an edit does with the sound when its request does not say (jobs.audio_policy):
    #: ``drop`` by default, since staff speak names during a procedure.
    audio: AudioPolicy = "drop"
    #: Where every task's end is posted (jobs.webhooks), besides a submission's ``callback_url``;
    #: its host must be one of :attr:`webhook_hosts`.
    webhook_url: str | None = None
    #: The key webhook deliveries are signed with (HMAC-SHA256); required with any webhook.
    webhook_secret: str | None = dataclasses.field(default=None, repr=False)
    #: The only hosts webhooks are posted to (``name`` for any port, ``name:port``), normalized
    #: as :attr:`allowed_hosts`; empty: no webhooks, and a ``callback_url`` is refused.
    webhook_hosts: tuple[str, ...] = ()
    #: The users file (:mod:`jobs.users`): named users with roles, tokens kept as salted
    #: hashes; ``None``: no named users (``api_token`` alone, or an open API).
    users_file: Path | None = None
    #: Addresses or networks of reverse proxies whose ``X-Forwarded-For`` and
    #: ``X-Forwarded-Proto`` are believed (normalized CIDR networks); from anyone else those
    #: headers are ignored.
    trusted_proxies: tuple[str, ...] = ()
    #: True: an output is downloaded only once a reviewer approved it (reviewers and admins
    #: may download it before, to review it).
    require_approval: bool = False
    #: Target length of the chunks a long video is split into across workers (seconds).
    chunk_seconds: float = 60.0
    #: Chunks of one task queued or running at once; 0: no limit.
    max_chunks_per_task: int = 0

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
            ("VIDCORRECT_ORIGINAL_RETENTION_DAYS", "original_retention_days", 0),
            ("VIDCORRECT_OUTPUT_RETENTION_DAYS", "output_retention_days", 0),
            ("VIDCORRECT_HEARTBEAT_TIMEOUT", "heartbeat_timeout", 3),
            ("VIDCORRECT_MAX_QUEUED", "max_queued", 1),
            ("VIDCORRECT_MAX_VIDEO_SIDE", "max_video_side", 16),
            ("VIDCORRECT_MAX_VIDEO_FRAMES", "max_video_frames", 1),
            ("VIDCORRECT_MAX_SSE_CLIENTS", "max_sse_clients", 1),
            ("VIDCORRECT_HEADER_TIMEOUT", "header_timeout", 1),
            ("VIDCORRECT_UPLOAD_IDLE_TIMEOUT", "upload_idle_timeout", 1),
            ("VIDCORRECT_UPLOAD_MIN_RATE", "upload_min_rate", 0),
            ("VIDCORRECT_MAX_CONCURRENT_UPLOADS", "max_concurrent_uploads", 1),
            ("VIDCORRECT_SEND_TIMEOUT", "send_timeout", 1),
            ("VIDCORRECT_MAX_CHUNKS_PER_TASK", "max_chunks_per_task", 0),
            ("VIDCORRECT_TIMEOUT_FLOOR_FPS", "timeout_floor_fps", 1),
            ("VIDCORRECT_STALL_TIMEOUT", "stall_timeout", 0),
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
        if hosts := env.get("VIDCORRECT_ALLOWED_HOSTS", "").strip():
            values["allowed_hosts"] = _host_list(hosts, "VIDCORRECT_ALLOWED_HOSTS")
        if hosts := env.get("VIDCORRECT_WEBHOOK_HOSTS", "").strip():
            values["webhook_hosts"] = _host_list(hosts, "VIDCORRECT_WEBHOOK_HOSTS")
        if url := env.get("VIDCORRECT_WEBHOOK_URL", "").strip():
            values["webhook_url"] = url
        if secret := env.get("VIDCORRECT_WEBHOOK_SECRET", "").strip():
            values["webhook_secret"] = secret
        if token := env.get("VIDCORRECT_API_TOKEN", "").strip():
            values["api_token"] = token
        if users_file := env.get("VIDCORRECT_USERS_FILE", "").strip():
            values["users_file"] = Path(users_file)
        if proxies := env.get("VIDCORRECT_TRUSTED_PROXIES", "").strip():
            values["trusted_proxies"] = _network_list(proxies)
        for name, field in (
            ("USE_ASYNC_TASKS", "use_async_tasks"),
            ("VIDCORRECT_REQUIRE_APPROVAL", "require_approval"),
        ):
            if name in env:
                values[field] = _flag(env, name)
        if "VIDCORRECT_CHUNK_SECONDS" in env:
            values["chunk_seconds"] = _float_var(env, "VIDCORRECT_CHUNK_SECONDS")
        if audio := env.get("VIDCORRECT_AUDIO", "").strip():
            values["audio"] = audio
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
        if self.audio not in AUDIO_POLICIES:
            raise ConfigError(f"VIDCORRECT_AUDIO must be one of {', '.join(AUDIO_POLICIES)}")
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

        self._validate_webhooks()

    def _validate_webhooks(self) -> None:
        if not (self.webhook_hosts or self.webhook_url):
            return
        if self.webhook_secret is None or len(self.webhook_secret) < MIN_TOKEN_LENGTH:
            raise ConfigError(
                f"VIDCORRECT_WEBHOOK_SECRET must be set, at least {MIN_TOKEN_LENGTH} characters "
                "long, when VIDCORRECT_WEBHOOK_HOSTS or VIDCORRECT_WEBHOOK_URL is: every delivery "
                "is signed with it"
            )
        if self.webhook_url is not None and webhook_target(self.webhook_url, self) is None:
            raise ConfigError(
                "VIDCORRECT_WEBHOOK_URL must be an http:// or https:// URL without user or "
                "password whose host (and port) is listed in VIDCORRECT_WEBHOOK_HOSTS"
            )

    def with_listen_host(self, host: str) -> Settings:
        """A copy that also answers to the address ``serve --host`` listens on, when that is a
        concrete address or name (not a wildcard such as ``0.0.0.0`` or ``::``)."""
        bare = host.strip().strip("[]")
        try:
            address = ipaddress.ip_address(bare)
        except ValueError:
            address = None
        if address is not None and address.is_unspecified:
            return self
        parsed = split_host(f"[{bare}]" if address is not None and address.version == 6 else bare)
        if parsed is None or parsed[1] is not None:
            return self
        if parsed[0] in self.allowed_hosts:
            return self
        return replace(self, allowed_hosts=(*self.allowed_hosts, parsed[0]))

    def with_redis(self, redis_url: str) -> Settings:
        """A copy pointing at ``redis_url`` (used once the embedded Redis has started)."""
        return replace(self, redis_url=redis_url)

    def time_limit(self, frames: int) -> int:
        """The time limit (seconds) of a job on a video of ``frames`` frames:
        ``job_timeout``, or the frames at ``timeout_floor_fps`` if that is longer."""
        return max(self.job_timeout, -(-max(0, frames) // self.timeout_floor_fps))

    @property
    def longest_time_limit(self) -> int:
        """The longest time limit any job may get: that of the longest video accepted
        (``max_video_frames``). arq's own per-job limit sits above it (jobs.worker)."""
        return self.time_limit(self.max_video_frames)

    @property
    def embedded(self) -> bool:
        """True when no ``REDIS_URL`` was given: the server runs its own Redis and worker."""
        return self.redis_url is None

    @property
    def keys(self) -> Keys:
        """The Redis keys under :attr:`key_prefix`."""
        return Keys(self.key_prefix)

    @property
    def queue_name(self) -> str:
        """The arq queue the server enqueues to and the workers read."""
        return self.keys.queue

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


#: One label of a host name (underscores too: container names have them).
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*", re.ASCII)
_PORT = re.compile(r"[0-9]{1,5}", re.ASCII)


def split_host(text: str) -> tuple[str, int | None] | None:
    """``(host, port)`` of a ``Host`` header value or a ``VIDCORRECT_ALLOWED_HOSTS`` entry, the
    host normalized (lower case, no trailing dot, an IPv6 address compressed in brackets), the
    port ``None`` when absent; ``None`` when ``text`` is not a host name or address with an
    optional port."""
    text = text.strip().lower()
    if text.startswith("["):
        end = text.find("]")
        try:
            address = ipaddress.IPv6Address(text[1:end]) if end > 0 else None
        except ValueError:
            return None
        if address is None:
            return None
        host, rest = f"[{address.compressed}]", text[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_or_empty = text.partition(":")
        port_text = port_text_or_empty if colon else None
        host = host.removesuffix(".")
        if len(host) > 253 or not _HOST_NAME.fullmatch(host):
            return None
    if port_text is None:
        return host, None
    if not _PORT.fullmatch(port_text) or not 0 < int(port_text) < 65536:
        return None
    return host, int(port_text)


def webhook_target(url: str, settings: Settings) -> tuple[str, str, int | None] | None:
    """``(scheme, host, port)`` of a webhook ``url`` the settings allow posting to: http or https,
    no user or password, no fragment, at most 2048 characters, and its host listed in
    :attr:`Settings.webhook_hosts` (an entry without a port allows any); ``None`` otherwise.
    The host is as :func:`split_host` normalizes it."""
    if len(url) > MAX_WEBHOOK_URL or not url.isascii() or not url.isprintable() or " " in url:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or "@" in parts.netloc or parts.fragment:
        return None
    parsed = split_host(parts.netloc)
    if parsed is None:
        return None
    host = parsed[0]
    effective = port or (443 if parts.scheme == "https" else 80)
    if host not in settings.webhook_hosts and f"{host}:{effective}" not in settings.webhook_hosts:
        return None
    return parts.scheme, host, port


#: The longest webhook URL accepted.
MAX_WEBHOOK_URL = 2048


def _host_list(raw: str, name: str) -> tuple[str, ...]:
    entries: list[str] = []
    for item in raw.split(","):
        if not item.strip():
            continue
        parsed = split_host(item)
        if parsed is None:
            raise ConfigError(
                f"{name} must be a comma-separated list of host names or "
                f"addresses, each with an optional :port (IPv6 in brackets), got {item.strip()!r}"
            )
        host, port = parsed
        entries.append(host if port is None else f"{host}:{port}")
    return tuple(dict.fromkeys(entries))


def _flag(env: Mapping[str, str], name: str) -> bool:
    flag = env[name].strip().lower()
    if flag not in ("true", "false", "1", "0", "yes", "no"):
        raise ConfigError(f"{name} must be true or false")
    return flag in ("true", "1", "yes")


def _network_list(raw: str) -> tuple[str, ...]:
    """``VIDCORRECT_TRUSTED_PROXIES``: comma-separated addresses or CIDR networks."""
    networks: list[str] = []
    for item in raw.split(","):
        if not (item := item.strip()):
            continue
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ConfigError(
                "VIDCORRECT_TRUSTED_PROXIES must be a comma-separated list of IP addresses or "
                f"networks (such as 10.0.0.5 or 172.16.0.0/12), got {item!r}"
            ) from None
    return tuple(dict.fromkeys(networks))


def _int_var(env: Mapping[str, str], name: str, minimum: int) -> int:
    raw = env[name].strip()
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float_var(env: Mapping[str, str], name: str) -> float:
    """A positive number of seconds (fractions allowed)."""
    raw = env[name].strip()
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"{name} must be a positive number of seconds, got {raw!r}")
    return value
