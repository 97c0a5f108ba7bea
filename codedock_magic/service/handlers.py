"""The service's HTTP API.

==========================  ======================================================
``GET  /api/health``        ``{"ok": true}``; the only endpoint without a token
``GET  /api/info``          the caller's name, groups, defaults, ceilings, quotas
``POST /api/runs``          run; the answer streams events, one JSON object a line
``GET  /api/runs``          the caller's runs under way
``GET  /api/runs/ID``       one of them
``DELETE /api/runs/ID``     cancel one of them
``POST /api/warm``          an admin: keep ``size`` containers of ``image`` ready
``GET  /metrics``           Prometheus; ``metrics_token``, or a hub token with
                            ``read:metrics``
==========================  ======================================================

A run's events (:class:`~codedock_magic.remote.wire.Event`) are ``accepted`` (its
id and applied limits), ``queued`` (with its place) when its user's quota holds it
back, ``running``, ``output`` (``stream``, ``text``), ``image`` (``mime``, base64
``data``), ``case`` (``index``, ``case``: one case's end, for a run with cases),
and last ``result`` or ``error``. The run lives as long as the response: when the
client's connection closes, the run is stopped.

Every error is JSON, ``{"message": ...}``, one line that says what to change,
and a 429 says in ``Retry-After`` how many seconds to wait before trying again;
and every malformed request gets a 4xx, never a 500. Every handler reads its
body as a stream, so a request's token is checked from its headers before any
byte of its body is kept (:mod:`.boundary`); only ``POST /api/runs`` of a caller
let in keeps a body, up to the caller's tier's cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
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
from .audit import audit_record, clip
from .auth import AuthError, Caller
from .policy import Tier
from .scheduler import QueueFullError, Slot
from .state import LiveRun, ServiceState
from .unread import Account

__all__ = ["handlers"]

# Past the run's own timeout, the service stops waiting for its backend: the
# engine is stuck, and the run is ended from here.
OVERRUN_GRACE = 30.0
#: Seconds a client has to take a finished run's result whole; past them its
#: connection is closed. Until then the run counts as one of its user's.
DRAIN_TIMEOUT = 60.0
# A result is sent in pieces of about this many bytes, each under the unread bound.
_PIECE = 64 * 1024
# The longest message of an error response.
_MESSAGE = 500
# Integers of more digits than this in a body are refused (no limit needs them,
# and converting a huge one costs quadratic time).
_DIGITS = 30

_log = logging.getLogger("codedock.service")


@web.stream_request_body
class BaseHandler(web.RequestHandler):
    """JSON errors, never a traceback; the caller from the request's token, before its body.

    Every handler reads its body as a stream: tornado then calls :meth:`prepare`
    once the headers are in, and the body arrives after, in :meth:`data_received`.
    A body is kept only once :meth:`keep_body` says so; any other is dropped as it
    comes (and the server caps it at :data:`~.boundary.ANONYMOUS_BODY`).
    """

    #: Whether the endpoint needs a caller: checked in :meth:`prepare`.
    needs_caller = True
    _caller: Caller | None = None
    _body: bytearray | None = None
    #: Seconds a 429 asks the client to wait, sent as ``Retry-After``.
    _retry_after: int | None = None
    _claimed = False

    @property
    def service(self) -> ServiceState:
        """The application that holds the engine and the policy."""
        service: ServiceState = self.settings["codedock_service"]
        return service

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    async def prepare(self) -> None:
        if self.needs_caller:
            self._caller = await self.caller()
            self.service.connections.claim(self.connection.stream, self._caller.name)
            self._claimed = True

    def on_finish(self) -> None:
        if self._claimed:
            self._claimed = False
            self.service.connections.unclaim(self.connection.stream)

    def data_received(self, chunk: bytes) -> None:
        if self._body is not None:
            self._body.extend(chunk)

    def keep_body(self, cap: int) -> None:
        """Keep this request's body, of at most ``cap`` bytes (the connection's cap too)."""
        self.connection.set_max_body_size(cap)
        self._body = bytearray()

    @property
    def connection(self) -> Any:
        """The request's connection: tornado's HTTP/1 connection, the only kind it serves."""
        return self.request.connection

    @property
    def the_caller(self) -> Caller:
        """The caller :meth:`prepare` let in."""
        assert self._caller is not None
        return self._caller

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        message = self._reason
        exc_info = kwargs.get("exc_info")
        if exc_info is not None and isinstance(exc_info[1], web.HTTPError):
            message = exc_info[1].log_message or message
        self.set_header("Content-Type", "application/json")
        if status_code == 429 and self._retry_after is not None:
            self.set_header("Retry-After", str(self._retry_after))
        self.finish(json.dumps({"message": message}))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, web.HTTPError):
            return  # a refusal: the access log has its line
        # Never the request itself: its path and headers are the client's.
        _log.error(
            "failed: %s %s",
            clip(self.request.method or "", 10),
            clip(self.request.path, 100),
            exc_info=(typ, value, tb),
        )

    def fail(self, status: int, message: str) -> NoReturn:
        """End the request with ``status`` and ``message``, as one short line."""
        line = clip(message, _MESSAGE)
        # A 429 says when to retry only where that is known (see :meth:`busy`).
        raise web.HTTPError(status, line.replace("%", "%%"))

    def busy(self, retry_after: float, message: str) -> NoReturn:
        """A 429: ``message``, and try again in ``retry_after`` seconds (1 to 86400)."""
        self._retry_after = min(86400, max(1, math.ceil(retry_after)))
        self.fail(429, message)

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
        """The request's kept body as a JSON object; a 400 when it is not one."""
        data = parse_json(bytes(self._body or b"") or b"null")
        if isinstance(data, str):
            self.fail(400, f"the body is not JSON ({data})")
        if not isinstance(data, dict):
            self.fail(400, "the body must be a JSON object")
        body: dict[str, Any] = data
        return body


