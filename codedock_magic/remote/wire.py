"""The sandbox service's protocol: the JSON forms of a run, its events and its result.

One module owns them, and both the service's handlers and the kernel's client
(:class:`~codedock_magic.remote.client.ServiceBackend`) encode and decode with
these functions, so the two cannot drift apart. Bytes (code, stdin, images,
files) travel as base64: source need not be UTF-8 and stdin may be binary. A
run's limits travel as only the fields the caller asked for, so the service can
fill the rest from its own defaults.

The answer to ``POST /api/runs`` is a stream of events, one JSON object a line,
each named by its ``event`` field (:class:`Event`).
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..core.budget import MAX_NOTES
from ..core.errors import CodedockError, InvalidValueError
from ..core.limits import LIMIT_FIELDS, Limits
from ..core.profile import Profile
from ..core.request import CaseInput, RunRequest
from ..core.result import CaseEnding, Ending, RunResult, RunStatus

__all__ = [
    "RUN_FIELDS",
    "Event",
    "Received",
    "Settle",
    "UnknownFieldError",
    "accepted_event",
    "case_event",
    "case_from_json",
    "case_to_json",
    "cases_from_json",
    "decode_bytes",
    "decode_event",
    "encode_bytes",
    "error_event",
    "event_of",
    "extras_from_json",
    "image_event",
    "limits_to_json",
    "output_event",
    "queued_event",
    "request_from_json",
    "request_to_json",
    "result_event",
    "result_from_json",
    "result_to_json",
    "run_to_json",
    "running_event",
]

#: The fields a run request's JSON body may have.
RUN_FIELDS = ("code", "stdin", "image", "limits", "cases", "values", "returns", "files")

#: How the service settles a run's limits and image: from the limits asked for
#: (a JSON object of some of the limits' fields) and the image asked for (``None``
#: when not), the limits and the image the run gets, or an error.
Settle = Callable[[Mapping[str, Any], "str | None"], tuple[Limits, str]]


class Event(str, enum.Enum):
    """The events of a run's stream, in the order they may come."""

    #: The run has an id; with its user, image and applied limits.
    ACCEPTED = "accepted"
    #: Its user's quota holds it back; with its ``position``.
    QUEUED = "queued"
    #: It has a slot and goes to a sandbox.
    RUNNING = "running"
    #: ``stream`` (``stdout`` or ``stderr``) brought ``text``.
    OUTPUT = "output"
    #: The program showed an image: ``mime`` and base64 ``data``.
    IMAGE = "image"
    #: One case of a run with cases ended: its ``index`` and its ``case``.
    CASE = "case"
    #: The run's ``result``; the last event.
    RESULT = "result"
    #: The service failed the run: ``kind`` (``engine``) and ``message``; the last event.
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


class UnknownFieldError(InvalidValueError):
    """A run's body has a field that no run has."""

    def __init__(self, field: str) -> None:
        CodedockError.__init__(self, f"unknown field {field!r}; a run has {', '.join(RUN_FIELDS)}")
        self.name, self.value, self.expected = "field", field, f"one of {', '.join(RUN_FIELDS)}"
        self._init_args = (field,)


def encode_bytes(data: bytes) -> str:
    """Bytes as base64 text."""
    return base64.b64encode(data).decode("ascii")


def decode_bytes(text: object, name: str) -> bytes:
    """Base64 text back to bytes; anything else is refused, naming ``name``."""
    if not isinstance(text, str):
        raise InvalidValueError(name, type(text).__name__, "base64 text")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise InvalidValueError(name, text[:40], "base64 text") from None


#: What reading a malformed JSON value can raise: a missing key, a wrong type, a
#: bad number, and int() of an infinite float (a JSON 1e999), which overflows.
MALFORMED = (KeyError, TypeError, ValueError, AttributeError, ArithmeticError, RecursionError)


def limits_to_json(limits: Limits, fields: Iterable[str] = LIMIT_FIELDS) -> dict[str, Any]:
    """The chosen fields of ``limits`` as JSON numbers (sizes in bytes)."""
    wanted = set(fields)
    return {name: getattr(limits, name) for name in LIMIT_FIELDS if name in wanted}


