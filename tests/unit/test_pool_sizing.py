"""The warm pool's sizing: a floor, growth with the runs that found it empty, a ceiling."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codedock_magic.core.errors import InvalidValueError
from codedock_magic.local.sizing import Sizer

events = st.lists(
    st.tuples(st.floats(min_value=0, max_value=100, allow_nan=False), st.booleans()),
    max_size=60,
)


@given(
    floor=st.integers(0, 8),
    extra=st.integers(0, 8),
    runs=events,
    later=st.floats(min_value=0, max_value=200, allow_nan=False),
)
def test_the_target_stays_within_the_bounds(
    floor: int, extra: int, runs: list[tuple[float, bool]], later: float
) -> None:
    sizer = Sizer(floor, floor + extra, window=10, shrink_after=20)
    now = 0.0
    for step, found in runs:
        now += step
        sizer.run(now, found=found)
        assert floor <= sizer.target(now) <= floor + extra
    assert floor <= sizer.target(now + later) <= floor + extra


@given(floor=st.integers(0, 4), extra=st.integers(0, 8), misses=st.integers(0, 12))
def test_each_miss_of_a_burst_asks_for_one_more(floor: int, extra: int, misses: int) -> None:
    sizer = Sizer(floor, floor + extra, window=10, shrink_after=20)
    for index in range(misses):
        sizer.run(index * 0.1, found=False)
    assert sizer.target(misses * 0.1) == min(floor + extra, floor + misses)


@given(floor=st.integers(0, 4), extra=st.integers(1, 8), hits=st.integers(1, 30))
def test_a_burst_the_grown_pool_keeps_up_with_holds_its_size(
    floor: int, extra: int, hits: int
) -> None:
    sizer = Sizer(floor, floor + extra, window=10, shrink_after=20)
    for index in range(extra):
        sizer.run(index * 0.01, found=False)
    # Runs keep coming, every 5 s, long past the window, and all find one ready.
    for index in range(hits):
        sizer.run(1 + index * 5.0, found=True)
        assert sizer.target(1 + index * 5.0) == floor + extra


@given(floor=st.integers(0, 4), extra=st.integers(0, 8), runs=events)
def test_idle_brings_it_back_to_the_floor(
    floor: int, extra: int, runs: list[tuple[float, bool]]
) -> None:
    sizer = Sizer(floor, floor + extra, window=10, shrink_after=20)
    now = 0.0
    for step, found in runs:
        now += step
        sizer.run(now, found=found)
    assert sizer.target(now + 21) == floor
    # And a later burst grows it afresh, from the floor.
    sizer.run(now + 30, found=False)
    assert sizer.target(now + 30) == min(floor + extra, floor + 1)


def test_misses_older_than_the_window_do_not_grow_it() -> None:
    sizer = Sizer(1, 8, window=10, shrink_after=100)
    sizer.run(0, found=False)
    sizer.run(11, found=False)
    sizer.run(22, found=False)
    # One miss in any window: the pool held 2, never 4.
    assert sizer.target(22) == 2


def test_new_bounds_clip_what_a_burst_grew() -> None:
    sizer = Sizer(1, 8, window=10, shrink_after=100)
    for index in range(6):
        sizer.run(index, found=False)
    assert sizer.target(6) == 7
    sizer.resize(ceiling=3)
    assert sizer.target(6) == 3


@pytest.mark.parametrize(
    ("floor", "ceiling", "message"),
    [(-1, 4, "pool size -1"), (4, 2, "pool max 2"), (2, 1, "at least the pool size (2)")],
)
def test_bad_bounds_are_refused_naming_them(floor: int, ceiling: int, message: str) -> None:
    with pytest.raises(InvalidValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Sizer(floor, ceiling)
