"""Inside the sandbox, loaded as the program starts: images, values in and out.

The supervisor writes this file to ``/codedock/lib`` (a root-owned tmpfs the
program can read, not write) with a ``usercustomize`` that imports it, and puts
that folder on the program's ``PYTHONPATH``. It is stand-alone, like the
supervisor: any image with Python 3 runs it, and it imports nothing heavy until
it is used. It gives the program:

- ``display(obj)``, as ``IPython.display`` has it (also as a builtin), for
  matplotlib figures, objects with ``_repr_png_``/``_repr_jpeg_``/``_repr_svg_``,
  and PNG, JPEG or SVG bytes; ``Image`` and ``SVG`` to wrap bytes or a file;
- with ``MPLBACKEND=module://codedock_mpl_backend`` (``mpl_backend.py``), a
  matplotlib whose ``show()`` sends every open figure, and figures left open at
  the end are sent;
- the notebook's values named by ``--in``, bound in ``__main__`` before the code
  runs, and the value of the variable named by ``--return`` sent back at the end.

Images and values go to the host on descriptor 3, in frames of a kind byte and a
4-byte length: ``i`` (``mime\\0bytes``) and ``v`` (``name\\0json``, or
``name\\0!why`` when there is none to send). The supervisor relays that stream
as it is; the host checks and caps it. Nothing here decides a run's status.
"""

# Annotations stay text: images with a Python older than this package run it too.
from __future__ import annotations

import atexit
import builtins
import os
import struct
import sys
import time

FD = 3
MIMES = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg", "svg": "image/svg+xml"}


def _drained(fd: int) -> None:
    # The supervisor reads stdout, stderr and this stream as each has data; text
    # printed before an image is in its place only once the supervisor has taken
    # it off the pipe, which it does at once (a pipe answers FIONREAD at either end).
    import array
    import fcntl
    import termios

    waiting = array.array("i", [0])
    for _ in range(200):
        try:
            fcntl.ioctl(fd, termios.FIONREAD, waiting)
        except OSError:
            return
        if waiting[0] == 0:
            return
        time.sleep(0.001)


def _send(kind: bytes, payload: bytes) -> None:
    # What was printed before comes first.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            continue  # a stream the program closed or replaced
    _drained(1)
    _drained(2)
    data = struct.pack(">cI", kind, len(payload)) + payload
    try:
        while data:
            data = data[os.write(FD, data) :]
    except OSError:
        pass


def _sniff(data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if b"<svg" in data[:4096]:
        return "image/svg+xml"
    return ""


def _image_of(obj: object) -> tuple[str, bytes] | None:
    if hasattr(obj, "savefig") and hasattr(obj, "canvas"):
        import io

        buffer = io.BytesIO()
        obj.savefig(buffer, format="png", bbox_inches="tight")
        return "image/png", buffer.getvalue()
    for method, mime in (
        ("_repr_png_", "image/png"),
        ("_repr_jpeg_", "image/jpeg"),
        ("_repr_svg_", "image/svg+xml"),
    ):
        made = getattr(obj, method, None)
        if callable(made):
            data = made()
            if data is not None:
                return mime, data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if isinstance(obj, (bytes, bytearray)) and _sniff(bytes(obj)):
        return _sniff(bytes(obj)), bytes(obj)
    return None


def display(*objs: object, **_: object) -> None:
    """Show images in the notebook; anything else is printed, as ``IPython.display`` would."""
    for obj in objs:
        found = _image_of(obj)
        if found is None:
            print(repr(obj))
        else:
            _send(b"i", found[0].encode("ascii") + b"\0" + found[1])


class Image:
    """PNG or JPEG bytes, or an image file, for :func:`display`."""

    def __init__(
        self, data: bytes | str | None = None, filename: str | None = None, format: str = ""
    ) -> None:
        if isinstance(data, str) and filename is None:
            data, filename = None, data
        if filename is not None:
            with open(filename, "rb") as handle:
                data = handle.read()
            format = format or filename.rsplit(".", 1)[-1]
        self.data = data.encode("latin-1") if isinstance(data, str) else bytes(data or b"")
        self.mime = MIMES.get(format.lower(), "") or _sniff(self.data)

    def _repr_png_(self) -> bytes | None:
        return self.data if self.mime == "image/png" else None

    def _repr_jpeg_(self) -> bytes | None:
        return self.data if self.mime == "image/jpeg" else None


class SVG:
    """SVG text or bytes, or an SVG file, for :func:`display`."""

    def __init__(self, data: bytes | str | None = None, filename: str | None = None) -> None:
        if filename is not None or (isinstance(data, str) and "<svg" not in data):
            with open(filename or str(data), "rb") as handle:
                data = handle.read()
        self.data = data.encode("utf-8") if isinstance(data, str) else bytes(data or b"")

    def _repr_svg_(self) -> bytes:
        return self.data


def show(*args: object, **kwargs: object) -> None:
    """matplotlib's ``plt.show()``: send every open figure, then close them."""
    from matplotlib._pylab_helpers import Gcf

    for manager in Gcf.get_all_fig_managers():
        display(manager.canvas.figure)
    Gcf.destroy_all()


def _bind_values(path: str) -> None:
    if not path:
        return
    import json

    import __main__

    with open(path, encoding="utf-8") as handle:
        __main__.__dict__.update(json.load(handle))


def _return_value(name: str) -> None:
    import json

    import __main__

    if name not in __main__.__dict__:
        _send(b"v", name.encode() + b"\0!the program has no variable " + name.encode())
        return
    value = __main__.__dict__[name]
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        why = f"{name} holds a {type(value).__name__}, not a JSON value ({exc})"
        _send(b"v", name.encode() + b"\0!" + why.encode("utf-8", "replace"))
        return
    _send(b"v", name.encode() + b"\0" + text.encode("utf-8"))


def _arrive(values: str, wanted: str) -> None:
    """Bind the values in the file ``values`` and send ``wanted`` back at the end.

    Called as the program starts, or, in an interpreter started before its code
    came (see the supervisor), once the code is there.
    """
    _bind_values(values)
    if wanted:
        # Registered before the backend's figure handler, so it runs after it.
        atexit.register(_return_value, wanted)


def _start() -> None:
    builtins.display = display  # type: ignore[attr-defined]
    _arrive(os.environ.pop("CODEDOCK_VALUES", ""), os.environ.pop("CODEDOCK_RETURN", ""))
    # A shim for ``from IPython.display import display`` in an image without IPython.
    sys.path.append(os.path.join(os.path.dirname(__file__), "shim"))


# Only inside the sandbox, where usercustomize imports it under this name; the
# host imports this module only to read it.
if __name__ == "codedock_runtime":
    _start()