def run_to_json(
    code: bytes,
    stdin: bytes,
    image: str | None,
    limits: Limits,
    asked: Iterable[str],
    cases: Iterable[CaseInput] = (),
    *,
    values: bytes = b"",
    returns: str = "",
    files: Iterable[tuple[str, bytes]] = (),
) -> dict[str, Any]:
    """The body of ``POST /api/runs``: ``image`` is ``None`` when the caller did not choose one.

    Cases travel as their inputs and their own limits only: what they are expected
    to print never leaves the caller.
    """
    body: dict[str, Any] = {
        "code": encode_bytes(code),
        "stdin": encode_bytes(stdin),
        "limits": limits_to_json(limits, asked),
    }
    if image is not None:
        body["image"] = image
    listed = [
        {"stdin": encode_bytes(case.stdin), "timeout": case.timeout, "memory": case.memory}
        for case in cases
    ]
    if listed:
        body["cases"] = listed
    if values:
        body["values"] = values.decode("utf-8")
    if returns:
        body["returns"] = returns
    sent = [{"name": name, "data": encode_bytes(data)} for name, data in files]
    if sent:
        body["files"] = sent
    return body


def request_to_json(request: RunRequest) -> dict[str, Any]:
    """The body of ``POST /api/runs`` for ``request``: only the limits (and image) it asked for."""
    asked = request.asked if request.asked is not None else frozenset(LIMIT_FIELDS) | {"image"}
    return run_to_json(
        request.code,
        request.stdin,
        request.profile.image if "image" in asked else None,
        Limits.of(request.profile.limits, request.limits),
        asked,
        request.cases,
        values=request.values,
        returns=request.returns,
        files=request.files,
    )


def request_from_json(body: Mapping[str, Any], settle: Settle) -> RunRequest:
    """The run that :func:`request_to_json` wrote, with its limits settled by ``settle``.

    The request's ``asked`` names the limits and the image the body asked for.

    Raises:
        InvalidValueError: a field is unknown, missing or malformed, or ``settle``
            refused a value as malformed.
        ServiceRefusedError: ``settle`` refused an asked value (over its ceiling).
    """
    unknown = sorted(set(body) - set(RUN_FIELDS))
    if unknown:
        raise UnknownFieldError(unknown[0])
    requested = body.get("limits", {})
    image = body.get("image")
    if not isinstance(requested, dict):
        raise InvalidValueError("limits", requested, "a JSON object")
    if image is not None and not isinstance(image, str):
        raise InvalidValueError("image", image, "an image name")
    code = decode_bytes(body.get("code"), "code")
    stdin = decode_bytes(body.get("stdin", ""), "stdin")
    cases = cases_from_json(body.get("cases"))
    values, returns, files = extras_from_json(body)
    limits, image_used = settle(requested, image)
    return RunRequest(
        code=code,
        stdin=stdin,
        profile=Profile(image_used, limits.container),
        limits=limits.run,
        asked=frozenset(requested) | ({"image"} if image is not None else frozenset()),
        cases=cases,
        values=values,
        returns=returns,
        files=files,
    )


def extras_from_json(body: Mapping[str, Any]) -> tuple[bytes, str, tuple[tuple[str, bytes], ...]]:
    """The values (JSON text), the name to return and the files of a run's body, checked.

    Raises:
        InvalidValueError: one of them is malformed.
    """
    values = body.get("values", "")
    if not isinstance(values, str):
        raise InvalidValueError("values", type(values).__name__, "JSON text of an object")
    if values:
        try:
            parsed = json.loads(values)
        except ValueError:
            raise InvalidValueError("values", values[:40], "JSON text of an object") from None
        if not isinstance(parsed, dict):
            raise InvalidValueError("values", values[:40], "JSON text of an object")
    returns = body.get("returns", "")
    if not isinstance(returns, str):
        raise InvalidValueError("returns", returns, "a variable name")
    files = body.get("files", [])
    if not isinstance(files, list):
        raise InvalidValueError("files", type(files).__name__, "a list")
    checked = []
    for item in files:
        if not isinstance(item, dict) or set(item) != {"name", "data"}:
            raise InvalidValueError("files[]", item, "an object of name and data")
        name = item["name"]
        if not isinstance(name, str):
            raise InvalidValueError("files[].name", name, "a file name")
        checked.append((name, decode_bytes(item["data"], f"file {name}")))
    return values.encode("utf-8"), returns, tuple(checked)


