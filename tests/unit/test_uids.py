"""The uid range sandboxes take their own uids from, with no engine."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codedock_magic.core.errors import InvalidValueError
from codedock_magic.engines.docker import DockerEngine
from codedock_magic.engines.uids import DEFAULT_UID_RANGE, UidRange, uid_name


@given(
    first=st.integers(1, 2**32 - 2),
    size=st.integers(1, 300),
    taken=st.sets(st.integers(0, 310), max_size=50),
)
def test_candidates_visit_every_free_uid_of_the_range_once(
    first: int, size: int, taken: set[int]
) -> None:
    last = min(first + size - 1, 2**32 - 2)
    uids = UidRange(first, last)
    busy = {first + offset for offset in taken}
    tried = list(uids.candidates(busy))
    assert len(tried) == len(set(tried))
    assert set(tried) == set(range(first, last + 1)) - busy


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30000-59999", UidRange(30000, 59999)),
        (" 100 - 200 ", UidRange(100, 200)),
        ([5, 9], UidRange(5, 9)),
        ((7, 7), UidRange(7, 7)),
        (61000, UidRange(61000, 61000)),
        ("61000", UidRange(61000, 61000)),
    ],
)
def test_a_range_is_read_from_a_string_a_pair_or_one_uid(value: object, expected: UidRange) -> None:
    assert UidRange.parse(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "0-10",
        "10-5",
        "a-b",
        "",
        "1-2-3",
        [1.5, 3],
        [1, 2, 3],
        True,
        None,
        {"first": 1},
        "1-4294967295",
    ],
)
def test_a_range_that_is_not_one_of_uids_above_root_is_refused(value: object) -> None:
    with pytest.raises(InvalidValueError, match="uid_range"):
        UidRange.parse(value)


def test_the_docker_engine_takes_the_range_as_an_option_and_hands_it_to_its_watchdog() -> None:
    assert str(DockerEngine().uids) == DEFAULT_UID_RANGE
    assert "uid_range" not in DockerEngine().options
    narrow = DockerEngine(uid_range=[40000, 40009])
    assert len(narrow.uids) == 10 and narrow.options["uid_range"] == "40000-40009"
    with pytest.raises(InvalidValueError, match="uid_range"):
        DockerEngine(uid_range="0-9")
    assert uid_name(40000) == "codedock-uid-40000"
