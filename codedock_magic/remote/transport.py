"""HTTP for the service's client: the standard library's ``http.client``, one connection a request.

The client lives in every kernel of a hub, for as long as the kernel, so what it
imports is paid by every user: ``requests`` alone costs a kernel about 4 MiB
(it loads the CA bundle at import), ``http.client`` about 0.2 MiB. The client
needs little of HTTP: a JSON body, a bearer token, a JSON answer or a stream of
lines, and two timeouts. Each request opens its own connection, so a run's
stream, a cancel from another thread and ``/api/info`` never share one, and a
closed stream is a closed socket, which is how the service knows a run's caller
is gone.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

__all__ = ["ConnectFailed", "Response", "TimedOut", "request"]


class ConnectFailed(OSError):
    """The service could not be reached, or broke the exchange off."""


class TimedOut(OSError):
    """The service was reached but did not answer within the read timeout."""


class Response:
    """An answer: its status, reason and headers, and its body read whole or as lines."""

    def __init__(self, connection: http.client.HTTPConnection, raw: http.client.HTTPResponse):
        self._connection = connection
        self._raw = raw
        self.status_code = raw.status
        self.reason = raw.reason
        #: Case-insensitive, as HTTP's are.
        self.headers = raw.headers
        self._body: bytes | None = None
        self._closed = False

    def read(self) -> bytes:
        """The whole body (read once, then kept)."""
        if self._body is None:
            try:
                self._body = self._raw.read()
            except (OSError, http.client.HTTPException) as exc:
                raise _failure(exc) from None
            finally:
                self.close()
        return self._body

    def json(self) -> Any:
        """The body as JSON; ``ValueError`` when it is not."""
        return json.loads(self.read())

    def iter_lines(self) -> Iterator[bytes]:
        """The body's lines as they arrive, without their line ends."""
        while True:
            try:
                line = self._raw.readline()
            except (OSError, http.client.HTTPException, ValueError, AttributeError) as exc:
                # Closed from another thread, http.client fails in ways of its own
                # (a chunk size of b"", a file that is gone): the stream ends there.
                if self._closed:
                    return
                raise _failure(exc) from None
            if not line:
                return
            yield line.rstrip(b"\r\n")

    def close(self) -> None:
        """Close the connection, even while another thread reads from it."""
        self._closed = True
        sock = self._connection.sock
        if sock is not None:
            # A shutdown wakes a reader blocked on the socket and sends the FIN now;
            # a bare close would wait for that reader.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._raw.close()
        self._connection.close()


def request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    json_body: Any = None,
    connect_timeout: float,
    read_timeout: float | None,
    stream: bool = False,
) -> Response:
    """Send one request on a connection of its own; the answer, body unread when ``stream``.

    Raises:
        ConnectFailed: the service could not be reached or broke the exchange off.
        TimedOut: it did not answer within ``read_timeout`` seconds.
    """
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host = parts.hostname or ""
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        import ssl

        connection = http.client.HTTPSConnection(
            host, parts.port, timeout=connect_timeout, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(host, parts.port, timeout=connect_timeout)
    sent = dict(headers or {})
    body = None
    if json_body is not None:
        body = json.dumps(json_body, allow_nan=False).encode()
        sent["Content-Type"] = "application/json"
    try:
        connection.connect()
    except (OSError, http.client.HTTPException) as exc:
        connection.close()
        # A connect that times out never reached the service: it is unreachable.
        raise ConnectFailed(str(exc) or type(exc).__name__) from None
    try:
        assert connection.sock is not None
        connection.sock.settimeout(read_timeout)
        connection.request(method, target, body=body, headers=sent)
        response = Response(connection, connection.getresponse())
    except (OSError, http.client.HTTPException) as exc:
        connection.close()
        raise _failure(exc) from None
    if not stream:
        response.read()
    return response


def _failure(exc: BaseException) -> OSError:
    if isinstance(exc, TimeoutError):
        return TimedOut(str(exc) or "timed out")
    return ConnectFailed(str(exc) or type(exc).__name__)
