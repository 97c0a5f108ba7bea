"""The JSON forms the service and its clients share."""

from __future__ import annotations

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
