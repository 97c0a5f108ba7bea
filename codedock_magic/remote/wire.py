"""The JSON forms of runs, limits and results that the sandbox service and its clients share.

One module owns them, so the kernel's client and the service cannot drift apart.
Bytes (code and stdin) travel as base64: source need not be UTF-8 and stdin may
be binary. A run's limits travel as only the fields the caller asked for, so
the service can fill the rest from its own defaults.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from typing import Any

from ..core.errors import InvalidValueError
from ..core.limits import LIMIT_FIELDS, Limits
from ..core.request import CaseInput
from ..core.result import CaseRun, RunResult, RunStatus

__all__ = [
    "RUN_FIELDS",
    "case_run_from_json",
    "case_run_to_json",
    "cases_from_json",
    "decode_bytes",
    "encode_bytes",
    "extras_from_json",
    "limits_to_json",
    "result_from_json",
    "result_to_json",
    "run_to_json",
]

#: The fields a run request's JSON body may have.
RUN_FIELDS = ("code", "stdin", "image", "limits", "cases", "values", "returns", "files")


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


def _ending_to_json(ended: RunResult | CaseRun) -> dict[str, Any]:
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


def case_run_to_json(run: CaseRun) -> dict[str, Any]:
    """Everything in a :class:`CaseRun`, as JSON values."""
    return {
        **_ending_to_json(run),
        "timeout": run.timeout,
        "memory": run.memory,
        "note": run.note,
    }


def case_run_from_json(data: Mapping[str, Any]) -> CaseRun:
    """The :class:`CaseRun` that :func:`case_run_to_json` wrote.

    Raises:
        InvalidValueError: a field is missing or malformed.
    """
    try:
        return CaseRun(
            **_ending_from_json(data),
            timeout=float(data["timeout"]),
            memory=int(data["memory"]),
            note=str(data.get("note", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidValueError("case", str(exc), "a case's end from the service") from None


def result_to_json(result: RunResult) -> dict[str, Any]:
    """Everything in a :class:`RunResult`, as JSON values."""
    return {
        **_ending_to_json(result),
        "limits": limits_to_json(result.limits),
        "image": result.image,
        "cases": [case_run_to_json(case) for case in result.cases],
        "cpu_seconds": result.cpu_seconds,
        "peak_memory": result.peak_memory,
        "images": [{"mime": mime, "data": encode_bytes(data)} for mime, data in result.images],
        "image_positions": list(result.image_positions),
        "files": {name: encode_bytes(data) for name, data in result.files.items()},
        "value": result.value,
        "notes": list(result.notes),
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
            cases=tuple(case_run_from_json(case) for case in data.get("cases") or ()),
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
            notes=tuple(str(note) for note in data.get("notes") or ()),
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, InvalidValueError):
            raise
        raise InvalidValueError("result", str(exc), "a run result from the service") from None


def _optional(value: Any, kind: type[Any]) -> Any:
    return None if value is None else kind(value)
