"""The backend that asks a sandbox service (``codedock serve``) for each run.

A kernel in a multi-user hub must not hold the engine: whoever holds the Docker
socket is root on its host, and whatever the kernel holds its user holds. So
there the kernel sends the run to the service over HTTP and reads back a stream
of events (one JSON object per line), and the service decides the limits.

A run lives as long as its HTTP response: when this process dies by any path,
its socket closes and the service ends the run, as the attach stream does for a
local container. An interrupt cancels the run and then reads on until the
service reports the run's end, so the result says ``interrupted`` and keeps the
output that came before.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

from ..core.errors import (
    CodedockError,
    EngineError,
    InvalidValueError,
    ServiceAuthError,
    ServiceRefusedError,
    ServiceUnavailableError,
)
from ..core.limits import Limits
from ..core.request import Listener, RunRequest
from ..core.result import CaseEnding, RunResult, RunStatus, cases_not_run
from . import transport
from .transport import ConnectFailed, Response, TimedOut
from .wire import Event, Received, decode_event, request_to_json

__all__ = ["SERVICE_TOKEN_ENV", "SERVICE_URL_ENV", "ServiceBackend", "service_from_env"]

#: Where a kernel finds the service: a JupyterHub fragment sets it for every server.
SERVICE_URL_ENV = "CODEDOCK_SERVICE_URL"
#: A static token, for a service run without a hub (its ``api_tokens``).
SERVICE_TOKEN_ENV = "CODEDOCK_SERVICE_TOKEN"
#: The token every JupyterHub single-user server, and its kernels, inherit.
HUB_TOKEN_ENV = "JUPYTERHUB_API_TOKEN"

# Seconds to wait for the service to confirm a cancel before giving up on it; the
# closed connection then ends the run on the service's side anyway.
CANCEL_WAIT = 5.0
CONNECT_TIMEOUT = 5.0
# How often the waiting loop looks at the stop flag.
POLL = 0.05
# Seconds to wait, after a run's result, for the service to end its stream.
END_WAIT = 1.0


def service_from_env(environ: Mapping[str, str] | None = None) -> ServiceBackend | None:
    """The service named by ``$CODEDOCK_SERVICE_URL``, or ``None`` when it is not set."""
    environ = os.environ if environ is None else environ
    url = environ.get(SERVICE_URL_ENV, "").strip()
    if not url:
        return None
    return ServiceBackend(url)


def _token_from_env(environ: Mapping[str, str]) -> str:
    return environ.get(SERVICE_TOKEN_ENV) or environ.get(HUB_TOKEN_ENV) or ""


class ServiceBackend:
    """Runs each request on a sandbox service and streams its output back.

    Args:
        url: the service's base URL, e.g. ``http://127.0.0.1:8765``.
        token: the bearer token; by default ``$CODEDOCK_SERVICE_TOKEN``, else the
            hub's ``$JUPYTERHUB_API_TOKEN``.
    """

    def __init__(self, url: str, token: str | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise InvalidValueError("service_url", url, "an http:// or https:// URL")
        self.url = url.rstrip("/")
        self.token = token if token is not None else _token_from_env(os.environ)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        read_timeout: float | None = 30.0,
        stream: bool = False,
    ) -> Response:
        try:
            response = transport.request(
                method,
                self.url + path,
                headers=self._headers(),
                json_body=body,
                connect_timeout=CONNECT_TIMEOUT,
                read_timeout=read_timeout,
                stream=stream,
            )
        except ConnectFailed as exc:
            raise ServiceUnavailableError(self.url, _reason(exc)) from None
        except TimedOut:
            raise ServiceUnavailableError(self.url, "it did not answer in time") from None
        if response.status_code >= 400:
            _raise_for(self.url, response)
        return response

    def info(self) -> dict[str, Any]:
        """What the service says of itself and of us: user, groups, defaults, ceilings."""
        data: dict[str, Any] = self._request("GET", "/api/info").json()
        return data

    def assignments(self) -> dict[str, Any]:
        """The assignments the service holds that we can see, with their states and our attempts."""
        data: dict[str, Any] = self._request("GET", "/api/assignments").json()
        return data

    def check_assignment(self, name: str, code: str) -> dict[str, Any]:
        """Have the service check ``code`` against assignment ``name``; what we may see of it.

        Waits for the whole check (the hidden cases' verdicts come after a fixed
        time). An interrupt closes the connection, which ends the check there.
        """
        path = f"/api/assignments/{quote(name, safe='')}/check"
        data: dict[str, Any] = self._request(
            "POST", path, body={"code": code}, read_timeout=None
        ).json()
        return data

    def run(
        self,
        request: RunRequest,
        *,
        listener: Listener | None = None,
        stop: threading.Event | None = None,
    ) -> RunResult:
        """Send ``request`` to the service; return the result it reports.

        Output, images, state changes (``"queued"``, ``"running"``) and each case's
        end are passed to ``listener`` from the calling thread, as they arrive.
        """
        listener = listener if listener is not None else Listener()
        body = request_to_json(request)
        if stop is not None and stop.is_set():
            return _interrupted(request, "", "", 0.0)
        response = self._request("POST", "/api/runs", body=body, stream=True, read_timeout=None)
        events: queue.Queue[dict[str, Any] | BaseException | None] = queue.Queue()
        reader = threading.Thread(
            target=_read_events, args=(response, events), name="codedock-service", daemon=True
        )
        reader.start()
        run_id = ""
        shown: dict[str, list[str]] = {"stdout": [], "stderr": []}
        ended: list[CaseEnding] = []
        cancelled_at: float | None = None
        waited = 0.0
        try:
            while True:
                if stop is not None and stop.is_set() and cancelled_at is None:
                    cancelled_at = waited
                    self._cancel(run_id)
                if cancelled_at is not None and waited - cancelled_at > CANCEL_WAIT:
                    break
                try:
                    event = events.get(timeout=POLL)
                except queue.Empty:
                    waited += POLL
                    continue
                if event is None:
                    raise ServiceUnavailableError(self.url, "it closed the run's stream early")
                if isinstance(event, BaseException):
                    raise ServiceUnavailableError(self.url, _reason(event))
                try:
                    received = decode_event(event)
                except InvalidValueError as exc:
                    raise ServiceUnavailableError(
                        self.url, f"it sent a malformed event: {exc}"
                    ) from None
                if received is None:
                    continue
                kind = received.kind
                if kind is Event.ACCEPTED:
                    run_id = received.run_id
                    if stop is not None and stop.is_set():
                        self._cancel(run_id)
                elif kind in (Event.QUEUED, Event.RUNNING):
                    listener.state(str(kind))
                elif kind is Event.OUTPUT:
                    shown.setdefault(received.stream, []).append(received.text)
                    listener.output(received.stream, received.text)
                elif kind is Event.IMAGE:
                    listener.image(received.mime, received.data)
                elif kind is Event.CASE and received.case is not None:
                    ended.append(received.case)
                    listener.case(len(ended) - 1, ended[-1])
                elif kind is Event.RESULT and received.result is not None:
                    _until_the_end(events)
                    return received.result
                elif kind is Event.ERROR:
                    raise _error_from_event(received)
        finally:
            response.close()
        # The service did not confirm the cancel in time; the closed stream ends
        # the run there, and what reached us is all there is.
        return _interrupted(
            request, "".join(shown["stdout"]), "".join(shown["stderr"]), waited, ended
        )

    def _cancel(self, run_id: str) -> None:
        if not run_id:
            return
        # Should the cancel fail, closing the stream stops the run all the same.
        with contextlib.suppress(ConnectFailed, TimedOut):
            transport.request(
                "DELETE",
                f"{self.url}/api/runs/{run_id}",
                headers=self._headers(),
                connect_timeout=CANCEL_WAIT,
                read_timeout=CANCEL_WAIT,
            )


def _read_events(
    response: Response, events: queue.Queue[dict[str, Any] | BaseException | None]
) -> None:
    try:
        for line in _lines(response):
            events.put(json.loads(line))
    except Exception as exc:
        events.put(exc)
        return
    events.put(None)


def _until_the_end(events: queue.Queue[dict[str, Any] | BaseException | None]) -> None:
    # The service frees the run's slot before it ends the stream: waiting for that
    # end means the next cell finds the slot free, rather than queue behind its own
    # finished run. Anything after the result is not ours to read.
    deadline = time.monotonic() + END_WAIT
    with contextlib.suppress(queue.Empty):
        while isinstance(events.get(timeout=max(deadline - time.monotonic(), 0.0)), dict):
            pass


def _lines(response: Response) -> Iterator[bytes]:
    for line in response.iter_lines():
        if line:
            yield line


def _reason(exc: BaseException) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out"):
        if marker in text:
            return marker.lower()
    return type(exc).__name__


def _message(response: Response) -> str:
    try:
        return str(response.json().get("message", response.reason))
    except ValueError:
        return response.reason or f"HTTP {response.status_code}"


def _raise_for(url: str, response: Response) -> None:
    message = _message(response)
    if response.status_code in (401, 403):
        raise ServiceAuthError(url, response.status_code, message)
    if response.status_code >= 500:
        raise ServiceUnavailableError(url, f"HTTP {response.status_code}: {message}")
    retry_after = _retry_after(response) if response.status_code == 429 else None
    if retry_after is not None:
        at = time.strftime("%H:%M:%S", time.localtime(time.time() + retry_after))
        message = f"{message}; try again in {retry_after:g} s (at {at})"
    raise ServiceRefusedError(message, response.status_code, retry_after)


def _retry_after(response: Response) -> float | None:
    """The seconds a 429's ``Retry-After`` asks for (HTTP also allows a date: then None)."""
    value = (response.headers.get("Retry-After") or "").strip()
    return float(min(int(value), 86400)) if value.isdigit() else None


def _error_from_event(event: Received) -> CodedockError:
    message = event.message
    if event.error_kind == "engine":
        return EngineError(f"the sandbox service's engine failed: {message}")
    return ServiceRefusedError(message)


def _interrupted(
    request: RunRequest,
    stdout: str,
    stderr: str,
    duration: float,
    ended: list[CaseEnding] | None = None,
) -> RunResult:
    limits = Limits.of(request.profile.limits, request.limits)
    done = list(ended or ())
    unfinished = cases_not_run(
        (
            (
                case.timeout if case.timeout is not None else limits.timeout,
                case.memory if case.memory is not None else limits.memory,
            )
            for case in request.cases[len(done) :]
        ),
        "interrupted",
    )
    return RunResult(
        status=RunStatus.INTERRUPTED,
        exit_code=None,
        signal=None,
        stdout=stdout,
        stderr=stderr,
        duration=duration,
        truncated=False,
        limits=limits,
        image=request.profile.image,
        cases=(*done, *unfinished),
    )
