"""The JSON forms the service and its clients share."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codedock_magic import Limits, RunResult, RunStatus
from codedock_magic.errors import InvalidValueError
from codedock_magic.remote.wire import (
    decode_bytes,
    encode_bytes,
    limits_to_json,
    result_from_json,
    result_to_json,
    run_to_json,
)


@given(st.binary(max_size=2048))
def test_bytes_survive_the_trip(data: bytes) -> None:
    assert decode_bytes(json.loads(json.dumps(encode_bytes(data))), "code") == data


def test_bad_base64_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidValueError, match="stdin"):
        decode_bytes("%%%", "stdin")
    with pytest.raises(InvalidValueError, match="code"):
        decode_bytes(12, "code")


@given(
    st.sampled_from(list(RunStatus)),
    st.text(max_size=200),
    st.text(max_size=200),
    st.one_of(st.none(), st.integers(-255, 255)),
)
def test_a_result_survives_the_trip(
    status: RunStatus, stdout: str, stderr: str, exit_code: int | None
) -> None:
    result = RunResult(
        status=status,
        exit_code=exit_code,
        signal=None,
        stdout=stdout,
        stderr=stderr,
        duration=0.25,
        truncated=False,
        limits=Limits(timeout=3, memory="100m", cpus=0.5, pids=20),
        image="codedock/pybuntu:latest",
    )
    assert result_from_json(json.loads(json.dumps(result_to_json(result)))) == result


def test_a_run_carries_only_the_limits_asked_for() -> None:
    body = run_to_json(b"print(1)", b"", None, Limits(memory="100m"), {"memory"})
    assert body["limits"] == {"memory": 100 * 1024**2}
    assert "image" not in body
    assert limits_to_json(Limits(), ["timeout", "pids"]) == {"timeout": 10.0, "pids": 64}


def test_a_malformed_result_is_an_invalid_value() -> None:
    with pytest.raises(InvalidValueError, match="result"):
        result_from_json({"status": "ok"})


def test_a_request_survives_the_trip_with_only_what_it_asked_for() -> None:
    from codedock_magic import CaseInput, Profile, RunRequest
    from codedock_magic.core.limits import RunLimits
    from codedock_magic.remote.wire import request_from_json, request_to_json

    asked = Limits(memory="300m", timeout=3)
    request = RunRequest(
        code=b"print(input())",
        profile=Profile("img:1", asked.container),
        limits=asked.run,
        asked=frozenset({"memory", "image"}),
        cases=(CaseInput(b"\x00\xff", timeout=1.5), CaseInput(b"x", memory=2**25)),
    )
    body = json.loads(json.dumps(request_to_json(request)))
    assert body["limits"] == {"memory": 300 * 1024**2} and body["image"] == "img:1"
    seen = {}

    def settle(requested: object, image: object) -> tuple[Limits, str]:
        seen["args"] = (requested, image)
        return Limits(memory=300 * 1024**2), "img:1"

    back = request_from_json(body, settle)
    assert seen["args"] == ({"memory": 300 * 1024**2}, "img:1")
    assert back.asked == frozenset({"memory", "image"}) and back.cases == request.cases
    assert back.code == request.code and back.limits == RunLimits()
    with pytest.raises(InvalidValueError, match="unknown field 'colour'"):
        request_from_json({**body, "colour": "red"}, settle)


def test_whether_a_value_came_back_travels() -> None:
    result = RunResult(
        status=RunStatus.OK,
        exit_code=0,
        signal=None,
        stdout="",
        stderr="",
        duration=0.1,
        truncated=False,
        limits=Limits(),
        image="img",
        value=None,
        returned=True,
    )
    assert result_from_json(json.loads(json.dumps(result_to_json(result)))).returned


def test_each_event_decodes_as_the_service_encoded_it() -> None:
    from codedock_magic.remote import wire

    result = RunResult(
        status=RunStatus.OK,
        exit_code=0,
        signal=None,
        stdout="hi\n",
        stderr="",
        duration=0.1,
        truncated=False,
        limits=Limits(),
        image="codedock/pybuntu:latest",
    )
    sent = [
        wire.accepted_event("run-1", "alice", "img", Limits()),
        wire.queued_event(2),
        wire.running_event(),
        wire.output_event("stderr", "oops\n"),
        wire.image_event("image/png", b"\x89PNG"),
        wire.result_event(result),
        wire.error_event("engine", "gone"),
    ]
    got = [wire.decode_event(json.loads(json.dumps(event))) for event in sent]
    assert [g.kind.value for g in got if g] == [e["event"] for e in sent]
    accepted, _, _, output, image, ended, failed = got
    assert accepted and accepted.run_id == "run-1"
    assert output and (output.stream, output.text) == ("stderr", "oops\n")
    assert image and (image.mime, image.data) == ("image/png", b"\x89PNG")
    assert ended and ended.result == result
    assert failed and (failed.error_kind, failed.message) == ("engine", "gone")
    # A newer service's event is skipped, not an error.
    assert wire.decode_event({"event": "progress", "done": 3}) is None


@given(
    st.sampled_from(["accepted", "output", "image", "case", "result", "error"]),
    st.dictionaries(
        st.sampled_from(["id", "stream", "text", "mime", "data", "case", "result", "index"]),
        st.one_of(
            st.none(),
            st.integers(),
            st.floats(),
            st.text(max_size=20),
            st.lists(st.integers()),
        ),
    ),
)
def test_a_malformed_event_is_an_invalid_value_never_a_crash(
    name: str, fields: dict[str, object]
) -> None:
    from codedock_magic.remote import wire

    with contextlib.suppress(InvalidValueError):
        wire.decode_event({"event": name, **fields})


def test_an_infinite_index_is_an_invalid_value() -> None:
    from codedock_magic.remote import wire

    # What json.loads makes of 1e999.
    with pytest.raises(InvalidValueError):
        wire.decode_event({"event": "case", "index": float("inf"), "case": {}})
