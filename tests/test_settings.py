"""Configuration from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.errors import ConfigError
from jobs.settings import Settings


def test_defaults_are_embedded_with_documented_limits() -> None:
    settings = Settings.from_env({})
    assert settings.embedded
    assert settings.data_dir == Path("data")
    assert (settings.max_jobs, settings.job_timeout) == (4, 3600)
    assert settings.max_upload_bytes == 8 * 1024**3
    assert (settings.x264_preset, settings.x264_crf) == ("veryfast", 18)
    assert (settings.max_queued, settings.heartbeat_timeout) == (100, 20)
    assert settings.use_async_tasks is True
    assert settings.task_retention_days == 0
    assert (settings.max_sse_clients, settings.max_concurrent_uploads) == (1000, 16)
    assert (settings.header_timeout, settings.upload_idle_timeout) == (15, 30)
    assert (settings.upload_min_rate, settings.send_timeout) == (1024, 60)


def test_environment_and_overrides() -> None:
    env = {
        "REDIS_URL": "redis://example:6380/2",
        "VIDCORRECT_DATA_DIR": "/srv/videos",
        "VIDCORRECT_MAX_JOBS": "2",
        "VIDCORRECT_JOB_TIMEOUT": "60",
        "VIDCORRECT_MAX_UPLOAD_BYTES": "1000",
        "VIDCORRECT_MAX_QUEUED": "7",
        "USE_ASYNC_TASKS": "false",
    }
    settings = Settings.from_env(env, data_dir=Path("/override"))
    assert not settings.embedded
    assert settings.data_dir == Path("/override")
    assert (settings.max_jobs, settings.job_timeout, settings.max_upload_bytes) == (2, 60, 1000)
    assert settings.max_queued == 7
    assert settings.use_async_tasks is False
    redis = settings.redis_settings()
    assert (redis.host, redis.port, redis.database) == ("example", 6380, 2)


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"VIDCORRECT_MAX_JOBS": "four"}, "VIDCORRECT_MAX_JOBS must be a whole number"),
        ({"VIDCORRECT_MAX_JOBS": "0"}, "VIDCORRECT_MAX_JOBS must be at least 1"),
        ({"VIDCORRECT_X264_PRESET": "warp"}, "VIDCORRECT_X264_PRESET must be one of"),
        ({"VIDCORRECT_X264_CRF": "60"}, "between 0 and 51"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL must start with"),
        ({"VIDCORRECT_LOG_FORMAT": "xml"}, "VIDCORRECT_LOG_FORMAT"),
        ({"VIDCORRECT_AUDIO": "mute"}, "VIDCORRECT_AUDIO must be one of keep, drop"),
        ({"USE_ASYNC_TASKS": "maybe"}, "USE_ASYNC_TASKS must be true or false"),
        ({"VIDCORRECT_HEARTBEAT_TIMEOUT": "1"}, "at least 3"),
        ({"VIDCORRECT_MAX_SSE_CLIENTS": "0"}, "VIDCORRECT_MAX_SSE_CLIENTS must be at least 1"),
        ({"VIDCORRECT_HEADER_TIMEOUT": "0"}, "VIDCORRECT_HEADER_TIMEOUT must be at least 1"),
        ({"VIDCORRECT_UPLOAD_IDLE_TIMEOUT": "x"}, "VIDCORRECT_UPLOAD_IDLE_TIMEOUT must be a"),
        ({"VIDCORRECT_UPLOAD_MIN_RATE": "-1"}, "VIDCORRECT_UPLOAD_MIN_RATE must be at least 0"),
        ({"VIDCORRECT_MAX_CONCURRENT_UPLOADS": "0"}, "UPLOADS must be at least 1"),
        ({"VIDCORRECT_SEND_TIMEOUT": "0"}, "VIDCORRECT_SEND_TIMEOUT must be at least 1"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        Settings.from_env(env)
