"""The files an operator runs Tollgate with on a server, checked without a Docker engine.

docker-compose.yml is validated against the Compose specification and read for the facts a
deployment depends on (start order, health checks, published port, secrets only from the
environment, variables the processes really read). deploy/docker/Dockerfile must pass hadolint
and keep its runtime stage non-root with a health check. The tools are required: a missing one
fails the test, it is never skipped.
"""

import fnmatch
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from dockerfile_parse import DockerfileParser
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
ROUTES_FILE = ROOT / "deploy" / "docker" / "routes.toml"
DOCKERIGNORE = ROOT / ".dockerignore"

# The long-running processes: compose service -> (workspace package, port serving /healthz).
SERVERS = {
    "keys": ("tollgate-keys", 8101),
    "metering": ("tollgate-metering", 8103),
    "billing": ("tollgate-billing", 8102),
    "gateway": ("tollgate-gateway", 8080),
    "demo-upstream": ("tollgate-local", 8190),
}
# The one-shot migrations: compose service -> workspace package. Each "<service>-migrate" runs
# before its server "<service>", from the same image.
ONE_SHOT = {
    "keys-migrate": "tollgate-keys",
    "metering-migrate": "tollgate-metering",
    "billing-migrate": "tollgate-billing",
}
# Inside a container a server must listen beyond loopback, or nothing can reach it.
CONTAINER_HOST = "0.0.0.0"  # noqa: S104

# What `uv run tollgate-dev keygen > .env` prints: all that `docker compose up` may require.
KEYGEN_VARIABLES = {
    "TOLLGATE_IDENTITY_PUBLIC_KEY",
    "TOLLGATE_GATEWAY_IDENTITY_PRIVATE_KEY",
    "TOLLGATE_KEYS_TOKEN_PRIVATE_KEY",
    "TOLLGATE_GATEWAY_USER_TOKEN_PUBLIC_KEY",
    "TOLLGATE_BILLING_IDENTITY_PRIVATE_KEY",
    "TOLLGATE_METERING_BILLING_IDENTITY_PUBLIC_KEY",
    "POSTGRES_PASSWORD",
}
# Optional settings passed through from the shell or .env (null value in compose) when set.
OPTIONAL_PASSTHROUGH = {
    "TOLLGATE_KEYS_SUPERADMIN_EMAIL",
    "TOLLGATE_KEYS_SUPERADMIN_PASSWORD",
    "TOLLGATE_BILLING_STRIPE_SECRET_KEY",
    "TOLLGATE_BILLING_STRIPE_WEBHOOK_SECRET",
}

REQUIRED_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z][A-Z0-9_]*):\?(?P<message>[^}]+)\}")
DEFAULT_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z][A-Z0-9_]*):-(?P<default>[^}]*)\}")
SECRET_NAME = re.compile(r"(PRIVATE_KEY|PASSWORD|SECRET|TOKEN)$")


def tool(name: str) -> str:
    """A console script installed beside this interpreter (the dev group); missing = failure."""
    path = Path(sys.executable).parent / name
    assert path.is_file(), f"{name} is not installed next to {sys.executable}: run `uv sync`"
    return str(path)


def resolve(
    value: str, placeholder: str = "from-the-environment", env: dict[str, str] | None = None
) -> str:
    """Interpolate as compose would: a required variable takes its value from env when given,
    else the placeholder."""
    value = REQUIRED_INTERPOLATION.sub(
        lambda match: (env or {}).get(match["name"], placeholder), value
    )
    return DEFAULT_INTERPOLATION.sub(lambda match: match["default"], value)


def environment_of(service: dict[str, Any]) -> dict[str, str | None]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        pairs = [item.partition("=") for item in environment]
        return {name: (value if sep else None) for name, sep, value in pairs}
    return {name: None if value is None else str(value) for name, value in environment.items()}


def workspace_members() -> dict[str, Path]:
    """Workspace package name -> its directory, from the root pyproject.toml."""
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    members: dict[str, Path] = {}
    for pattern in root["tool"]["uv"]["workspace"]["members"]:
        for directory in sorted(ROOT.glob(pattern)):
            manifest = directory / "pyproject.toml"
            if manifest.is_file():
                members[tomllib.loads(manifest.read_text())["project"]["name"]] = directory
    return members


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


