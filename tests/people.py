"""What the tests of people, roles, review and the audit trail share: a users file with one
user of each role, their headers, and the ``vidcorrect`` command run as a process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from http.cookies import Morsel, SimpleCookie
from pathlib import Path

import aiohttp

from jobs.users import Role, UsersFile
from server.access import SESSION_COOKIE

#: The API token of the settings that also have a users file (one more admin).
API_TOKEN = "people-api-token-0123456789"
TIMEOUT = 120.0


def make_users(path: Path) -> dict[Role, str]:
    """A users file at ``path`` with ``uma`` (uploader), ``rita`` (reviewer) and ``adam``
    (admin); their tokens by role."""
    users = UsersFile(path)
    return {
        Role.UPLOADER: users.add("uma", Role.UPLOADER),
        Role.REVIEWER: users.add("rita", Role.REVIEWER),
        Role.ADMIN: users.add("adam", Role.ADMIN),
    }


NAMES = {Role.UPLOADER: "uma", Role.REVIEWER: "rita", Role.ADMIN: "adam"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without REDIS_URL and VIDCORRECT_*, plus ``extra``."""
    env = {
        k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("VIDCORRECT_")
    }
    return {**env, **extra}


async def vidcorrect(*args: str, env: dict[str, str], cwd: Path | None = None) -> Ran:
    """Run the real ``vidcorrect`` console script and wait for it."""
    script = Path(sys.executable).parent / "vidcorrect"
    process = await asyncio.create_subprocess_exec(
        str(script),
        *args,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


def session_cookie(resp: aiohttp.ClientResponse) -> Morsel[str]:
    """The session cookie an answer sets."""
    cookies: SimpleCookie = SimpleCookie()
    for header in resp.headers.getall("Set-Cookie"):
        cookies.load(header)
    assert SESSION_COOKIE in cookies, resp.headers
    return cookies[SESSION_COOKIE]
