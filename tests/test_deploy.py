"""The container files (Dockerfile, compose.yaml) against the code: every CITEDESK_* variable they set is a real
setting, and every healthcheck and port matches the app's routes and the port ``citedesk serve`` listens on.

Docker is not run here (no daemon on these machines): the files are parsed, so they cannot drift from the code.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from fastapi.testclient import TestClient
from pydantic import BaseModel, SecretStr
from typer.main import get_command

from citedesk.config.settings import Settings
from citedesk.serving.api.app import create_app
from citedesk.serving.api.webhooks_app import create_webhooks_app
from citedesk.serving.cli import app as cli_app

ROOT = Path(__file__).resolve().parents[1]
CLI_ENVVARS = {"CITEDESK_CONFIG"}  # read by config/settings.py itself (the TOML file), not a field
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?([-?]))?([^}]*)\}")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in [n for n in os.environ if n.startswith("CITEDESK_")]:
        monkeypatch.delenv(name)


def interpolate(value: str) -> str:
    """Compose's ``${VAR:-default}`` → default, ``${VAR:?error}`` / ``${VAR}`` → a stand-in value."""
    return INTERPOLATION.sub(lambda m: m.group(3) if m.group(2) == "-" else f"x-{m.group(1).lower()}", str(value))


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))


def dockerfile() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def dockerfile_runtime_env() -> dict[str, str]:
    """ENV of the last stage (the image that runs)."""
    env: dict[str, str] = {}
    for word, rest in dockerfile():
        if word == "FROM":
            env = {}
        elif word == "ENV":
            for pair in shlex.split(rest):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def cli_envvars() -> set[str]:
    """Environment variables the ``citedesk`` commands read as options (e.g. ``CITEDESK_ANSWER_API_KEY``)."""
    names: set[str] = set()
    for command in get_command(cli_app).commands.values():
        for param in command.params:
            envvar = getattr(param, "envvar", None)
            names.update([envvar] if isinstance(envvar, str) else envvar or [])
    return names


def setting_path(name: str) -> list[str]:
    """``CITEDESK_QDRANT__API_KEY`` → ``["qdrant", "api_key"]``, each step checked to be a declared field.

    pydantic-settings only looks up declared fields, so an unknown top-level variable would be silently
    ignored by ``Settings()``: walk the model instead.
    """
    path = name.removeprefix("CITEDESK_").lower().split("__")
    model: type[BaseModel] = Settings
    for i, part in enumerate(path):
        assert part in model.model_fields, f"{name}: {'.'.join(path[:i + 1])} is not a setting"
        annotation = model.model_fields[part].annotation
        if i < len(path) - 1:
            assert isinstance(annotation, type) and issubclass(annotation, BaseModel), f"{name}: {part} is a leaf"
            model = annotation
    return path


def value_at(settings: Settings, path: list[str]):
    value = settings
    for part in path:
        value = getattr(value, part)
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return getattr(value, "value", value)  # enums


def check_env(env: dict[str, str], monkeypatch, where: str) -> Settings:
    """Every CITEDESK_* name is a setting (or a CLI option's envvar) and arrives with its value."""
    cli = cli_envvars()
    values = {k: interpolate(v) for k, v in env.items() if k.startswith("CITEDESK_")}
    assert values, f"{where} sets no CITEDESK_* variable"
    for name, value in values.items():
        if name in CLI_ENVVARS or name in cli:
            continue
        path = setting_path(name)
        monkeypatch.setenv(name, value)
    settings = Settings()
    for name, value in values.items():
        if name in CLI_ENVVARS or name in cli:
            continue
        got = value_at(settings, setting_path(name))
        if value == "":  # ${VAR:-}: empty means unset
            assert got is None, f"{where}: {name}= should leave the setting unset, got {got!r}"
        elif isinstance(got, bool):
            assert got == (value.lower() in ("1", "true", "yes", "on")), f"{where}: {name}"
        else:
            assert str(got) == value, f"{where}: {name}={value!r} loaded as {got!r}"
    for name in values:
        monkeypatch.delenv(name, raising=False)
    return settings


