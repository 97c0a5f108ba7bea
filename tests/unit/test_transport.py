"""The service client's HTTP, against raw sockets on 127.0.0.1 that answer as a service might."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from codedock_magic import ServiceBackend, ServiceUnavailableError
from codedock_magic.remote import transport

STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)
    yield server
    server.close()


def _url(server: socket.socket) -> str:
    return f"http://127.0.0.1:{server.getsockname()[1]}/api/runs"


def _read_head(peer: socket.socket) -> bytes:
    seen = b""
    while b"\r\n\r\n" not in seen:
        seen += peer.recv(65536)
    return seen


def test_lines_arrive_as_they_are_sent_and_close_ends_a_blocked_reader(
    listener: socket.socket,
) -> None:
    # The service learns that a run's caller went from its connection's end: closing
    # a stream must reach it at once, even while the reader thread waits for a line.
    got: list[bytes] = []
    ended = threading.Event()
    peer_saw_eof = threading.Event()

    def service() -> None:
        peer, _ = listener.accept()
        with peer:
            _read_head(peer)
            peer.sendall(STREAM_HEAD + _chunk(b'{"event": "accepted"}\n'))
            peer.settimeout(10)
            if peer.recv(1) == b"":
                peer_saw_eof.set()

    threading.Thread(target=service, daemon=True).start()
    response = transport.request(
        "POST", _url(listener), connect_timeout=5, read_timeout=None, stream=True
    )

    def reader() -> None:
        # A closed stream may end as an end of lines or as a broken exchange.
        with contextlib.suppress(transport.ConnectFailed):
            for line in response.iter_lines():
                got.append(line)
        ended.set()

    threading.Thread(target=reader, daemon=True).start()
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    assert got == [b'{"event": "accepted"}']
    response.close()
    assert peer_saw_eof.wait(2), "the service never saw the connection end"
    assert ended.wait(2), "the reader stayed blocked on a closed stream"


def test_a_service_that_is_not_there_is_one_line(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    listener.close()
    with pytest.raises(ServiceUnavailableError, match="connection refused"):
        ServiceBackend(f"http://127.0.0.1:{port}", "tok").info()


def test_a_service_that_never_answers_times_out(listener: socket.socket) -> None:
    with pytest.raises(transport.TimedOut):
        transport.request("GET", _url(listener), connect_timeout=5, read_timeout=0.3)


def test_an_answer_that_is_not_http_is_a_broken_exchange(listener: socket.socket) -> None:
    def service() -> None:
        peer, _ = listener.accept()
        with peer:
            _read_head(peer)
            peer.sendall(b"SSH-2.0-OpenSSH\r\n")

    threading.Thread(target=service, daemon=True).start()
    with pytest.raises(transport.ConnectFailed):
        transport.request("GET", _url(listener), connect_timeout=5, read_timeout=5)
