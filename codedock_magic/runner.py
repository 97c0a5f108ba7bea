"""Run a snippet of untrusted Python in a fresh sandbox container and say what happened.

:func:`run` is the front door: it turns its arguments into a
:class:`~codedock_magic.core.request.RunRequest` and hands it to a backend (a
:class:`~codedock_magic.local.backend.LocalBackend` over the engine ``$CODEDOCK_ENGINE``
names, Docker by default, unless told otherwise), with Ctrl+C turned into a stop flag
for the length of the run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .core.errors import InvalidValueError
from .core.interrupts import signals_as_flag
from .core.limits import LIMIT_FIELDS, Limits
from .core.profile import DEFAULT_IMAGE, Profile
from .core.request import Backend, Listener, OnImage, OnOutput, OnState, RunRequest, as_bytes
from .core.result import RunResult
from .engines import Engine
from .local.backend import LocalBackend
from .local.display import values_to_json
from .local.pool import Pool
from .remote.client import ServiceBackend, service_from_env

__all__ = [
    "DEFAULT_IMAGE",
    "OnOutput",
    "OnState",
    "choose_backend",
    "default_asked",
    "run",
    "service_backend",
]


def run(
    code: str | bytes,
    *,
    stdin: str | bytes | None = None,
    limits: Limits | None = None,
    image: str = DEFAULT_IMAGE,
    on_output: OnOutput | None = None,
    on_state: OnState | None = None,
    engine: Engine | None = None,
    pool: Pool | None = None,
    backend: Backend | None = None,
    asked: Iterable[str] | None = None,
    values: Mapping[str, Any] | None = None,
    returns: str | None = None,
    files: Mapping[str, str | bytes] | None = None,
    on_image: OnImage | None = None,
) -> RunResult:
    """Run ``code`` with ``python3`` in a fresh sandbox container and return what happened.

    Args:
        code: the Python source to run.
        stdin: what the program reads on standard input (none when omitted).
        limits: resource limits; :class:`Limits` defaults when omitted.
        image: an image with ``python3``; never pulled.
        on_output: called with ``("stdout" | "stderr", text)`` as output arrives,
            up to half the output cap per stream.
        on_state: called with ``"queued"`` or ``"running"`` when a sandbox
            service holds the run back for its user's quota, and when it starts.
        engine: the engine to use; the pool's, else the one ``$CODEDOCK_ENGINE``
            names (Docker by default).
        pool: where to take a container started ahead of time; when it has none
            that fits, a container is started for this run.
        backend: what runs it, which must not be given with ``engine`` or ``pool``.
            By default the sandbox service at ``$CODEDOCK_SERVICE_URL`` when that
            is set (see :class:`~codedock_magic.remote.client.ServiceBackend`), else a
            local backend over ``engine`` and ``pool``.
        asked: which limits (by field name) and whether ``"image"`` the caller
            chose, for a service to know which to fill from its own defaults. By
            default every field of ``limits`` when it is given, none when not,
            and the image when it is not the default.
        values: names bound in the program before its code runs, each to a JSON
            value (sent as JSON, never pickled).
        returns: the name of a variable whose JSON value at the end comes back as
            ``RunResult.value`` (a note says why when it cannot).
        files: files put into ``/sandbox`` before the run, by relative name.
        on_image: called with ``(mime type, bytes)`` for each image the program
            shows (``plt.show()``, ``display(...)``, figures left open), as it comes.

    Ctrl+C (SIGINT on the main thread) while the code runs stops it and returns a
    result with status ``interrupted``. The container is removed on every path.

    Raises:
        InvalidValueError: ``code``, ``stdin`` or ``image`` is malformed, or
            ``backend`` came with ``engine`` or ``pool``.
        EngineError: the engine is unreachable, the image is missing, or the engine
            failed; no container is left behind.
    """
    if asked is None:
        asked = default_asked(limits, image)
    limits = limits if limits is not None else Limits()
    request = RunRequest(
        code=as_bytes(code, "code"),
        stdin=as_bytes(stdin if stdin is not None else b"", "stdin"),
        profile=Profile(image, limits.container),
        limits=limits.run,
        asked=frozenset(asked),
        values=values_to_json(values) if values else b"",
        returns=returns or "",
        files=tuple((name, as_bytes(data, f"file {name}")) for name, data in (files or {}).items()),
    )
    backend = choose_backend(backend, engine=engine, pool=pool)
    with signals_as_flag() as stop:
        listener = Listener(on_output=on_output, on_state=on_state, on_image=on_image)
        return backend.run(request, listener=listener, stop=stop)


def default_asked(limits: Limits | None, image: str) -> set[str]:
    """Which limits and whether the image a caller chose, when it did not say.

    Every limit field when ``limits`` is given, none when not, and ``"image"``
    when ``image`` is not the default.
    """
    asked = set(LIMIT_FIELDS) if limits is not None else set()
    if image != DEFAULT_IMAGE:
        asked.add("image")
    return asked


def choose_backend(
    backend: Backend | None = None,
    *,
    engine: Engine | None = None,
    pool: Pool | None = None,
    service_url: str | None = None,
    service_token: str | None = None,
) -> Backend:
    """The backend a run goes to: the one place a backend is chosen.

    ``backend`` when given. Else the sandbox service at ``service_url`` when that is
    a URL (sent ``service_token``, by default the one in the environment), or, when
    ``service_url`` is None and neither ``engine`` nor ``pool`` is given, the one at
    ``$CODEDOCK_SERVICE_URL`` when that is set. Else a
    :class:`~codedock_magic.local.backend.LocalBackend` over ``engine`` (by default the
    one ``$CODEDOCK_ENGINE`` names) and ``pool``. ``service_url=""`` means this
    process's own engine, whatever the environment says.

    Raises:
        InvalidValueError: ``backend`` came with anything else, ``service_url`` came
            with ``engine`` or ``pool``, or ``service_url`` is not an http(s) URL.
    """
    if backend is not None and (engine is not None or pool is not None or service_url):
        raise InvalidValueError(
            "backend", backend, "given alone, without engine=, pool= or a service"
        )
    if backend is not None:
        return backend
    if service_url and (engine is not None or pool is not None):
        raise InvalidValueError("service_url", service_url, "given without engine= or pool=")
    if service_url:
        return ServiceBackend(service_url, service_token or None)
    if service_url is None and engine is None and pool is None:
        service = service_from_env()
        if service is not None:
            return service
    return LocalBackend(engine, pool=pool)


def service_backend() -> Backend | None:
    """The sandbox service at ``$CODEDOCK_SERVICE_URL``, or None when that is not set."""
    return service_from_env()