def openapi_get_paths(app) -> set[str]:
    return {p for p, ops in app.openapi()["paths"].items() if "get" in ops}


@pytest.fixture(scope="module")
def apps(tmp_path_factory) -> dict:
    """The apps of the two commands the image runs: ``serve`` (create_app) and ``webhooks``."""
    base = tmp_path_factory.mktemp("deploy")
    s = Settings(data_dir=base, embedding={"model": "hash:32"})
    hooks = Settings(data_dir=base / "hooks", intercom={"token": "t", "client_secret": "s", "admin_id": "1"})
    return {"serve": create_app(s, warm_up=False),
            "webhooks": create_webhooks_app(hooks, answer_url="http://api:8000")}


@pytest.fixture(scope="module")
def app_routes(apps) -> dict[str, set[str]]:
    return {name: openapi_get_paths(app) for name, app in apps.items()}


def test_healthcheck_paths_answer_200(apps) -> None:
    """The path the healthchecks poll really answers 200 on a healthy app (not only exists)."""
    for name, app in apps.items():
        with TestClient(app) as client:
            assert client.get("/healthz").status_code == 200, name


def healthcheck_url(test) -> str:
    text = " ".join(test) if isinstance(test, list) else test
    urls = re.findall(r"https?://[^'\"\s]+", text)
    assert len(urls) == 1, f"one URL per healthcheck: {text}"
    return urls[0]


def option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def test_compose_variables_are_settings(monkeypatch) -> None:
    services = compose()["services"]
    checked = 0
    for name, svc in services.items():
        env = svc.get("environment") or {}
        if any(k.startswith("CITEDESK_") for k in env):
            check_env(env, monkeypatch, f"compose service {name}")
            checked += 1
    assert checked >= 2  # api and webhooks


def test_setting_check_catches_unknown_names(monkeypatch) -> None:
    """The check above fails on a misspelt or invented name (which pydantic-settings alone would ignore)."""
    monkeypatch.setenv("CITEDESK_QDRANT_URL", "http://qdrant:6333")  # one underscore: not qdrant.url
    assert Settings().qdrant.url is None  # silently dropped by pydantic-settings
    monkeypatch.delenv("CITEDESK_QDRANT_URL")
    for bad in ("CITEDESK_QDRANT_URL", "CITEDESK_SERVER__HOSTNAME", "CITEDESK_WORKSPACE__ID"):
        with pytest.raises(AssertionError):
            check_env({bad: "x"}, monkeypatch, "probe")


def test_dockerfile_variables_are_settings(monkeypatch) -> None:
    env = dockerfile_runtime_env()
    assert env["HF_HUB_OFFLINE"] == "1"
    s = check_env(env, monkeypatch, "Dockerfile")
    assert s.server.host == "0.0.0.0"


def test_dockerfile_shape(app_routes, monkeypatch) -> None:
    """Multi-stage, non-root, CPU torch by default, a CUDA base by build argument; runs ``citedesk serve`` on the
    port it exposes, with a healthcheck on a real route."""
    steps = dockerfile()
    words = [w for w, _ in steps]
    assert words.count("FROM") >= 2
    args = {rest.split("=", 1)[0]: rest.split("=", 1)[1] if "=" in rest else None
            for w, rest in steps if w == "ARG"}
    assert args["BASE_IMAGE"].startswith("python:") and "TORCH_INDEX_URL" in args and "HF_MODELS" in args
    assert args["TORCH_INDEX_URL"].endswith("/cpu") and args["TORCH_SPEC"] == "torch==2.13.0"
    user = [rest for w, rest in steps if w == "USER"]
    assert user and user[-1] not in ("root", "0")
    entry = yaml.safe_load([rest for w, rest in steps if w == "ENTRYPOINT"][-1])
    cmd = yaml.safe_load([rest for w, rest in steps if w == "CMD"][-1])
    assert entry == ["citedesk"] and cmd[0] == "serve"
    assert "citedesk = " in (ROOT / "pyproject.toml").read_text()  # the console script the entry point runs
    for k, v in dockerfile_runtime_env().items():
        if k.startswith("CITEDESK_"):
            monkeypatch.setenv(k, v)
    port = Settings().server.port
    assert [rest for w, rest in steps if w == "EXPOSE"] == [str(port)]
    url = urlsplit(healthcheck_url([rest for w, rest in steps if w == "HEALTHCHECK"][-1]))
    assert url.port == port and url.path in app_routes["serve"]
    ignore = (ROOT / ".dockerignore").read_text().split()
    assert ignore[ignore.index("*") if "*" in ignore else 0] == "*"  # nothing but the listed paths is sent
    for w, rest in steps:
        if w == "COPY" and "--from" not in rest:
            for src in shlex.split(rest)[:-1]:
                assert (ROOT / src).exists() and f"!{src}" in " ".join(ignore), src


