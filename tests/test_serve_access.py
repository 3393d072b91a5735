"""``vidcorrect serve`` without a token: loopback only, unless --allow-anonymous."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from jobs.settings import Settings
from server.access import is_loopback
from server.commands import anonymous_refusal
from vidcorrect.cli import build_parser


def _serve(*args: str, env: dict[str, str], data_dir: Path) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "vidcorrect"
    return subprocess.run(
        [str(script), "serve", "--data-dir", str(data_dir), "--port", "9", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "vidcorrect.example"])
def test_serve_refuses_an_open_api_on_a_reachable_address(tmp_path: Path, host: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "VIDCORRECT_API_TOKEN"}
    done = _serve("--host", host, env=env, data_dir=tmp_path / "data")
    assert done.returncode == 2, done
    assert "VIDCORRECT_API_TOKEN" in done.stderr
    assert "--allow-anonymous" in done.stderr
    assert host in done.stderr
    assert not (tmp_path / "data").exists()  # refused before anything started


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost"])
def test_loopback_addresses_are_loopback(host: str) -> None:
    assert is_loopback(host)
    assert anonymous_refusal(Settings(), host, allow_anonymous=False) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "host.example", ""])
def test_reachable_addresses_need_a_token_or_the_flag(host: str) -> None:
    assert not is_loopback(host)
    refusal = anonymous_refusal(Settings(), host, allow_anonymous=False)
    assert refusal is not None
    assert "VIDCORRECT_API_TOKEN" in refusal
    assert anonymous_refusal(Settings(), host, allow_anonymous=True) is None
    with_token = replace(Settings(), api_token="t" * 32)
    assert anonymous_refusal(with_token, host, allow_anonymous=False) is None


def test_allow_anonymous_is_a_serve_flag() -> None:
    args = build_parser().parse_args(["serve", "--host", "0.0.0.0", "--allow-anonymous"])
    assert args.allow_anonymous is True
    assert build_parser().parse_args(["serve"]).allow_anonymous is False
