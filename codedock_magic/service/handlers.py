"""The service's HTTP API.

==========================  ======================================================
``GET  /api/health``        ``{"ok": true}``; the only endpoint without a token
``GET  /api/info``          the caller's name, groups, defaults, ceilings, quotas
``POST /api/runs``          run; the answer streams events, one JSON object a line
``GET  /api/runs``          the caller's runs under way
``GET  /api/runs/ID``       one of them
``DELETE /api/runs/ID``     cancel one of them
``GET  /metrics``           Prometheus; ``metrics_token``, or a hub token with
                            ``read:metrics``
==========================  ======================================================

A run's events (:class:`~codedock_magic.remote.wire.Event`) are ``accepted`` (its
id and applied limits), ``queued`` (with its place) when its user's quota holds it
back, ``running``, ``output`` (``stream``, ``text``), ``image`` (``mime``, base64
``data``), ``case`` (``index``, ``case``: one case's end, for a run with cases),
and last ``result`` or ``error``. The run lives as long as the response: when the
client's connection closes, the run is stopped.

Every error is JSON, ``{"message": ...}``, one line that says what to change.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from typing import Any, NoReturn

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from tornado import web
from tornado.iostream import StreamClosedError

from ..core.errors import EngineError, InvalidValueError, ServiceRefusedError
from ..core.limits import Limits
from ..core.request import Listener, RunRequest
from ..core.result import RunResult
from ..core.version import __version__
from ..local.backend import Conversation, conversation_for
from ..local.caserun import case_limits
from ..remote.wire import (
    accepted_event,
    case_event,
    decode_bytes,
    error_event,
    image_event,
    limits_to_json,
    output_event,
    queued_event,
    request_from_json,
    result_event,
    running_event,
)
from .audit import audit_record
from .auth import AuthError, Caller
from .policy import Tier
from .scheduler import QueueFullError, Slot
from .state import LiveRun, ServiceState

__all__ = ["handlers"]

# Past the run's own timeout, the service stops waiting for its backend: the
# engine is stuck, and the run is ended from here.
OVERRUN_GRACE = 30.0


class BaseHandler(web.RequestHandler):
    """JSON errors, never a traceback; the caller from the request's token."""

    @property
    def service(self) -> ServiceState:
        """The application that holds the engine and the policy."""
        service: ServiceState = self.settings["codedock_service"]
        return service

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        message = self._reason
        exc_info = kwargs.get("exc_info")
        if exc_info is not None and isinstance(exc_info[1], web.HTTPError):
            message = exc_info[1].log_message or message
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": message}))

    def fail(self, status: int, message: str) -> NoReturn:
        """End the request with ``status`` and ``message``."""
        raise web.HTTPError(status, message.replace("%", "%%"))

    def token(self) -> str:
        """The bearer token of the request, or ``""``."""
        header = self.request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() in ("bearer", "token"):
            return value.strip()
        return ""

    async def caller(self) -> Caller:
        """Who is asking; a 401 or 403 when the token does not let them in."""
        try:
            return await self.service.tokens.caller(self.token())
        except AuthError as exc:
            self.fail(exc.status, str(exc))

    def body_json(self) -> dict[str, Any]:
        """The request's body as a JSON object; a 400 when it is not one."""
        try:
            data: Any = json.loads(self.request.body or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            self.fail(400, f"the body is not JSON ({exc})")
        if not isinstance(data, dict):
            self.fail(400, "the body must be a JSON object")
        body: dict[str, Any] = data
        return body


class HealthHandler(BaseHandler):
    """Liveness, for the hub and for monitors."""

    def get(self) -> None:
        self.finish({"ok": True, "version": __version__})


class InfoHandler(BaseHandler):
    """What the service applies to the caller."""

    async def get(self) -> None:
        caller = await self.caller()
        tier = self.service.policy.tier(caller.groups)
        self.finish(
            {
                "service": "codedock",
                "version": __version__,
                "user": caller.name,
                "groups": list(caller.groups),
                **tier.describe(),
                "running": sum(1 for r in self.service.runs.values() if r.user == caller.name),
            }
        )


class MetricsHandler(BaseHandler):
    """Prometheus metrics for whoever holds the metrics token or ``read:metrics``."""

    async def get(self) -> None:
        token = self.token()
        wanted = self.service.metrics_token
        allowed = bool(wanted) and secrets.compare_digest(wanted.encode(), token.encode())
        if not allowed and self.service.tokens.hub_auth is not None and token:
            try:
                allowed = await self.service.tokens.may_read_metrics(token)
            except AuthError as exc:
                self.fail(exc.status, str(exc))
            if not allowed:
                self.fail(403, "the token lacks read:metrics")
        if not allowed:
            self.fail(401, "send the service's metrics_token as 'Authorization: Bearer TOKEN'")
        self.service.metrics.queued.set(self.service.scheduler.queued)
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest(self.service.metrics.registry))