def cases_from_json(data: object) -> tuple[CaseInput, ...]:
    """The cases of a run's body, checked.

    Raises:
        InvalidValueError: the list or one of its cases is malformed.
    """
    if data is None:
        return ()
    if not isinstance(data, list):
        raise InvalidValueError("cases", type(data).__name__, "a list")
    cases = []
    for number, item in enumerate(data, 1):
        name = f"cases[{number}]"
        if not isinstance(item, dict) or set(item) - {"stdin", "timeout", "memory"}:
            raise InvalidValueError(name, item, "an object of stdin, timeout and memory")
        timeout, memory = item.get("timeout"), item.get("memory")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0
        ):
            raise InvalidValueError(f"{name}.timeout", timeout, "a number of seconds above 0")
        if memory is not None and (
            isinstance(memory, bool) or not isinstance(memory, int) or memory <= 0
        ):
            raise InvalidValueError(f"{name}.memory", memory, "a number of bytes")
        cases.append(
            CaseInput(
                stdin=decode_bytes(item.get("stdin", ""), f"{name}.stdin"),
                timeout=None if timeout is None else float(timeout),
                memory=memory,
            )
        )
    return tuple(cases)


def _ending_to_json(ended: Ending) -> dict[str, Any]:
    # What a run and a case both end with.
    return {
        "status": ended.status.value,
        "exit_code": ended.exit_code,
        "signal": ended.signal,
        "stdout": ended.stdout,
        "stderr": ended.stderr,
        "duration": ended.duration,
        "truncated": ended.truncated,
    }


def _ending_from_json(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "status": RunStatus(data["status"]),
        "exit_code": data["exit_code"],
        "signal": data["signal"],
        "stdout": str(data["stdout"]),
        "stderr": str(data["stderr"]),
        "duration": float(data["duration"]),
        "truncated": bool(data["truncated"]),
    }


def case_to_json(ending: CaseEnding) -> dict[str, Any]:
    """Everything in a :class:`CaseEnding`, as JSON values."""
    return {
        **_ending_to_json(ending),
        "timeout": ending.timeout,
        "memory": ending.memory,
        "note": ending.note,
    }


def case_from_json(data: Mapping[str, Any]) -> CaseEnding:
    """The :class:`CaseEnding` that :func:`case_to_json` wrote.

    Raises:
        InvalidValueError: a field is missing or malformed.
    """
    try:
        return CaseEnding(
            **_ending_from_json(data),
            timeout=float(data["timeout"]),
            memory=int(data["memory"]),
            note=str(data.get("note", "")),
        )
    except MALFORMED as exc:
        raise InvalidValueError("case", str(exc)[:80], "a case's end from the service") from None


def result_to_json(result: RunResult) -> dict[str, Any]:
    """Everything in a :class:`RunResult`, as JSON values."""
    return {
        **_ending_to_json(result),
        "limits": limits_to_json(result.limits),
        "image": result.image,
        "cases": [case_to_json(case) for case in result.cases],
        "cpu_seconds": result.cpu_seconds,
        "peak_memory": result.peak_memory,
        "images": [{"mime": mime, "data": encode_bytes(data)} for mime, data in result.images],
        "image_positions": list(result.image_positions),
        "files": {name: encode_bytes(data) for name, data in result.files.items()},
        "value": result.value,
        "returned": result.returned,
        # A run's notes are bounded where they are made; a result built elsewhere is
        # held to the same bound on the wire.
        "notes": list(result.notes[: MAX_NOTES + 1]),
    }


def result_from_json(data: Mapping[str, Any]) -> RunResult:
    """The :class:`RunResult` that :func:`result_to_json` wrote.

    Raises:
        InvalidValueError: a field is missing or malformed.
    """
    try:
        return RunResult(
            **_ending_from_json(data),
            limits=Limits(**{name: data["limits"][name] for name in LIMIT_FIELDS}),
            image=str(data["image"]),
            cases=tuple(case_from_json(case) for case in data.get("cases") or ()),
            cpu_seconds=_optional(data.get("cpu_seconds"), float),
            peak_memory=_optional(data.get("peak_memory"), int),
            images=tuple(
                (str(image["mime"]), decode_bytes(image["data"], "image"))
                for image in data.get("images") or ()
            ),
            image_positions=tuple(int(at) for at in data.get("image_positions") or ()),
            files={
                str(name): decode_bytes(text, f"file {name}")
                for name, text in (data.get("files") or {}).items()
            },
            value=data.get("value"),
            returned=bool(data.get("returned", False)),
            notes=tuple(str(note) for note in data.get("notes") or ()),
        )
    except MALFORMED as exc:
        if isinstance(exc, InvalidValueError):
            raise
        raise InvalidValueError("result", str(exc)[:80], "a run result from the service") from None


