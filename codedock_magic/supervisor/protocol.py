"""The supervisor's protocol, as the host speaks it: one versioned request, framed replies.

The host greets the supervisor with one byte (:data:`HELLO`) as soon as it has
attached, then writes one request to the container's stdin: a JSON header line,
then the code and the stdin bytes whose lengths it states. The supervisor answers
on its stdout in frames of a kind byte and a big-endian 4-byte length: ``r`` once
it is ready for its request (it has set itself up and heard the host's byte, so
that the host is listening on any engine), ``o`` the program's stdout,
``e`` its stderr, ``d`` what the program sent on its display descriptor (images
and values, in frames of the runtime's own, relayed as they are), ``f`` a file
from ``/sandbox/out`` (``name\0bytes``), ``n`` a note on one it skipped, ``u``
what the container's cgroup counted (CPU ns, memory peak), ``x`` the end, whose
payload says how the program ended. The
program never holds that descriptor, so it cannot forge a frame.

A request with cases (``cases`` > 0 in the header, no stdin of its own) runs the
code once per case: the host sends each case's line (:func:`encode_case`) and
stdin, and reads its output frames up to its ``c`` frame (:func:`parse_case_end`).
The next case follows on the stream, sent before that frame when both are small:
the supervisor reads a case's line only once the case before it is over.
``x`` then ends the whole request.

The supervisor (:mod:`.program`) runs in the container with nothing of this
package, so it keeps its own copy of these constants; a unit test runs its own
encode and decode against these.
"""

from __future__ import annotations

import enum
import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "EXIT_CANNOT_START",
    "EXIT_DEADLINE",
    "EXIT_HOST_GONE",
    "HELLO",
    "MAX_FRAME",
    "VERSION",
    "CaseEnd",
    "End",
    "FrameDecoder",
    "FrameKind",
    "encode_case",
    "encode_extras",
    "encode_request",
    "parse_case_end",
    "parse_end",
    "parse_usage",
]

#: Bumped whenever a field or frame changes meaning.
VERSION = 5
#: The host's first byte, sent as soon as it listens: the supervisor says it is
#: ready only after it.
HELLO = b"h"

#: The supervisor's own exit codes (as a shell's ``timeout`` uses 124 and 126).
EXIT_DEADLINE = 124  # its own deadline passed: the host was stuck
EXIT_HOST_GONE = 125  # the control stream ended, or no request came in time
EXIT_CANNOT_START = 126  # the program could not be started, or the request was refused

HEADER = struct.Struct(">cI")


class FrameKind(bytes, enum.Enum):
    """The kind byte of a supervisor frame."""

    READY = b"r"
    STDOUT = b"o"
    STDERR = b"e"
    DISPLAY = b"d"
    FILE = b"f"
    NOTE = b"n"
    CASE = b"c"
    USAGE = b"u"
    END = b"x"


def _line(fields: dict[str, float]) -> bytes:
    return json.dumps(fields, separators=(",", ":")).encode("ascii") + b"\n"


def encode_request(
    code: bytes, stdin: bytes, timeout: float, uid: int, *, cases: int = 0, extras: bytes = b""
) -> bytes:
    """The header line, then the code, the extras and stdin, as the supervisor reads them.

    With ``cases``, ``stdin`` must be empty (each case brings its own) and
    ``timeout`` bounds all of them together. ``extras`` is :func:`encode_extras`'s.
    """
    header = {
        "version": VERSION,
        "code_bytes": len(code),
        "stdin_bytes": len(stdin),
        "timeout": round(timeout, 3),
        "uid": uid,
        "cases": cases,
        "extras_bytes": len(extras),
    }
    return _line(header) + code + extras + stdin


def encode_extras(
    values: bytes = b"", returns: str = "", files: Iterable[tuple[str, bytes]] = ()
) -> bytes:
    """Values (JSON text) to bind, a variable to send back, and files to put in /sandbox.

    Each item is a kind byte, the lengths of its name and data, then both.
    """
    items = []
    if values:
        items.append((b"v", b"", values))
    if returns:
        items.append((b"r", returns.encode("utf-8"), b""))
    items += [(b"f", name.encode("utf-8"), data) for name, data in files]
    return b"".join(
        struct.pack(">cII", kind, len(name), len(data)) + name + data for kind, name, data in items
    )


