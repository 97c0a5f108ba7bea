"""The bytes on the attach stream: what the host sends and how replies are framed.

Two layers arrive on the socket. The engine multiplexes the container's stdout and
stderr in frames of an 8-byte header (stream, 3 zero bytes, big-endian length).
Inside the stdout stream, the supervisor wraps the program's output in frames of
its own (kind, big-endian length): ``o`` stdout, ``e`` stderr, ``x`` the end.
"""

from __future__ import annotations

import struct

__all__ = ["ENGINE_STDERR", "ENGINE_STDOUT", "EngineFrames", "SupervisorFrames", "encode_request"]

ENGINE_STDOUT = 1
ENGINE_STDERR = 2
_ENGINE_HEADER = struct.Struct(">BxxxI")
_SUPERVISOR_HEADER = struct.Struct(">cI")


def encode_request(code: bytes, stdin: bytes, timeout: float, uid: int) -> bytes:
    """The header line, then the code and stdin, as the supervisor reads them."""
    return b"%d %d %.3f %d\n" % (len(code), len(stdin), timeout, uid) + code + stdin


class _Frames:
    _header: struct.Struct

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[object, bytes]]:
        """Return every complete frame that ``data`` completes, as (kind, payload)."""
        self._buffer += data
        size = self._header.size
        start = 0
        frames: list[tuple[object, bytes]] = []
        while len(self._buffer) - start >= size:
            kind, length = self._header.unpack_from(self._buffer, start)
            end = start + size + length
            if len(self._buffer) < end:
                break
            frames.append((kind, bytes(self._buffer[start + size : end])))
            start = end
        del self._buffer[:start]
        return frames

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buffer)


class EngineFrames(_Frames):
    """Decoder of the engine's stdout/stderr multiplexing; kinds are 1 and 2."""

    _header = _ENGINE_HEADER


class SupervisorFrames(_Frames):
    """Decoder of the supervisor's frames; kinds are ``b"o"``, ``b"e"``, ``b"x"``."""

    _header = _SUPERVISOR_HEADER