def parse_json(raw: bytes) -> Any:
    """``raw`` as JSON, or a ``str`` saying why not.

    Refused: integers of more than 30 digits, numbers out of a float's range,
    NaN and the infinities, and nesting past the interpreter's recursion limit.
    """
    try:
        return json.loads(
            raw,
            parse_int=_bounded_int,
            parse_float=_finite_float,
            parse_constant=_no_constant,
        )
    except RecursionError:
        return "it is nested too deeply"
    except ValueError as exc:  # UnicodeDecodeError too
        return str(exc)


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > _DIGITS:
        raise ValueError(f"an integer of more than {_DIGITS} digits")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("a number out of range")
    return value


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not a number")


class HealthHandler(BaseHandler):
    """Liveness, for the hub and for monitors."""

    needs_caller = False

    def get(self) -> None:
        self.finish({"ok": True, "version": __version__})


class InfoHandler(BaseHandler):
    """What the service applies to the caller."""

    async def get(self) -> None:
        caller = self.the_caller
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

    needs_caller = False

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


class WarmHandler(BaseHandler):
    """An admin warms the service before a class: ``{"image": ..., "size": N}``."""

    async def prepare(self) -> None:
        await super().prepare()
        if not self.service.is_admin(self.the_caller):
            self.fail(
                403,
                f"{self.the_caller.name} may not warm the pools; an admin may "
                "(SandboxService.admin_users or admin_groups)",
            )
        self.keep_body(4096)

    async def post(self) -> None:
        body = self.body_json()
        image = body.get("image", self.service.policy.tier().default_image)
        try:
            size = self.service.check_warm(image, body.get("size"))
        except InvalidValueError as exc:
            self.fail(400, str(exc))
        pool = self.service.warm(image, size)
        _log.info("%s warmed %s to %d", clip(self.the_caller.name), clip(image), size)
        self.finish(
            {"image": image, "size": pool.size, "max_size": pool.max_size, "ready": pool.ready}
        )