def _optional(value: Any, kind: type[Any]) -> Any:
    return None if value is None else kind(value)


# -- events ------------------------------------------------------------------


def accepted_event(run_id: str, user: str, image: str, limits: Limits) -> dict[str, Any]:
    """The run has an id, and these are its user, image and applied limits."""
    return {
        "event": Event.ACCEPTED.value,
        "id": run_id,
        "user": user,
        "image": image,
        "limits": limits_to_json(limits),
    }


def queued_event(position: int) -> dict[str, Any]:
    """The run waits for a slot, at ``position`` in its user's queue."""
    return {"event": Event.QUEUED.value, "position": position}


def running_event() -> dict[str, Any]:
    """The run has a slot."""
    return {"event": Event.RUNNING.value}


def output_event(stream: str, text: str) -> dict[str, Any]:
    """``stream`` brought ``text``."""
    return {"event": Event.OUTPUT.value, "stream": stream, "text": text}


def image_event(mime: str, data: bytes) -> dict[str, Any]:
    """The program showed an image."""
    return {"event": Event.IMAGE.value, "mime": mime, "data": encode_bytes(data)}


def case_event(index: int, ending: CaseEnding) -> dict[str, Any]:
    """Case ``index`` ended."""
    return {"event": Event.CASE.value, "index": index, "case": case_to_json(ending)}


def result_event(result: RunResult) -> dict[str, Any]:
    """The run's end."""
    return {"event": Event.RESULT.value, "result": result_to_json(result)}


def error_event(kind: str, message: str) -> dict[str, Any]:
    """The service failed the run (``kind`` is ``engine`` for its engine's failures)."""
    return {"event": Event.ERROR.value, "kind": kind, "message": message}


def event_of(data: Mapping[str, Any]) -> Event | None:
    """Which event ``data`` is; ``None`` for a name this side does not know (it is skipped)."""
    try:
        return Event(data.get("event"))
    except ValueError:
        return None


@dataclass(frozen=True)
class Received:
    """One event of a run's stream, decoded: its kind and the fields that kind has."""

    kind: Event
    #: ``accepted``: the run's id.
    run_id: str = ""
    #: ``output``: the stream and its text.
    stream: str = ""
    text: str = ""
    #: ``image``: its mime type and bytes.
    mime: str = ""
    data: bytes = b""
    #: ``case``: the case's index and ending.
    index: int = 0
    case: CaseEnding | None = None
    #: ``result``: the run's result.
    result: RunResult | None = None
    #: ``error``: what kind of failure, and its message.
    error_kind: str = ""
    message: str = ""


def decode_event(data: object) -> Received | None:
    """An event of a run's stream, decoded; ``None`` for one this side does not know.

    Raises:
        InvalidValueError: ``data`` is not an event, or a field of its kind is
            missing or malformed.
    """
    if not isinstance(data, Mapping):
        raise InvalidValueError("event", type(data).__name__, "a JSON object")
    kind = event_of(data)
    if kind is None:
        return None
    try:
        if kind is Event.ACCEPTED:
            return Received(kind, run_id=_text(data, "id"))
        if kind is Event.OUTPUT:
            return Received(kind, stream=_text(data, "stream"), text=_text(data, "text"))
        if kind is Event.IMAGE:
            return Received(
                kind, mime=_text(data, "mime"), data=decode_bytes(data["data"], "image")
            )
        if kind is Event.CASE:
            return Received(
                kind, index=int(data.get("index", 0)), case=case_from_json(data["case"])
            )
        if kind is Event.RESULT:
            return Received(kind, result=result_from_json(data["result"]))
        if kind is Event.ERROR:
            message = str(data.get("message", "")) or "the service failed the run"
            return Received(kind, error_kind=str(data.get("kind", "")), message=message)
    except MALFORMED as exc:
        if isinstance(exc, InvalidValueError):
            raise
        raise InvalidValueError(f"{kind} event", str(exc)[:200], "a well-formed event") from None
    return Received(kind)


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise InvalidValueError(key, type(value).__name__, "a string")
    return value