# --- docker-compose.yml -------------------------------------------------------------------


def test_compose_file_follows_the_compose_specification(tmp_path: Path) -> None:
    command = [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec"]
    result = subprocess.run(
        [*command, str(COMPOSE_FILE)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr

    # The validator really validates: the same file with an unknown start condition is refused.
    broken = tmp_path / "docker-compose.yml"
    text = COMPOSE_FILE.read_text()
    assert "service_completed_successfully" in text
    broken.write_text(text.replace("service_completed_successfully", "service_finished"))
    refused = subprocess.run(
        [*command, str(broken)], capture_output=True, text=True, check=False, timeout=60
    )
    assert refused.returncode != 0
    assert "service_finished" in refused.stdout + refused.stderr


def test_every_server_process_runs_in_compose_with_its_health_check(
    services: dict[str, dict[str, Any]],
) -> None:
    members = workspace_members()
    for name, (package, port) in SERVERS.items():
        service = services.get(name)
        assert service is not None, f"compose has no service {name}"
        assert package in members, f"{package} is not a workspace member"
        build = service["build"]
        assert (ROOT / build["context"]).resolve() == ROOT
        assert (ROOT / build["dockerfile"]).resolve() == DOCKERFILE
        # PORT is baked into the image's ENV, which its HEALTHCHECK probes: it must be the
        # port the command listens on.
        assert build["args"] == {"PACKAGE": package, "PORT": str(port)}, name
        command = service["command"]
        assert command[command.index("--port") + 1] == str(port), name
        assert command[command.index("--host") + 1] == CONTAINER_HOST, name
        assert not service.get("healthcheck", {}).get("disable", False), name
        assert service.get("restart") == "unless-stopped", name

    # Nothing else is built from the Dockerfile without being known here.
    built = {name for name, service in services.items() if "build" in service}
    assert built == set(SERVERS) | set(ONE_SHOT)


def test_every_container_command_exists_in_its_package(
    services: dict[str, dict[str, Any]],
) -> None:
    members = workspace_members()
    for name, service in services.items():
        if "build" not in service:
            continue
        package_directory = members[service["build"]["args"]["PACKAGE"]]
        project = tomllib.loads((package_directory / "pyproject.toml").read_text())["project"]
        command = service["command"]
        if command[:2] == ["python", "-m"]:
            module = Path(*command[2].split("."))
            source = package_directory / "src"
            assert (source / module).with_suffix(".py").is_file() or (
                source / module / "__main__.py"
            ).is_file(), f"{name}: {command[2]} is not in {package_directory}"
        else:
            assert command[0] in project.get("scripts", {}), (
                f"{name}: {command[0]} is not a script of {project['name']}"
            )


def test_gateway_is_the_only_published_port_and_it_is_8080(
    services: dict[str, dict[str, Any]],
) -> None:
    published = {name: service["ports"] for name, service in services.items() if "ports" in service}
    assert set(published) == {"gateway"}, "only the gateway faces clients"
    assert [resolve(str(port)) for port in published["gateway"]] == ["8080:8080"]


def test_start_order_waits_for_health_and_for_the_migration(
    services: dict[str, dict[str, Any]],
) -> None:
    def conditions(name: str) -> dict[str, str]:
        return {
            dependency: spec["condition"]
            for dependency, spec in services[name]["depends_on"].items()
        }

    for migration, package in ONE_SHOT.items():
        server = migration.removesuffix("-migrate")
        assert SERVERS[server][0] == package, migration
        migrate = services[migration]
        assert migrate["command"] == [package, "migrate"]
        assert migrate["restart"] == "no", "a finished migration must not be started again"
        assert migrate["healthcheck"] == {"disable": True}
        assert migrate["image"] == services[server]["image"]
        assert migrate["build"] == services[server]["build"]
        assert migrate["build"]["args"]["PACKAGE"] == package
        assert conditions(migration) == {"postgres": "service_healthy"}

        assert conditions(server) == {
            migration: "service_completed_successfully",
            "nats": "service_healthy",
        }
    gateway = conditions("gateway")
    assert gateway["keys"] == "service_healthy"
    assert gateway["nats"] == "service_healthy"


def test_postgres_and_nats_keep_data_and_report_health(compose: dict[str, Any]) -> None:
    services = compose["services"]
    volumes = set(compose["volumes"])

    postgres = services["postgres"]
    assert postgres["image"] == "postgres:16-alpine"
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert "postgres-data:/var/lib/postgresql/data" in postgres["volumes"]
    assert postgres["environment"]["POSTGRES_USER"] == "tollgate"
    assert postgres["environment"]["POSTGRES_DB"] == "tollgate"

    nats = services["nats"]
    assert nats["image"] == "nats:2.10-alpine"
    command = nats["command"]
    assert "-js" in command
    assert command[command.index("-sd") + 1] == "/data"
    assert command[command.index("-m") + 1] == "8222"
    assert "nats-data:/data" in nats["volumes"]
    probe = nats["healthcheck"]["test"]
    assert "wget" in probe
    assert "http://127.0.0.1:8222/healthz" in probe

    assert {"postgres-data", "nats-data"} <= volumes
    for service in services.values():
        for mount in service.get("volumes", []):
            if isinstance(mount, str) and not mount.startswith((".", "/")):
                assert mount.split(":")[0] in volumes, f"undeclared volume in {mount}"


def test_no_secret_is_written_in_the_compose_file(services: dict[str, dict[str, Any]]) -> None:
    required_secrets = 0
    for name, service in services.items():
        for variable, value in environment_of(service).items():
            if not SECRET_NAME.search(variable):
                continue
            if value is None:
                assert variable in OPTIONAL_PASSTHROUGH, f"{name}: {variable} must be required"
                continue
            match = REQUIRED_INTERPOLATION.fullmatch(value)
            assert match, f"{name}: {variable} must be a ${{VAR:?message}} interpolation"
            assert "keygen" in match["message"], "the message tells how to make the secret"
            required_secrets += 1
        database_url = environment_of(service).get("TOLLGATE_DATABASE_URL")
        if database_url is not None:
            parts = urlsplit(resolve(database_url, placeholder="PASSWORD"))
            assert parts.password == "PASSWORD", f"{name}: database password must be interpolated"
    assert required_secrets >= 3  # keys token key, gateway identity key, user token key

    # Everything compose insists on is printed by the keygen command, so `keygen > .env` suffices.
    text = COMPOSE_FILE.read_text()
    required = {match["name"] for match in REQUIRED_INTERPOLATION.finditer(text)}
    assert required == KEYGEN_VARIABLES
    assert ".env" in DOCKERIGNORE.read_text().split()


def test_processes_get_the_settings_they_read(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tollgate_billing.config import BillingSettings
    from tollgate_gateway.config import GatewaySettings
    from tollgate_keys.config import KeysSettings
    from tollgate_local.secrets import StackSecrets
    from tollgate_metering.config import MeteringSettings
    from tollgate_shared.identity import service_signer, service_verifier
    from tollgate_shared.settings import DatabaseSettings

    # What `tollgate-dev keygen > .env` writes: the settings must accept it in production.
    dotenv = dict(
        line.split("=", 1) for line in StackSecrets.generate().as_env_file().splitlines() if line
    )
    settings_classes: dict[str, type[BaseSettings]] = {
        "keys-migrate": DatabaseSettings,
        "keys": KeysSettings,
        "metering-migrate": DatabaseSettings,
        "metering": MeteringSettings,
        "billing-migrate": DatabaseSettings,
        "billing": BillingSettings,
        "gateway": GatewaySettings,
    }
    # Every process built from the Dockerfile is checked here.
    assert set(settings_classes) == (set(SERVERS) | set(ONE_SHOT)) - {"demo-upstream"}
    loaded: dict[str, BaseSettings] = {}
    for name, settings_class in settings_classes.items():
        environment = environment_of(services[name])
        if name not in ONE_SHOT:
            assert environment["TOLLGATE_ENV"] == "production"
            assert environment["TOLLGATE_NATS_URL"] == "nats://nats:4222"
        # compose may not pass a variable the process would silently ignore (a typo).
        accepted = accepted_variables(settings_class)
        assert set(environment) <= accepted, f"{name}: unknown {set(environment) - accepted}"

        for variable in [v for v in os.environ if v.startswith("TOLLGATE_")]:
            monkeypatch.delenv(variable)
        for variable, value in environment.items():
            if value is not None:
                monkeypatch.setenv(variable, resolve(value, env=dotenv))
        settings = settings_class()  # refuses missing, malformed or development secrets
        assert getattr(settings, "env", "production") == "production"
        loaded[name] = settings

    # The services behind the gateway share one database (a schema each) and verify identities.
    for name in (migration.removesuffix("-migrate") for migration in ONE_SHOT):
        service = environment_of(services[name])
        database = urlsplit(resolve(service["TOLLGATE_DATABASE_URL"] or ""))
        assert (database.scheme, database.hostname, database.port) == (
            "postgresql",
            "postgres",
            5432,
        ), name
        assert (database.username, database.path) == ("tollgate", "/tollgate"), name
        assert "TOLLGATE_IDENTITY_PUBLIC_KEY" in service, name
    assert environment_of(services["demo-upstream"]).keys() == {"TOLLGATE_IDENTITY_PUBLIC_KEY"}

    # The gateway reaches every built-in service by its compose name, on the port it serves.
    gateway_settings = loaded["gateway"]
    assert isinstance(gateway_settings, GatewaySettings)
    service_urls = gateway_settings.service_urls()
    assert set(service_urls) == {"keys", "metering", "billing"}
    for service_name, url in service_urls.items():
        assert url == f"http://{service_name}:{SERVERS[service_name][1]}", service_name
    gateway = environment_of(services["gateway"])
    assert gateway["TOLLGATE_GATEWAY_KEYS_URL"] == "http://keys:8101"
    assert gateway["TOLLGATE_GATEWAY_METERING_URL"] == "http://metering:8103"
    assert gateway["TOLLGATE_GATEWAY_BILLING_URL"] == "http://billing:8102"
    # Billing reads usage from metering with its own key, which metering verifies (ADR 0018).
    billing_settings, metering_settings = loaded["billing"], loaded["metering"]
    assert isinstance(billing_settings, BillingSettings)
    assert isinstance(metering_settings, MeteringSettings)
    assert billing_settings.metering_url == "http://metering:8103"
    signed = service_signer(
        billing_settings.identity_private_key, caller="billing", callee="metering"
    ).sign({"ptype": "service", "sub": "billing"})
    verifier = service_verifier(
        metering_settings.billing_identity_public_key, caller="billing", callee="metering"
    )
    assert verifier.verify(signed)["sub"] == "billing"
    routes_mount = next(
        mount
        for mount in services["gateway"]["volumes"]
        if isinstance(mount, dict) and mount["target"] == gateway["TOLLGATE_GATEWAY_ROUTES_FILE"]
    )
    assert (ROOT / routes_mount["source"]).resolve() == ROUTES_FILE
    assert routes_mount["read_only"] is True

    # Usage events waiting for JetStream sit on a named volume: a new container finds them.
    spool = PurePosixPath(gateway["TOLLGATE_GATEWAY_USAGE_SPOOL_DIR"] or "")
    named_volumes = [
        mount.split(":")
        for mount in services["gateway"]["volumes"]
        if isinstance(mount, str) and not mount.startswith((".", "/"))
    ]
    assert any(spool.is_relative_to(target) for _volume, target, *_ in named_volumes), spool


def accepted_variables(settings_class: type[BaseSettings]) -> set[str]:
    prefix = str(settings_class.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for field_name, field in settings_class.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        if isinstance(alias, str):
            names.add(alias)
        elif choices:
            names.update(choice for choice in choices if isinstance(choice, str))
        else:
            names.add(f"{prefix}{field_name}".upper())
    return {name for name in names if name.startswith("TOLLGATE_")}


# --- deploy/docker/routes.toml --------------------------------------------------------------


def test_routes_file_sends_the_demo_prefix_to_the_demo_upstream(
    services: dict[str, dict[str, Any]],
) -> None:
    routes = tomllib.loads(ROUTES_FILE.read_text())["routes"]
    assert routes == [
        {
            "name": "demo",
            "prefix": "/api/demo",
            "upstream": "http://demo-upstream:8190",
            "meter": "api_requests",
            "strip_prefix": True,
        }
    ]
    upstream = urlsplit(routes[0]["upstream"])
    assert upstream.hostname in services
    assert upstream.port == SERVERS[upstream.hostname][1]

    # The gateway's own loader accepts the file as it is mounted.
    from tollgate_gateway.routing.table import load_operator_routes

    [route] = load_operator_routes(ROUTES_FILE)
    assert (route.name, route.prefix, route.meter, route.strip_prefix) == (
        "demo",
        "/api/demo",
        "api_requests",
        True,
    )


# --- deploy/docker/Dockerfile ---------------------------------------------------------------


def stages(parser: DockerfileParser) -> list[list[dict[str, Any]]]:
    """Instructions grouped by build stage, each list starting with its FROM."""
    grouped: list[list[dict[str, Any]]] = []
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            grouped.append([])
        if grouped and instruction["instruction"] != "COMMENT":
            grouped[-1].append(instruction)
    return grouped


def values(stage: list[dict[str, Any]], instruction: str) -> list[str]:
    return [item["value"] for item in stage if item["instruction"] == instruction]


def test_dockerfile_passes_hadolint(tmp_path: Path) -> None:
    hadolint = tool("hadolint")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""

    # hadolint really lints: an untagged base image run as root is reported.
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python\nRUN pip install fastapi\n")
    reported = subprocess.run(
        [hadolint, "--no-color", str(careless)], capture_output=True, text=True, check=False
    )
    assert reported.returncode != 0
    assert "DL3006" in reported.stdout


def test_dockerfile_builds_from_the_lock_and_runs_unprivileged() -> None:
    parser = DockerfileParser(str(DOCKERFILE), cache_content=True)
    all_stages = stages(parser)
    assert len(all_stages) >= 2, "multi-stage: build tools stay out of the runtime image"
    assert set(parser.parent_images) == {"python:3.11-slim"}

    build = "\n".join(
        item["value"] for stage in all_stages[:-1] for item in stage if item["instruction"]
    )
    uv_image = re.search(r"--from=ghcr\.io/astral-sh/uv:(\S+)", build)
    assert uv_image, "uv comes from its official image"
    assert re.fullmatch(r"\d+\.\d+\.\d+", uv_image[1]), "the uv image tag is pinned"
    sync = re.findall(r"uv sync ([^\n]*)", build)
    assert sync, "the build stage installs with uv sync"
    for arguments in sync:
        for flag in ("--frozen", "--no-dev", '--package "${PACKAGE}"'):
            assert flag in arguments, f"uv sync {arguments} lacks {flag}"

    final = all_stages[-1]
    users = values(final, "USER")
    assert users, "the runtime stage sets USER"
    user, _, group = users[-1].partition(":")
    assert user.isdigit() and int(user) > 0, "a fixed, numeric, non-root uid"
    assert user not in {"root", "0"} and group not in {"root", "0"}

    [healthcheck] = values(final, "HEALTHCHECK")
    assert "urllib.request" in healthcheck
    assert "http://127.0.0.1:" in healthcheck and "/healthz" in healthcheck
    assert "os.environ['PORT']" in healthcheck
    assert values(final, "EXPOSE") == ["${PORT}"]

    environment = " ".join(values(final, "ENV"))
    for setting in (
        "PYTHONUNBUFFERED=1",
        "TOLLGATE_LOG_FORMAT=json",
        'PATH="/app/.venv/bin:${PATH}"',
        'PORT="${PORT}"',
    ):
        assert setting in environment

    # Only the virtual environment is taken from the build stage; no source tree, no uv.
    assert values(final, "COPY") == ["--from=build /app/.venv /app/.venv"]
    assert values(final, "ADD") == []
    [command] = values(final, "CMD")
    assert command.startswith("["), "exec form: the process gets the stop signal"


def test_dockerignore_keeps_state_and_caches_out_but_not_the_workspace() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for excluded in (".git", ".venv", ".tollgate", ".env", "**/__pycache__", ".pytest_cache"):
        assert excluded in patterns, f".dockerignore lacks {excluded}"

    needed = ["pyproject.toml", "uv.lock"]
    for directory in workspace_members().values():
        relative = directory.relative_to(ROOT)
        needed += [str(relative / "pyproject.toml"), str(relative / "src" / "module.py")]
    for path in needed:
        prefixes = [
            str(Path(*Path(path).parts[:depth])) for depth in range(1, len(Path(path).parts) + 1)
        ]
        for pattern in patterns:
            bare = pattern.removeprefix("**/")
            hits = [
                p
                for p in prefixes
                if fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(Path(p).name, bare)
            ]
            assert not hits, f"{pattern!r} in .dockerignore would drop {path}"