class RunHandler(BaseHandler):
    """One of the caller's runs: look at it, or cancel it."""

    async def _own(self, run_id: str) -> LiveRun:
        caller = await self.caller()
        run = self.service.runs.get(run_id)
        # Another user's run is as absent as one that never was.
        if run is None or run.user != caller.name:
            self.fail(404, f"no run {run_id} of {caller.name} is under way")
        return run

    async def get(self, run_id: str) -> None:
        run = await self._own(run_id)
        self.finish(run.describe())

    async def delete(self, run_id: str) -> None:
        run = await self._own(run_id)
        run.stop.set()
        if run.waiting is not None:
            self.service.scheduler.leave(run.user, run.waiting)
        self.set_status(204)
        self.finish()


class RunsHandler(BaseHandler):
    """Start a run and stream it; or list the caller's runs."""

    _run: LiveRun | None = None
    _caller: Caller | None = None
    _gone = False

    async def get(self) -> None:
        caller = await self.caller()
        runs = [r.describe() for r in self.service.runs.values() if r.user == caller.name]
        self.finish({"runs": runs})

    def on_connection_close(self) -> None:
        # The client is gone (its kernel died, or it gave up): so is its run.
        self._gone = True
        run = self._run
        if run is not None:
            run.stop.set()
            if run.waiting is not None:
                self.service.scheduler.leave(run.user, run.waiting)

    def _event(self, event: dict[str, Any]) -> None:
        if self._gone or self._finished:
            return
        try:
            self.write(json.dumps(event) + "\n")
            flushed = self.flush()
        except StreamClosedError:
            return
        # A closed stream fails the flush; the close itself is handled above.
        flushed.add_done_callback(lambda future: future.exception())

    async def post(self) -> None:
        started = time.monotonic()
        caller = self._caller = await self.caller()
        body = self.body_json()
        tier = self.service.policy.tier(caller.groups)
        request = self._parse(caller, body, tier)
        admitted = self._admit(caller, body, tier, request)
        await self._stream(caller, body, request, admitted, started)

    def _parse(self, caller: Caller, body: dict[str, Any], tier: Tier) -> RunRequest:
        """The run the body asks for, settled by the caller's tier; a 4xx when it cannot be."""
        try:
            request = request_from_json(body, tier.apply)
            tier.check_cases(request.cases)
            # Each case's memory against its container's, before anything starts.
            for case in request.cases:
                case_limits(request, case)
        except InvalidValueError as exc:
            self.fail(400, str(exc))
        except ServiceRefusedError as exc:
            self._refused(caller, body, code=_code_of(body), reason="ceiling")
            self.fail(exc.status, str(exc))
        return request

    def _admit(
        self, caller: Caller, body: dict[str, Any], tier: Tier, request: RunRequest
    ) -> Slot | asyncio.Future[None]:
        """A slot, or a place in the caller's queue; a 413 or 429 when neither is to be had."""
        sent = (
            request.stdin
            + b"".join(case.stdin for case in request.cases)
            + request.values
            + b"".join(data for _, data in request.files)
        )
        for name, data, cap in (
            ("code", request.code, tier.max_code_bytes),
            ("stdin", sent, tier.max_stdin_bytes),
        ):
            if len(data) > cap:
                self._refused(caller, body, code=request.code, reason="size")
                self.fail(
                    413,
                    f"the {name} is {len(data)} bytes, over the service's max_{name}_bytes "
                    f"= {cap}; send less",
                )
        try:
            return self.service.scheduler.admit(
                caller.name, max_concurrent=tier.max_concurrent, max_queued=tier.max_queued
            )
        except QueueFullError as exc:
            self._refused(caller, body, code=request.code, reason="queue")
            self.fail(429, str(exc))

    async def _stream(
        self,
        caller: Caller,
        body: dict[str, Any],
        request: RunRequest,
        admitted: Slot | asyncio.Future[None],
        started: float,
    ) -> None:
        """Wait for a slot, run, and stream the run's events to its end."""
        service = self.service
        code = request.code
        limits = Limits.of(request.profile.limits, request.limits)
        image = request.profile.image
        run = self._run = LiveRun(
            id=secrets.token_hex(8), user=caller.name, image=image, created=time.time()
        )
        service.runs[run.id] = run
        # The one choice of a run or a run with cases, heard by this stream.
        conversation = conversation_for(request, self._listener(), run.stop)
        # Events are small and each matters at once: without this, Nagle's algorithm
        # holds one back until the client acknowledges the last (up to 40 ms).
        stream = getattr(self.request.connection, "stream", None)
        if stream is not None:
            stream.set_nodelay(True)
        self.set_header("Content-Type", "application/x-ndjson")
        self._event(accepted_event(run.id, caller.name, image, limits))
        slot: Slot | None = None
        try:
            if isinstance(admitted, Slot):
                slot = admitted
            else:
                run.waiting = admitted
                service.metrics.queued.set(service.scheduler.queued)
                self._event(queued_event(service.scheduler.position(caller.name, admitted)))
                try:
                    await admitted
                    slot = Slot(caller.name)
                except asyncio.CancelledError:
                    pass  # cancelled, or its client went away, while it waited
                finally:
                    run.waiting = None
                    service.metrics.queued.set(service.scheduler.queued)
            if run.stop.is_set() or slot is None:
                result = conversation.not_started()
                self._event(result_event(result))
                self._finish_run(run, caller, body, code, limits, result, started)
                return
            run.state = "running"
            self._event(running_event())
            # The warm pool serves one run per user at a time: a user's further
            # runs at once start cold, and in turn, so that one user's flood can
            # neither drain the pool nor take the machine from everyone else.
            warm = service.scheduler.running(caller.name) <= 1
            result = await self._run_backend(conversation, run, warm=warm)
        except EngineError as exc:
            self._event(error_event("engine", str(exc)))
            self._finish_run(run, caller, body, code, limits, None, started, reason=str(exc))
            return
        finally:
            if slot is not None:
                service.scheduler.release(slot)
            service.runs.pop(run.id, None)
        self._event(result_event(result))
        self._finish_run(run, caller, body, code, limits, result, started)

    def _listener(self) -> Listener:
        """What the run's backend says, as events on this stream (from its own thread)."""
        loop = asyncio.get_running_loop()

        def send(event: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(self._event, event)

        return Listener(
            on_output=lambda stream, text: send(output_event(stream, text)),
            on_image=lambda mime, data: send(image_event(mime, data)),
            on_case=lambda index, ending: send(case_event(index, ending)),
        )

    async def _run_backend(
        self, conversation: Conversation, run: LiveRun, *, warm: bool
    ) -> RunResult:
        service = self.service
        loop = asyncio.get_running_loop()
        backend = service.backend if warm else service.cold_starts.backend(run.user)
        service.metrics.active.inc()
        try:
            future = loop.run_in_executor(service.executor, lambda: backend.execute(conversation))
            try:
                # The service's own wall clock: whatever happens in the engine, the
                # run ends soon after its timeout.
                longest = conversation.longest
                return await asyncio.wait_for(asyncio.shield(future), longest + OVERRUN_GRACE)
            except asyncio.TimeoutError:
                run.stop.set()
                return await future
        finally:
            service.metrics.active.dec()

    def _refused(self, caller: Caller, body: dict[str, Any], *, code: bytes, reason: str) -> None:
        self.service.metrics.refused.labels(reason).inc()
        requested = body.get("limits")
        self.service.audit.write(
            audit_record(
                user=caller.name,
                image=str(body.get("image") or ""),
                code=code,
                limits_requested=requested if isinstance(requested, dict) else {},
                limits_applied=None,
                status="refused",
                reason=reason,
            )
        )

    def _finish_run(
        self,
        run: LiveRun,
        caller: Caller,
        body: dict[str, Any],
        code: bytes,
        limits: Limits,
        result: RunResult | None,
        started: float,
        reason: str = "",
    ) -> None:
        duration = time.monotonic() - started
        status = result.status.value if result is not None else ("error" if reason else "cancelled")
        self.service.metrics.runs.labels(status).inc()
        self.service.metrics.duration.observe(duration)
        self.service.audit.write(
            audit_record(
                user=caller.name,
                image=run.image,
                code=code,
                limits_requested=body.get("limits") or {},
                limits_applied=limits_to_json(limits),
                status=status,
                exit_code=result.exit_code if result is not None else None,
                duration=result.duration if result is not None else duration,
                output_bytes=(
                    len(result.stdout.encode()) + len(result.stderr.encode())
                    if result is not None
                    else 0
                ),
                reason=reason,
            )
        )
        if not self._finished and not self._gone:
            with contextlib.suppress(StreamClosedError):
                self.finish()


def _code_of(body: dict[str, Any]) -> bytes:
    """The code of a run's body, for the audit of a refused run; empty when malformed."""
    try:
        return decode_bytes(body.get("code"), "code")
    except InvalidValueError:
        return b""


def handlers() -> list[tuple[str, type[web.RequestHandler]]]:
    """The routes of the API."""
    return [
        (r"/api/health", HealthHandler),
        (r"/api/info", InfoHandler),
        (r"/api/runs", RunsHandler),
        (r"/api/runs/([0-9a-f]{1,64})", RunHandler),
        (r"/metrics", MetricsHandler),
    ]
