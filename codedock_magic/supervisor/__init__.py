"""The program every sandbox container runs as its main process, and its protocol.

:mod:`.program` is stand-alone: it is sent to the container as source and run by
the image's own ``python3``, so it imports nothing of this package.
:mod:`.protocol` is the host's side of the conversation with it. :mod:`.runtime`
and :mod:`.mpl_backend` are what the supervisor lays out for the program (images,
values), stand-alone too.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..core.limits import ContainerLimits

__all__ = [
    "BAKED_DIR",
    "COLD_IDLE",
    "NOFILE",
    "RUNTIME_FILES",
    "SUPERVISOR_HASH",
    "baked_command",
    "baked_files",
    "supervisor_command",
]

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

#: Where an image built by ``codedock image build`` carries the supervisor (with
#: its bytecode, compiled there by the image's own python3) and the runtime.
BAKED_DIR = "/opt/codedock"
_BAKED_SOURCE = "codedock_supervisor.py"
_BAKED_RUNTIME = "runtime.blob"
#: The SHA-256 of the supervisor and runtime this package sends; an image carries
#: it as a label, and the baked command checks the files against it.
SUPERVISOR_HASH = hashlib.sha256(
    _SOURCE.encode("utf-8") + b"\0" + _RUNTIME.encode("utf-8")
).hexdigest()

# The baked command's whole program. It runs the image's copy only when its bytes
# are the ones this package would send (an image of another release, or one
# changed since, fails closed: exit 126 with a line on stderr); the import then
# takes the bytecode compiled at build time, which Python checks against that
# source (checked-hash .pyc). The supervisor then sees the argv it always does.
_LOADER = f"""\
import sys
try:
    from _sha256 import sha256
except ImportError:
    from hashlib import sha256
d = {BAKED_DIR!r}
with open(d + "/{_BAKED_SOURCE}", "rb") as f:
    s = f.read()
with open(d + "/{_BAKED_RUNTIME}", "rb") as f:
    b = f.read()
if sha256(s + b"\\0" + b).hexdigest() != sys.argv[1]:
    sys.stderr.write("codedock: the supervisor in this image is not this release's; "
                     "rebuild it with codedock image build\\n")
    sys.exit(126)
sys.argv[1:2] = []
sys.argv[3:] = [b.decode("utf-8")]
sys.path.insert(0, d)
import codedock_supervisor
codedock_supervisor.main()
"""


def baked_files() -> dict[str, bytes]:
    """The files an image carries under :data:`BAKED_DIR`, by name."""
    return {_BAKED_SOURCE: _SOURCE.encode("utf-8"), _BAKED_RUNTIME: _RUNTIME.encode("utf-8")}


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


def baked_command(
    idle: float = COLD_IDLE, limits: ContainerLimits | None = None, *, warm: bool = False
) -> list[str]:
    """The container command for an image that carries this supervisor (label
    ``io.codedock.supervisor`` equal to :data:`SUPERVISOR_HASH`).

    The same supervisor with the same arguments as :func:`supervisor_command`, in
    under 1 KB of argv instead of about 50 KB, and without compiling its source at
    every start.
    """
    command = supervisor_command(idle, limits, warm=warm)
    return ["python3", "-I", "-S", "-c", _LOADER, SUPERVISOR_HASH, *command[5:7]]
