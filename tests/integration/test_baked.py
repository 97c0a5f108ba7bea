"""The supervisor baked into an image, and the argv it is sent in for every other image."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from codedock_magic import DEFAULT_IMAGE, DockerEngine, RunStatus, run
from codedock_magic.core.errors import EngineError
from codedock_magic.core.profile import Profile
from codedock_magic.engines.base import SandboxSpec
from codedock_magic.engines.docker_images import STANDARD, ImageBuilder
from codedock_magic.supervisor import (
    BAKED_DIR,
    SUPERVISOR_HASH,
    baked_command,
    baked_files,
    supervisor_command,
)

BAKED = "codedock-test/pybuntu:baked"
FORGED = "codedock-test/pybuntu:forged"
# A Debian python3 and nothing of ours: an image built by someone else.
FOREIGN = "codedock/debian-python:bookworm"

# What the program tries against the baked files, and what it sees of itself.
PROBE = f"""
import os, sys
target = {BAKED_DIR!r} + "/codedock_supervisor.py"
for attempt in ("open", "chmod", "unlink"):
    try:
        if attempt == "open":
            open(target, "a").close()
        elif attempt == "chmod":
            os.chmod(target, 0o666)
        else:
            os.unlink(target)
        print(attempt, "succeeded")
    except OSError as exc:
        print(attempt, type(exc).__name__)
print(sys.argv, __name__, [m for m in sys.modules if "supervisor" in m])
display(b"<svg xmlns='http://www.w3.org/2000/svg'/>")
doubled = [n * 2 for n in numbers]
"""


def _build(name: str, files: dict[str, bytes]) -> None:
    recipe = dataclasses.replace(STANDARD, name=name, aliases=())
    ImageBuilder(log=lambda _: None, baked=(files, SUPERVISOR_HASH)).build(
        recipe, base=DEFAULT_IMAGE
    )


@pytest.fixture(scope="module")
def images(engine: DockerEngine) -> Iterator[None]:
    _build(BAKED, baked_files())
    # The label says this release's supervisor; the files are another one's.
    forged = dict(baked_files())
    forged["codedock_supervisor.py"] += b"\nVERSION = 0\n"
    _build(FORGED, forged)
    yield
    for name in (BAKED, FORGED):
        engine.api.remove_image(name, force=True)


def _spec(image: str) -> SandboxSpec:
    baked = (SUPERVISOR_HASH, baked_command())
    return SandboxSpec(Profile(image), supervisor_command(), baked=baked)


@pytest.mark.parametrize("image", [BAKED, FOREIGN])
def test_a_program_runs_with_its_runtime_from_either_delivery(
    engine: DockerEngine, images: None, image: str
) -> None:
    baked = image == BAKED
    command = engine.command_for(_spec(image))
    assert (command == baked_command()) is baked
    assert (command == supervisor_command()) is not baked
    if not baked:
        assert engine.carried_supervisor(image) == ""
    images_seen: list[str] = []
    result = run(
        PROBE,
        image=image,
        engine=engine,
        values={"numbers": [1, 2]},
        returns="doubled",
        on_image=lambda mime, data: images_seen.append(mime),
    )
    assert result.status is RunStatus.OK, result.stderr
    lines = result.stdout.splitlines()
    # Root's files on a read-only root: not the program's to change.
    if baked:
        assert [line.split()[0] for line in lines[:3]] == ["open", "chmod", "unlink"]
        assert not any(line.endswith("succeeded") for line in lines[:3]), lines
    else:
        assert all(line.endswith("FileNotFoundError") for line in lines[:3]), lines
    assert lines[3] == "['/sandbox/main.py'] __main__ []"
    assert result.value == [2, 4]
    assert images_seen == ["image/svg+xml"]


def test_an_image_whose_files_are_not_what_its_label_says_fails_closed(
    engine: DockerEngine, images: None
) -> None:
    assert engine.command_for(_spec(FORGED)) == baked_command()
    try:
        result = run("print('must not run')", image=FORGED, engine=engine)
    except EngineError as exc:
        said = str(exc)
    else:
        assert result.status is not RunStatus.OK
        assert "must not run" not in result.stdout
        said = repr(result)
    assert "not this release's; rebuild it" in said


def test_every_promise_holds_with_the_supervisor_from_the_image(
    engine: DockerEngine, images: None
) -> None:
    from codedock_magic.doctor import all_hold, diagnose

    findings = diagnose(image=BAKED, engine=engine)
    assert all_hold(findings), findings