def encode_case(stdin: bytes, timeout: float, memory: int = 0) -> bytes:
    """One case's line and stdin: its own deadline, and its memory cap (0: the container's)."""
    return (
        _line({"stdin_bytes": len(stdin), "timeout": round(timeout, 3), "memory": memory}) + stdin
    )


@dataclass(frozen=True)
class CaseEnd:
    """How one case's program ended, as the supervisor saw it.

    Attributes:
        how: ``exit`` or ``signal`` (``number`` says which), ``timeout`` (its own
            deadline passed) or ``memory`` (it went past its cap, or the kernel's
            OOM killer took one of its processes).
        number: the exit code or signal, else 0.
        seconds: from its start to its end.
    """

    how: str
    number: int
    seconds: float


def parse_case_end(payload: bytes) -> CaseEnd | None:
    """Read a ``c`` frame's payload; None when it is not one the protocol defines."""
    parts = payload.decode("ascii", "replace").split(" ")
    if len(parts) != 3 or parts[0] not in ("exit", "signal", "timeout", "memory"):
        return None
    try:
        number, seconds = int(parts[1]), float(parts[2])
    except ValueError:
        return None
    if not 0 <= seconds < 1e9 or abs(number) > 2**31:
        return None
    return CaseEnd(parts[0], number, seconds)


@dataclass(frozen=True)
class End:
    """How the supervisor says the program ended.

    Attributes:
        how: ``exit`` (``number`` is the exit code), ``signal`` (``number`` is the
            signal), ``deadline`` (the supervisor's own deadline passed),
            ``refused`` (it would not run the request; ``detail`` says why) or
            ``unclean`` (between cases, something of the program would not go;
            ``detail`` says what, and no further case ran) or ``failed`` (the
            supervisor itself failed; ``detail`` says how, and nothing of it is
            the program's).
        number: the exit code or signal, else 0.
        detail: the refusal's reason, else empty.
    """

    how: str
    number: int = 0
    detail: str = ""


def parse_end(payload: bytes) -> End | None:
    """Read an ``x`` frame's payload; None when it is not one the protocol defines."""
    word, _, rest = payload.decode("ascii", "replace").partition(" ")
    if word in ("exit", "signal") and rest.isdigit() and len(rest) <= 10:
        return End(word, int(rest))
    if word == "deadline" and not rest:
        return End("deadline")
    if word in ("refused", "unclean", "failed"):
        return End(word, detail=rest[:300])
    return None


def parse_usage(payload: bytes) -> tuple[float, int] | None:
    """Read a ``u`` frame: (CPU seconds, peak bytes); None when it is not one."""
    parts = payload.split(b" ")
    if len(parts) != 2 or not all(part.isdigit() and len(part) <= 20 for part in parts):
        return None
    return int(parts[0]) / 1e9, int(parts[1])


#: The longest frame the supervisor sends (a file of up to 8 MiB with its name),
#: with room to spare; a longer one means the stream is broken.
MAX_FRAME = 16 * 1024 * 1024


class FrameDecoder:
    """Turns the supervisor's byte stream back into ``(kind, payload)`` frames.

    It never holds more than :data:`MAX_FRAME` and never raises: a frame longer
    than that, or of no kind the protocol defines, breaks the stream (``broken``
    says why), and nothing after it is read.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.broken = ""

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        """Return every complete frame that ``data`` completes."""
        if self.broken:
            return []
        self._buffer += data
        start = 0
        frames: list[tuple[bytes, bytes]] = []
        kinds = {kind.value for kind in FrameKind}
        while len(self._buffer) - start >= HEADER.size:
            kind, length = HEADER.unpack_from(self._buffer, start)
            if length > MAX_FRAME or kind not in kinds:
                self.broken = (
                    f"the sandbox's supervisor sent a frame the host cannot read "
                    f"(kind {kind!r}, {length:,} bytes); nothing after it was read"
                )
                self._buffer.clear()
                return frames
            end = start + HEADER.size + length
            if len(self._buffer) < end:
                break
            frames.append((kind, bytes(self._buffer[start + HEADER.size : end])))
            start = end
        del self._buffer[:start]
        return frames

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buffer)
