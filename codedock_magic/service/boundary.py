"""The service's door: what a connection may cost before its caller is known, and how many.

Before a request's token is checked, a connection costs only its headers: every
handler reads its body as a stream (:mod:`.handlers`), and only a caller the
service has let in gets a body cap larger than :data:`ANONYMOUS_BODY`. The server
holds the rest to numbers (:class:`Door`): headers of at most
``max_header_bytes``, which must all arrive within ``header_timeout`` (also how
long an idle keep-alive connection is kept), a body within ``body_timeout``, at
most ``max_connections`` connections in all, and at most
``max_connections_per_address`` from one address while they carry no request a
token let in. A connection past a cap is closed at once, unread.

The access log writes each request's path clipped and escaped, and at most
:data:`LOG_BURST` refused requests' lines a second (then one line saying how many
it left out), so no client can fill the disk through it.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from tornado import httpserver, iostream, web

from .audit import clip

__all__ = [
    "ANONYMOUS_BODY",
    "LOG_BURST",
    "ConnectionCaps",
    "Door",
    "DoorServer",
    "access_log",
    "clip_tornado_log",
]

#: The largest body a request may have before its caller is let in, and the
#: body cap of every endpoint but ``POST /api/runs``.
ANONYMOUS_BODY = 4096
#: Refused requests (4xx, 5xx) the access log writes a line for, at most, each second.
LOG_BURST = 20
#: Runs one user may be sending at once (their bodies arriving); more get a 429.
UPLOADS_PER_USER = 2


@dataclass(frozen=True)
class Door:
    """The server's limits, each a number the README states.

    Attributes:
        max_header_bytes: the largest request line and headers.
        header_timeout: seconds for a request's headers to arrive whole, and for
            an idle connection to send its next request.
        body_timeout: seconds for a body to arrive whole.
        max_connections: connections open at once, in all.
        max_connections_per_address: connections from one address that carry no
            request a token let in (just opened, idle between requests, or
            sending headers).
    """

    max_header_bytes: int = 16 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 512
    max_connections_per_address: int = 64


class ConnectionCaps:
    """Counts connections, by address while anonymous, and runs being sent, by user.

    It lives on the server's event loop; nothing here is thread-safe.
    """

    def __init__(self, door: Door) -> None:
        self.door = door
        # For each open connection: its address, and the user of the request on
        # it that a token let in (None between requests).
        self._open: dict[object, tuple[str, str | None]] = {}
        self._anonymous: Counter[str] = Counter()
        self._uploads: Counter[str] = Counter()

    @property
    def open(self) -> int:
        """Connections open now."""
        return len(self._open)

    def anonymous(self, address: str) -> int:
        """Connections from ``address`` that carry no request a token let in."""
        return self._anonymous[address]

    def admit(self, key: object, address: str) -> bool:
        """A new connection: count it, or say it must be closed (over a cap)."""
        if len(self._open) >= self.door.max_connections:
            return False
        if self._anonymous[address] >= self.door.max_connections_per_address:
            return False
        self._open[key] = (address, None)
        self._anonymous[address] += 1
        return True

    def closed(self, key: object) -> None:
        """A connection ended."""
        entry = self._open.pop(key, None)
        if entry is not None and entry[1] is None:
            self._drop(entry[0])

    def claim(self, key: object, user: str) -> None:
        """A request on the connection was let in: it no longer counts against its address."""
        entry = self._open.get(key)
        if entry is not None and entry[1] is None:
            self._open[key] = (entry[0], user)
            self._drop(entry[0])

    def unclaim(self, key: object) -> None:
        """The request ended: the connection is anonymous again until the next one."""
        entry = self._open.get(key)
        if entry is not None and entry[1] is not None:
            self._open[key] = (entry[0], None)
            self._anonymous[entry[0]] += 1

    def begin_upload(self, user: str) -> bool:
        """One more run of ``user`` being sent; False when they send too many at once."""
        if self._uploads[user] >= UPLOADS_PER_USER:
            return False
        self._uploads[user] += 1
        return True

    def end_upload(self, user: str) -> None:
        """A run of ``user`` has arrived (or its connection has gone)."""
        self._uploads[user] -= 1
        if self._uploads[user] <= 0:
            del self._uploads[user]

    def _drop(self, address: str) -> None:
        self._anonymous[address] -= 1
        if self._anonymous[address] <= 0:
            del self._anonymous[address]


class DoorServer(httpserver.HTTPServer):
    """Tornado's HTTP server under a :class:`Door`: its limits, and its connection caps."""

    # Tornado's servers are Configurable: they are set up in initialize, not __init__.
    def initialize(  # type: ignore[override]
        self, app: web.Application, door: Door, caps: ConnectionCaps
    ) -> None:
        super().initialize(
            app,
            xheaders=False,
            max_header_size=door.max_header_bytes,
            idle_connection_timeout=door.header_timeout,
            body_timeout=door.body_timeout,
            max_body_size=ANONYMOUS_BODY,
            decompress_request=False,
        )
        self.caps = caps

    def handle_stream(self, stream: iostream.IOStream, address: Any) -> None:
        host = address[0] if isinstance(address, tuple) and address else str(address)
        if not self.caps.admit(stream, host):
            stream.close()
            return
        super().handle_stream(stream, address)

    def on_close(self, server_conn: Any) -> None:
        self.caps.closed(server_conn.stream)
        super().on_close(server_conn)


class _LogBudget:
    """At most :data:`LOG_BURST` lines a second; counts the rest."""

    def __init__(self) -> None:
        self.second = 0
        self.written = 0
        self.left_out = 0

    def allow(self) -> tuple[bool, int]:
        now = int(time.monotonic())
        left_out = 0
        if now != self.second:
            self.second, self.written = now, 0
            left_out, self.left_out = self.left_out, 0
        if self.written >= LOG_BURST:
            self.left_out += 1
            return False, left_out
        self.written += 1
        return True, left_out


_budget = _LogBudget()
_log = logging.getLogger("tornado.access")


def access_log(handler: web.RequestHandler) -> None:
    """Tornado's ``log_function``: one short, escaped line a request, refusals rate-limited."""
    status = handler.get_status()
    took = 1000.0 * handler.request.request_time()
    line = "%d %s %s (%s) %.1fms"
    args = (
        status,
        clip(handler.request.method or "", 10),
        clip(handler.request.path, 100),
        clip(handler.request.remote_ip or "", 60),
        took,
    )
    if status < 400:
        _log.info(line, *args)
        return
    allowed, left_out = _budget.allow()
    if left_out:
        _log.warning("left %d refused requests out of this log", left_out)
    if allowed:
        _log.warning(line, *args)


class _ClippedLines(logging.Filter):
    """Tornado's own lines about bad requests quote what the client sent (a header
    value, a request line): each is clipped, and they share the refusals' budget."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = clip(record.getMessage(), 300)
        record.args = ()
        allowed, left_out = _budget.allow()
        if left_out:
            _log.warning("left %d refused requests out of this log", left_out)
        return allowed


def clip_tornado_log() -> None:
    """Clip and rate-limit the lines tornado writes about malformed requests."""
    general = logging.getLogger("tornado.general")
    if not any(isinstance(f, _ClippedLines) for f in general.filters):
        general.addFilter(_ClippedLines())