def test_compose_healthchecks_and_ports_match_the_app(app_routes, monkeypatch) -> None:
    services = compose()["services"]
    ours = {n: s for n, s in services.items() if s.get("image", "").startswith("citedesk")}
    assert {"api", "webhooks"} <= set(ours)
    assert ours["api"]["deploy"]["replicas"] >= 2
    for name, svc in ours.items():
        command = svc["command"]
        assert command[0] in app_routes, f"{name}: unknown command {command[0]}"
        env = {**dockerfile_runtime_env(), **svc["environment"]}
        settings = check_env(env, monkeypatch, f"compose service {name}")
        port = int(option(command, "--port") or settings.server.port)
        assert settings.server.host == "0.0.0.0"
        url = urlsplit(healthcheck_url(svc["healthcheck"]["test"]))
        assert url.hostname in ("127.0.0.1", "localhost") and url.port == port, name
        assert url.path in app_routes[command[0]], f"{name}: no GET {url.path}"
        for mapping in svc.get("ports", []):
            assert int(str(mapping).rsplit(":", 1)[-1]) == port, f"{name}: publishes {mapping}, listens on {port}"
        if settings.database.url:
            assert settings.database.url.startswith("postgresql+psycopg://")
            assert "postgres" in svc["depends_on"]


def test_compose_urls_point_at_services(monkeypatch) -> None:
    """qdrant.url, llm.base_url, the webhook receiver's --answer-url and database.url name services that listen
    on those ports."""
    services = compose()["services"]
    api = services["api"]
    settings = check_env(api["environment"], monkeypatch, "api")
    names = {n: {n, *((s.get("networks") or {}).get("default") or {}).get("aliases", [])}
             for n, s in services.items()}

    def listening(host: str, port: int) -> list[str]:
        found = []
        for n, svc in services.items():
            if host not in names[n]:
                continue
            command = [interpolate(c) for c in svc.get("command") or []]
            hc = svc.get("healthcheck", {}).get("test", [])
            hc_text = " ".join(hc) if isinstance(hc, list) else hc
            if option(command, "--port") == str(port) or f"/{port}" in hc_text or f":{port}/" in hc_text:
                found.append(n)
        return found

    q = urlsplit(settings.qdrant.url)
    assert listening(q.hostname, q.port) == ["qdrant"]
    llm = urlsplit(settings.llm.base_url)
    assert set(listening(llm.hostname, llm.port)) == {"llm", "llm-cpu"}  # GPU (vLLM) and CPU (llama.cpp) profiles
    assert "--enable-prefix-caching" in services["llm"]["command"]
    assert services["llm"]["profiles"] != services["llm-cpu"]["profiles"]
    assert listening(urlsplit(option(services["webhooks"]["command"], "--answer-url")).hostname, 8000) == ["api"]
    db = urlsplit(settings.database.url)
    assert db.hostname == "postgres" and db.port == 5432 and "postgres" in services
    assert services["qdrant"]["environment"]["QDRANT__SERVICE__API_KEY"] == api["environment"][
        "CITEDESK_QDRANT__API_KEY"]
