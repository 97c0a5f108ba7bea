"""The program every sandbox container runs as its main process, and its protocol.

:mod:`.program` is stand-alone: it is sent to the container as source and run by
the image's own ``python3``, so it imports nothing of this package.
:mod:`.protocol` is the host's side of the conversation with it. :mod:`.runtime`
and :mod:`.mpl_backend` are what the supervisor lays out for the program (images,
values), stand-alone too.
"""

from __future__ import annotations

from pathlib import Path

from ..core.limits import ContainerLimits

__all__ = ["COLD_IDLE", "NOFILE", "RUNTIME_FILES", "supervisor_command"]

#: The most files the program may hold open at once.
NOFILE = 256

#: A container started for one run gets its code at once; this only bounds a host
#: that stalls between start and send.
COLD_IDLE = 60.0

_HERE = Path(__file__).parent
_SOURCE = (_HERE / "program.py").read_text(encoding="utf-8")

#: The files of the runtime the supervisor lays out under ``/codedock/lib`` for
#: the program (see :mod:`.runtime`), by path under that folder.
RUNTIME_FILES = {
    "codedock_runtime.py": (_HERE / "runtime.py").read_text(encoding="utf-8"),
    "codedock_mpl_backend.py": (_HERE / "mpl_backend.py").read_text(encoding="utf-8"),
    "usercustomize.py": "import codedock_runtime  # noqa: F401\n",
    "shim/IPython/__init__.py": "",
    "shim/IPython/display.py": "from codedock_runtime import SVG, Image, display  # noqa: F401\n",
}


def _runtime_blob() -> str:
    # argv cannot hold NUL bytes: each file is its path, its length and its text.
    return "".join(f"{name}\n{len(text)}\n{text}" for name, text in RUNTIME_FILES.items())


_RUNTIME = _runtime_blob()


def supervisor_command(
    idle: float = COLD_IDLE, limits: ContainerLimits | None = None, *, warm: bool = False
) -> list[str]:
    """The container command: the supervisor, run by the image's own python3.

    ``idle`` is how long it waits for its code before ending itself. The program
    may hold :data:`NOFILE` files open, write no file larger than the work dir
    of ``limits`` (the defaults' when None), and run no more processes than its
    pids limit (as its uid, which is the sandbox's own: under gVisor the
    container's pids also count the runtime's own threads, so this is what bounds
    the program there); the supervisor sets all three. With ``warm`` (a container
    started ahead of time) it also starts the program's interpreter before the
    code arrives, so that the run does not wait for it.
    """
    limits = limits or ContainerLimits()
    bounds = f"nofile={NOFILE},fsize={limits.workdir},nproc={limits.pids}"
    if warm:
        bounds += ",warm=1"
    return ["python3", "-I", "-S", "-c", _SOURCE, f"{idle:.0f}", bounds, _RUNTIME]
