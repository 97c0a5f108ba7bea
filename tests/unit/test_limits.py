from __future__ import annotations

import pytest

from codedock_magic import InvalidValueError, Limits, format_size, parse_size


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("100m", 100 * 1024**2),
        ("1g", 1024**3),
        ("1G", 1024**3),
        ("512k", 512 * 1024),
        ("4096", 4096),
        ("1.5g", int(1.5 * 1024**3)),
        ("100mb", 100 * 1024**2),
        ("100MiB", 100 * 1024**2),
        (" 64m ", 64 * 1024**2),
        (2048, 2048),
    ],
)
def test_parse_size_accepts_docker_syntax(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["10x", "", "m", "-1m", "1e3", "0", 0, -5, "one", "1 0m", True])
def test_parse_size_refuses_with_the_accepted_form(bad: object) -> None:
    with pytest.raises(InvalidValueError) as info:
        parse_size(bad, "memory")  # type: ignore[arg-type]
    assert str(info.value) == f"memory {bad!r} is not a size such as 100m or 1g"


def test_memory_message_matches_the_documented_one() -> None:
    with pytest.raises(ValueError, match=r"^memory '10x' is not a size such as 100m or 1g$"):
        Limits(memory="10x")


def test_format_size_round_trips() -> None:
    for text in ["100m", "1g", "1536k", "7b"]:
        assert format_size(parse_size(text)) == text


def test_limits_normalise_strings_from_a_command_line() -> None:
    limits = Limits(timeout="2", memory="100m", cpus="0.5", pids="32", output="64k", workdir="8m")
    assert limits == Limits(
        timeout=2.0, memory=100 * 1024**2, cpus=0.5, pids=32, output=65536, workdir=8 * 1024**2
    )
    assert isinstance(limits.memory, int)
    assert limits.describe() == "timeout 2s · memory 100m · cpus 0.5 · pids 32"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("timeout", "soon", "timeout 'soon' is not a number of seconds such as 2 or 0.5"),
        ("timeout", 0, "timeout 0 is not a number of seconds such as 2 or 0.5"),
        ("timeout", float("inf"), "timeout inf is not a number of seconds such as 2 or 0.5"),
        ("cpus", -1, "cpus -1 is not a positive number of CPUs such as 1 or 0.5"),
        ("pids", "2.5", "pids '2.5' is not a whole number such as 64"),
        ("pids", 2, "pids 2 is not at least 4"),
        ("memory", "1m", "memory '1m' is not at least 16m"),
        ("output", 10, "output 10 is not at least 1k"),
        ("workdir", "10k", "workdir '10k' is not at least 1m"),
    ],
)
def test_bad_limits_are_refused_before_anything_starts(
    field: str, value: object, message: str
) -> None:
    with pytest.raises(InvalidValueError) as info:
        Limits(**{field: value})  # type: ignore[arg-type]
    assert str(info.value) == message
    assert info.value.name == field


def test_replace_checks_again_and_refuses_unknown_fields() -> None:
    assert Limits().replace(memory="1g").memory == 1024**3
    with pytest.raises(InvalidValueError, match="memory '1z'"):
        Limits().replace(memory="1z")
    with pytest.raises(InvalidValueError, match="limit 'memroy' is not one of timeout"):
        Limits().replace(memroy="1g")


def test_the_values_defaults_are_the_tables() -> None:
    from codedock_magic.core.limits import LIMIT

    defaults = Limits()
    for name, limit in LIMIT.items():
        assert getattr(defaults, name) == limit.parse(limit.default), name
