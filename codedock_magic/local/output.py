"""Output kept within a cap: the whole of it when small, else a head and a tail."""

from __future__ import annotations

import codecs

__all__ = ["CappedOutput"]


class CappedOutput:
    """One stream's bytes with memory bounded by ``cap``, however much arrives.

    The first ``cap // 2`` bytes are the head, which is also what is streamed live;
    after it, a ring keeps the last ``cap - cap // 2`` bytes. Output of up to ``cap``
    bytes is kept whole.
    """

    def __init__(self, cap: int) -> None:
        self._head_cap = cap // 2
        self._tail_cap = cap - self._head_cap
        self._head = bytearray()
        self._tail = bytearray()
        self.total = 0
        self._live = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(self, data: bytes) -> str:
        """Take ``data``; return the text newly added to the head (for live display)."""
        self.total += len(data)
        room = self._head_cap - len(self._head)
        live = b""
        if room > 0:
            live = data[:room]
            self._head += live
            data = data[room:]
        if data:
            if len(data) >= self._tail_cap:
                self._tail[:] = data[-self._tail_cap :]
            else:
                self._tail += data
                excess = len(self._tail) - self._tail_cap
                if excess > 0:
                    del self._tail[:excess]
        return self._live.decode(live) if live else ""

    @property
    def kept(self) -> int:
        """Bytes kept: at most the cap."""
        return len(self._head) + len(self._tail)

    @property
    def cut(self) -> int:
        """Bytes dropped between head and tail."""
        return self.total - len(self._head) - len(self._tail)

    @property
    def truncated(self) -> bool:
        """Whether anything was dropped."""
        return self.cut > 0

    def text(self) -> str:
        """Everything kept, decoded; a marker line stands where bytes were cut."""
        if not self.truncated:
            return (bytes(self._head) + bytes(self._tail)).decode("utf-8", "replace")
        head = bytes(self._head).decode("utf-8", "replace")
        tail = bytes(self._tail).decode("utf-8", "replace")
        return f"{head}\n[... {self.cut:,} bytes of output cut ...]\n{tail}"