class RunHandler(BaseHandler):
    """One of the caller's runs: look at it, or cancel it."""

    async def _own(self, run_id: str) -> LiveRun:
        caller = self.the_caller
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
    _tier: Tier | None = None
    _account: Account | None = None
    _uploading = False
    _gone = False
    # Bytes written to the connection, and of them flushed to the client.
    _written = 0
    _flushed = 0
    #: A refusal decided from the headers, answered once the body is dropped.
    _refusal: tuple[int, str] | None = None

    async def prepare(self) -> None:
        await super().prepare()
        if self.request.method != "POST":
            return
        caller = self.the_caller
        service = self.service
        # A user refused too often is refused at once: their body is read and
        # dropped, never parsed, and nothing is audited.
        wait = service.refusals.wait(caller.name)
        if wait > 0:
            service.refusals.suppress(caller.name)
            service.metrics.refused.labels("rate").inc()
            self._retry_after = max(1, math.ceil(wait))
            self._refusal = (
                429,
                f"too many refused runs of {caller.name}: the service answers the next "
                f"in {math.ceil(wait)} s; change what was refused before you send it again",
            )
        tier = self._tier = service.policy.tier(caller.groups)
        cap = tier.body_cap
        length = self.request.headers.get("Content-Length", "")
        if length and (not length.isdigit() or int(length) > cap):
            if self._refusal is not None:
                self.fail(*self._refusal)  # the connection closes: the body is too large to drop
            self._refused(caller, {}, code=b"", reason="size")
            self.fail(
                413,
                f"the body is {clip(length, 20)} bytes, over the {cap} that code of "
                f"max_code_bytes = {tier.max_code_bytes} and stdin of max_stdin_bytes = "
                f"{tier.max_stdin_bytes} make; send less",
            )
        if self._refusal is None and not service.connections.begin_upload(caller.name):
            self._refusal = (
                429,
                f"{caller.name} is sending too many runs at once; send one at a time",
            )
        if self._refusal is not None:
            # Answered once the body is in, so that the client hears why; the
            # body is dropped as it comes.
            self.connection.set_max_body_size(cap)
            return
        self._uploading = True
        self.keep_body(cap)

    def _end_upload(self) -> None:
        if self._uploading:
            self._uploading = False
            self.service.connections.end_upload(self.the_caller.name)

    def on_finish(self) -> None:
        self._end_upload()
        super().on_finish()

    async def get(self) -> None:
        caller = self.the_caller
        runs = [r.describe() for r in self.service.runs.values() if r.user == caller.name]
        self.finish({"runs": runs})

    def on_connection_close(self) -> None:
        # The client is gone (its kernel died, or it gave up): so is its run.
        self._gone = True
        self._end_upload()
        if self._account is not None:
            self._account.close()
        run = self._run
        if run is not None:
            run.stop.set()
            if run.waiting is not None:
                self.service.scheduler.leave(run.user, run.waiting)

    # -- sending events, under the user's bound on unread bytes ---------------------

    def _event(self, event: dict[str, Any]) -> None:
        """Send a small event from the event loop (counted, never waited for)."""
        line = (json.dumps(event) + "\n").encode()
        if self._account is not None:
            self._account.add(len(line))
        self._write(line)

    def _write(self, data: bytes) -> None:
        """Write counted bytes; they are given back once flushed, or when they never will be."""
        account = self._account
        size = len(data)
        if self._gone or self._finished:
            if account is not None:
                account.give_back(size)
            return
        try:
            self.write(data)
            flushed = self.flush()
        except StreamClosedError:
            if account is not None:
                account.give_back(size)
            return
        self._written += size
        mark = self._written

        # Tornado resolves only the latest write's future: when it resolves,
        # everything written before it has gone too.
        def taken(future: asyncio.Future[None]) -> None:
            if not future.cancelled():
                future.exception()  # a closed stream fails the flush; the close is handled
            if mark > self._flushed:
                if account is not None:
                    account.give_back(mark - self._flushed)
                self._flushed = mark

        flushed.add_done_callback(taken)

    async def _send_last(self, event: dict[str, Any]) -> bool:
        """Send the run's last event, however large, in pieces under the unread bound,
        and wait until the client has taken it all; False when it did not in
        :data:`DRAIN_TIMEOUT` seconds (its connection is then closed)."""
        account = self._account
        assert account is not None
        deadline = asyncio.get_running_loop().time() + DRAIN_TIMEOUT
        piece: list[str] = []
        size = 0
        for part in itertools.chain(json.JSONEncoder().iterencode(event), ["\n"]):
            piece.append(part)
            size += len(part)
            if size < _PIECE:
                continue
            data = "".join(piece).encode()
            piece, size = [], 0
            if not await self._until(_room_for(account, len(data)), deadline):
                return False
            account.add(len(data))
            self._write(data)
        if piece:
            data = "".join(piece).encode()
            account.add(len(data))
            self._write(data)
        return await self._until(lambda: account.pending == 0, deadline)

    async def _until(self, ready: Any, deadline: float) -> bool:
        """Wait until ``ready()``; False when the client went, or did not read by ``deadline``."""
        loop = asyncio.get_running_loop()
        while not ready():
            if self._gone or self._finished:
                return False
            if loop.time() > deadline:
                _log.warning(
                    "closed the connection of %s: it did not take its run's result in %g s",
                    clip(self.the_caller.name),
                    DRAIN_TIMEOUT,
                )
                self.connection.close()
                return False
            await asyncio.sleep(0.02)
        return True

    def _listener(self, stop: Any) -> Listener:
        """What the run's backend says, as events on this stream (from its own thread).

        The backend waits while its user has too much unread, until the client
        takes some or the run is stopped (its events are then dropped).
        """
        loop = asyncio.get_running_loop()
        account = self._account

        def send(event: dict[str, Any]) -> None:
            line = (json.dumps(event) + "\n").encode()
            if account is not None and not account.take(len(line), stop):
                return
            loop.call_soon_threadsafe(self._write, line)

        return Listener(
            on_output=lambda stream, text: send(output_event(stream, text)),
            on_image=lambda mime, data: send(image_event(mime, data)),
            on_case=lambda index, ending: send(case_event(index, ending)),
        )

    # -- a run ----------------------------------------------------------------------

    async def post(self) -> None:
        if self._refusal is not None:
            self.fail(*self._refusal)
        started = time.monotonic()
        self._end_upload()
        caller = self.the_caller
        tier = self._tier
        assert tier is not None
        data = parse_json(bytes(self._body or b"") or b"null")
        self._body = None
        if isinstance(data, str) or not isinstance(data, dict):
            self._refused(caller, {}, code=b"", reason="malformed")
            if isinstance(data, str):
                self.fail(400, f"the body is not JSON ({data})")
            self.fail(400, "the body must be a JSON object")
        body: dict[str, Any] = data
        request = self._parse(caller, body, tier)
        admitted = self._admit(caller, body, tier, request)
        await self._stream(caller, body, request, admitted, started)

    def _parse(self, caller: Caller, body: dict[str, Any], tier: Tier) -> RunRequest:
        """The run the body asks for, settled by the caller's tier; a 4xx when it cannot be."""
        try:
            request = request_from_json(body, tier.apply)
            tier.check_cases(request.cases)
            # Each case's memory against its container's, before anything starts.
            timeouts = [case_limits(request, case)[0] for case in request.cases]
            whole = (
                sum(timeouts)
                if timeouts
                else Limits.of(request.profile.limits, request.limits).timeout
            )
            tier.check_run_seconds(whole)
        except ServiceRefusedError as exc:
            self._refused(caller, body, code=_code_of(body), reason="ceiling")
            self.fail(exc.status, str(exc))
        except InvalidValueError as exc:
            self._refused(caller, body, code=b"", reason="malformed")
            self.fail(400, str(exc))
        except (ValueError, TypeError, ArithmeticError, RecursionError, KeyError) as exc:
            # Whatever else a malformed body makes the parser meet is the body's fault.
            self._refused(caller, body, code=b"", reason="malformed")
            self.fail(400, f"the body is malformed: {type(exc).__name__}: {exc}")
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
            self.busy(self._slot_frees_in(caller.name), str(exc))

    def _slot_frees_in(self, user: str) -> float:
        """Seconds until a slot of ``user`` frees: when their soonest run times out.

        The service ends each run at its timeout, so a run sent again then finds
        room (unless more came meanwhile). With none of theirs running, any run's.
        """
        now = time.monotonic()
        running = [r for r in self.service.runs.values() if r.deadline is not None]
        own = [r for r in running if r.user == user] or running
        deadlines = [r.deadline - now for r in own if r.deadline is not None]
        return min(deadlines) if deadlines else 1.0

    async def _stream(
        self,
        caller: Caller,
        body: dict[str, Any],
        request: RunRequest,
        admitted: Slot | asyncio.Future[None],
        started: float,
    ) -> None:
        """Wait for a slot, run, and stream the run's events to its end.

        The slot stays the run's until its client has taken the last event, so a
        client that does not read holds its user's quota, not the service's memory.
        """
        service = self.service
        limits = Limits.of(request.profile.limits, request.limits)
        image = request.profile.image
        run = self._run = LiveRun(
            id=secrets.token_hex(8), user=caller.name, image=image, created=time.time()
        )
        service.runs[run.id] = run
        account = self._account = service.unread.account(caller.name)
        if self._gone:
            account.close()
        # The one choice of a run or a run with cases, heard by this stream.
        conversation = conversation_for(request, self._listener(run.stop), run.stop)
        # Events are small and each matters at once: without this, Nagle's algorithm
        # holds one back until the client acknowledges the last (up to 40 ms).
        stream = getattr(self.request.connection, "stream", None)
        if stream is not None:
            stream.set_nodelay(True)
        self.set_header("Content-Type", "application/x-ndjson")
        self._event(accepted_event(run.id, caller.name, image, limits))
        slot = admitted if isinstance(admitted, Slot) else None
        try:
            if not isinstance(admitted, Slot):
                slot = await self._wait_for_slot(run, admitted)
            last, result, reason = await self._run_in_slot(caller, run, conversation, slot)
            self._audit_run(run, caller, body, request.code, limits, result, started, reason)
            run.state = "sending"
            await self._send_last(last)
        finally:
            if slot is not None:
                service.scheduler.release(slot)
            service.runs.pop(run.id, None)
            account.close()
        if not self._finished and not self._gone:
            with contextlib.suppress(StreamClosedError):
                self.finish()

    async def _wait_for_slot(self, run: LiveRun, waiting: asyncio.Future[None]) -> Slot | None:
        """The slot the queue grants; None when the run was cancelled while it waited."""
        service = self.service
        run.waiting = waiting
        service.metrics.queued.set(service.scheduler.queued)
        self._event(queued_event(service.scheduler.position(run.user, waiting)))
        try:
            await waiting
            return Slot(run.user)
        except asyncio.CancelledError:
            return None  # cancelled, or its client went away, while it waited
        finally:
            run.waiting = None
            service.metrics.queued.set(service.scheduler.queued)

    async def _run_in_slot(
        self, caller: Caller, run: LiveRun, conversation: Conversation, slot: Slot | None
    ) -> tuple[dict[str, Any], RunResult | None, str]:
        """Run when there is a slot; the last event, the result and why there is none."""
        service = self.service
        if run.stop.is_set() or slot is None:
            result = conversation.not_started()
            return result_event(result), result, ""
        run.state = "running"
        run.deadline = time.monotonic() + conversation.longest
        self._event(running_event())
        # The warm pool serves one run per user at a time: a user's further
        # runs at once start cold, and in turn, so that one user's flood can
        # neither drain the pool nor take the machine from everyone else.
        warm = service.scheduler.running(caller.name) <= 1
        try:
            result = await self._run_backend(conversation, run, warm=warm)
        except EngineError as exc:
            return error_event("engine", str(exc)), None, str(exc)
        return result_event(result), result, ""

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
        """Count and audit a refusal, as the user's refusal budget allows."""
        service = self.service
        service.metrics.refused.labels(reason).inc()
        suppressed = service.refusals.take(caller.name)
        record = audit_record(
            user=caller.name,
            image=clip(body.get("image") or ""),
            code=code,
            limits_requested=body.get("limits") or {},
            limits_applied=None,
            status="refused",
            reason=reason,
        )
        if suppressed:
            record["suppressed"] = suppressed
        service.audit.write(record)

    def _audit_run(
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


def _room_for(account: Account, size: int) -> Any:
    return lambda: account.has_room(size)


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
        (r"/api/warm", WarmHandler),
        (r"/metrics", MetricsHandler),
    ]
