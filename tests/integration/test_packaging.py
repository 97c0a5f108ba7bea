"""The doctor and the image build, as an administrator meets them: the real command, the
real engine, a real service."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from codedock_magic import DockerEngine, Limits, SandboxSpec, __version__, run
from codedock_magic.core.limits import ContainerLimits
from codedock_magic.core.profile import Profile
from codedock_magic.doctor import all_hold, diagnose
from codedock_magic.engines.docker_images import STANDARD, ImageBuilder

from .servicehelp import Service

PROMISES = 12


def codedock(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codedock_magic", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
        check=False,
    )


def rows(output: str) -> dict[str, str]:
    """The doctor's table: each promise with ``ok`` or ``FAIL``."""
    found = {}
    for line in output.splitlines():
        state, _, rest = line.partition("  ")
        if state.strip() in ("ok", "FAIL"):
            found[rest.strip().split("  ")[0]] = state.strip()
    return found


def test_doctor_finds_every_promise_kept_on_this_machine(engine: DockerEngine) -> None:
    done = codedock("doctor")
    assert done.returncode == 0, done.stdout + done.stderr
    table = rows(done.stdout)
    assert len(table) == PROMISES and set(table.values()) == {"ok"}, done.stdout
    assert f"all {PROMISES} promises hold" in done.stdout
    assert "interfaces: lo" in done.stdout and re.search(r"uid [1-9]\d*, euid [1-9]", done.stdout)


def test_doctor_says_what_is_missing_and_exits_non_zero(engine: DockerEngine) -> None:
    done = codedock("doctor", "--image", "codedock/not-built:never")
    assert done.returncode == 1
    assert rows(done.stdout) == {"the engine answers": "ok", "the image is there": "FAIL"}
    assert "codedock image build" in done.stdout
    nobody = codedock("doctor", DOCKER_HOST="unix:///nonexistent/docker.sock")
    assert nobody.returncode == 1
    assert rows(nobody.stdout) == {"the engine answers": "FAIL"}
    assert "no Docker engine answered at unix:///nonexistent/docker.sock" in nobody.stdout


class LooseEngine(DockerEngine):
    """An engine that gives every sandbox twice the processes and memory it was asked for."""

    def claim(self, spec: SandboxSpec) -> tuple[str, int]:
        limits = spec.profile.limits
        looser = ContainerLimits(
            memory=limits.memory * 2, cpus=limits.cpus, pids=limits.pids * 2, workdir=limits.workdir
        )
        return super().claim(dataclasses.replace(spec, profile=Profile(spec.profile.image, looser)))


def test_doctor_catches_an_engine_that_does_not_apply_the_limits(engine: DockerEngine) -> None:
    findings = diagnose(limits=Limits(memory="128m", pids=40), engine=LooseEngine())
    failed = {f.promise: f.detail for f in findings if not f.ok}
    assert set(failed) == {"the memory limit, with no swap", "the pids limit"}, findings
    assert failed["the pids limit"] == "80 (asked 40)"
    assert not all_hold(findings)


@pytest.fixture(scope="module")
def service(engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    started = Service(
        tmp_path_factory.mktemp("service"), default_memory="160m", max_memory="512m", pool_size=0
    ).start()
    yield started
    started.stop()


def test_doctor_in_service_mode_checks_the_services_sandboxes(service: Service) -> None:
    done = codedock(
        "doctor",
        CODEDOCK_SERVICE_URL=service.url,
        CODEDOCK_SERVICE_TOKEN="tok-alice",
        # Like a kernel in a hub: no engine of its own.
        DOCKER_HOST="unix:///nonexistent/docker.sock",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    table = rows(done.stdout)
    assert list(table)[:3] == ["the service answers", "the user it sees", "its ceilings"]
    assert set(table.values()) == {"ok"} and len(table) == PROMISES + 1, done.stdout
    assert "alice (none)" in done.stdout and "max_memory=512m" in done.stdout
    # The service's default, not this machine's: its sandboxes are the ones checked.
    assert "160m (asked 160m)" in done.stdout
    refused = codedock(
        "doctor", CODEDOCK_SERVICE_URL=service.url, CODEDOCK_SERVICE_TOKEN="tok-nobody"
    )
    assert refused.returncode == 1
    assert rows(refused.stdout) == {"the service answers": "FAIL"}


def test_image_build_and_list_say_what_is_there(engine: DockerEngine) -> None:
    built = codedock("image", "build")
    assert built.returncode == 0, built.stderr
    assert f"image {STANDARD.name} is up to date" in built.stdout
    listed = codedock("image", "list")
    assert listed.returncode == 0, listed.stderr
    line = next(row for row in listed.stdout.splitlines() if row.startswith(STANDARD.name))
    assert f"built for {__version__}" in line and line.endswith("current")
    assert " MiB " in line


def test_an_image_builds_from_the_files_the_package_ships(engine: DockerEngine) -> None:
    target = dataclasses.replace(STANDARD, name="codedock-test/pybuntu:built-here", aliases=())
    lines: list[str] = []
    builder = ImageBuilder(log=lines.append)
    try:
        builder.build(target, offline=True)
        assert f"built {target.name}" in lines
        assert builder.is_current(target)
        result = run("import sys; print(sys.version_info[0])", image=target.name, engine=engine)
        assert result.ok and result.stdout == "3\n", result
    finally:
        engine.api.remove_image(target.name, force=True)
