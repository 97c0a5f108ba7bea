"""The service's image, codedock/service, built offline and run as the Deployment runs it.

``images/service/build.sh`` builds it from this checkout; the container then runs
with the Deployment's security context (uid 10001, a read-only root file system,
no capabilities, no new privileges) and no network but its loopback, where the
service must answer.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
import yaml

from codedock_magic import DockerEngine
from codedock_magic.core.version import __version__

from .servicehelp import wait_for

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "codedock/service:latest"


def deployment_context() -> dict[str, object]:
    deployment = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "codedock/service"
    return {**pod["securityContext"], **container["securityContext"]}


def writable_mounts() -> list[str]:
    deployment = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return [mount["mountPath"] for mount in container["volumeMounts"] if not mount.get("readOnly")]


@pytest.fixture(scope="module")
def image(engine: DockerEngine) -> str:
    built = subprocess.run(
        ["bash", str(ROOT / "images" / "service" / "build.sh")],
        capture_output=True,
        text=True,
        timeout=1500,
        env={**os.environ, "CODEDOCK_SERVICE_IMAGE": IMAGE},
        check=False,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return IMAGE


@pytest.fixture(scope="module")
def service(image: str) -> Iterator[docker.models.containers.Container]:
    context = deployment_context()
    client = docker.from_env()
    container = client.containers.run(
        image,
        # As the Deployment starts it, on the container's own loopback.
        ["codedock", "serve", "--ip=127.0.0.1", "--port=8765"],
        name=f"codedock-service-test-{uuid.uuid4().hex[:8]}",
        detach=True,
        network_mode="none",
        user=f"{context['runAsUser']}:{context['runAsGroup']}",
        read_only=bool(context["readOnlyRootFilesystem"]),
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        # Each volume the Deployment mounts writable, so the service can write
        # exactly where it will in the cluster (its gradebook included).
        tmpfs={path: f"size=16m,uid={context['runAsUser']}" for path in writable_mounts()},
        mem_limit="512m",
    )
    try:
        yield container
    finally:
        container.remove(force=True)


def inside(container: docker.models.containers.Container, code: str) -> str:
    code_run = container.exec_run(["python3", "-c", code])
    assert code_run.exit_code == 0, code_run.output.decode(errors="replace")
    return str(code_run.output.decode())


def test_the_image_is_run_as_the_deployment_says(image: str, engine: DockerEngine) -> None:
    config = engine.api.inspect_image(image)["Config"]
    context = deployment_context()
    assert config["User"] == f"{context['runAsUser']}:{context['runAsGroup']}"
    assert config["Labels"]["io.codedock.version"] == __version__
    assert any(part.startswith("PATH=/opt/codedock/bin:") for part in config["Env"])


def test_the_service_answers_on_its_loopback_with_no_network(
    service: docker.models.containers.Container,
) -> None:
    probe = (
        "import json, urllib.request\n"
        "try:\n"
        "    answer = urllib.request.urlopen('http://127.0.0.1:8765/api/health', timeout=2)\n"
        "    print(answer.read().decode())\n"
        "except OSError as e:\n"
        "    print(json.dumps({'down': str(e)}))\n"
    )

    def answers() -> bool:
        service.reload()
        assert service.status == "running", service.logs().decode(errors="replace")[-3000:]
        return '"ok"' in inside(service, probe)

    assert wait_for(answers, 60, step=0.5), service.logs().decode(errors="replace")[-3000:]
    health = json.loads(inside(service, probe))
    assert health["ok"] is True and health.get("version", __version__) == __version__
    facts = inside(
        service,
        "import os, socket\n"
        "print(os.getuid(), os.getgid())\n"
        "print(sorted(name for _, name in socket.if_nameindex()))\n"
        "try:\n"
        "    open('/opt/codedock/written', 'w')\n"
        "except OSError as e:\n"
        "    print(type(e).__name__)\n",
    ).split("\n")
    assert facts[:3] == ["10001 10001", "['lo']", "OSError"], facts
