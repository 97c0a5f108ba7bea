"""Assignments a service holds: their files, their states, the attempts they allow."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codedock_magic.core.errors import InvalidValueError
from codedock_magic.grading.assignments import State, load_assignments

CASES = """
cases:
  - {name: small, stdin: "1 2\\n", expected: "3\\n"}
  - {name: big, stdin: "10 20\\n", expected: "30\\n", hidden: true, points: 2, timeout: 3}
"""
T0 = datetime(2026, 1, 10, 9, 0, tzinfo=timezone.utc)


def _folder(tmp_path: Path, rules: str | None = None, name: str = "hw3") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "cases.yaml").write_text(CASES)
    if rules is not None:
        (folder / "assignment.yaml").write_text(rules)
    return tmp_path


def test_an_assignment_with_its_rules(tmp_path: Path) -> None:
    rules = """
opens: 2026-01-10T09:00:00Z
due: 2026-01-17T23:59:00+01:00
closes: 2026-01-20T00:00:00Z
attempts: {max: 3, window: 3600}
cooldown: 60
reveal_to: [teachers]
limits: {timeout: 2, memory: 100m}
"""
    (hw3,) = load_assignments(_folder(tmp_path, rules)).values()
    assert hw3.name == "hw3" and [c.name for c in hw3.cases] == ["small", "big"]
    assert hw3.due == datetime(2026, 1, 17, 22, 59, tzinfo=timezone.utc)
    assert (hw3.max_attempts, hw3.window, hw3.cooldown) == (3, 3600.0, 60.0)
    assert hw3.limits == {"timeout": 2.0, "memory": 100 * 1024 * 1024}
    assert hw3.reveals_to(["students", "teachers"]) and not hw3.reveals_to(["students"])
    assert hw3.hidden_seconds(2.0) == 3.0
    assert hw3.state(T0 - timedelta(seconds=1)) is State.NOT_OPEN
    assert hw3.state(T0) is State.OPEN
    assert hw3.state(datetime(2026, 1, 18, tzinfo=timezone.utc)) is State.DUE
    assert hw3.state(datetime(2026, 1, 20, tzinfo=timezone.utc)) is State.CLOSED


def test_without_rules_it_is_open_with_no_limit(tmp_path: Path) -> None:
    hw3 = load_assignments(_folder(tmp_path))["hw3"]
    assert hw3.state(T0) is State.OPEN
    standing = hw3.standing([T0] * 50, T0)
    assert standing.attempts_left is None and standing.next_at is None


@pytest.mark.parametrize(
    ("rules", "named"),
    [
        ("due: tomorrow", "hw3/assignment.yaml: due"),
        ("due: 2026-01-17T23:59:00", "hw3/assignment.yaml: due"),
        ("opens: 2026-02-01T00:00:00Z\ndue: 2026-01-01T00:00:00Z", "dates"),
        ("attempts: {max: 0}", "attempts: max"),
        ("attempts: 3", "hw3/assignment.yaml: attempts"),
        ("cooldown: -1", "cooldown"),
        ("reveal_to: [1]", "reveal_to"),
        ("limits: {timeout: soon}", "limits: timeout"),
        ("limits: {speed: 3}", "limits"),
        ("deadline: 2026-01-01T00:00:00Z", "deadline"),
        ("[1, 2", "valid YAML"),
    ],
)
def test_a_bad_rule_is_named_with_the_setting_and_the_file(
    tmp_path: Path, rules: str, named: str
) -> None:
    with pytest.raises(InvalidValueError) as caught:
        load_assignments(_folder(tmp_path, rules))
    assert str(caught.value).startswith("SandboxService.assignments_dir: ")
    assert named in str(caught.value) and "\n" not in str(caught.value)


def test_a_bad_cases_file_and_a_missing_one_are_named(tmp_path: Path) -> None:
    root = _folder(tmp_path)
    (root / "hw3" / "cases.yaml").write_text("- {name: a, expected: x, points: -3}")
    with pytest.raises(InvalidValueError, match=r"hw3/cases.yaml: case 'a' \(#1\): points"):
        load_assignments(root)
    (root / "hw3" / "cases.yaml").unlink()
    with pytest.raises(InvalidValueError, match=r"write cases\.yaml or cases\.json"):
        load_assignments(root)
    with pytest.raises(InvalidValueError, match="a folder that exists"):
        load_assignments(tmp_path / "nowhere")


def test_json_rules_and_hidden_entries(tmp_path: Path) -> None:
    root = _folder(tmp_path)
    (root / "hw3" / "assignment.json").write_text('{"attempts": {"max": 2}, "cooldown": 5}')
    (root / ".git").mkdir()
    (root / "_drafts").mkdir()
    assert list(load_assignments(root)) == ["hw3"]
    assert load_assignments(root)["hw3"].max_attempts == 2


def test_attempts_window_and_cooldown(tmp_path: Path) -> None:
    rules = "attempts: {max: 2, window: 100}\ncooldown: 10"
    hw3 = load_assignments(_folder(tmp_path, rules))["hw3"]
    s = timedelta(seconds=1)
    assert hw3.standing([], T0).attempts_left == 2
    one = hw3.standing([T0], T0 + 5 * s)
    assert (one.attempts_left, one.next_at) == (1, T0 + 10 * s)
    two = hw3.standing([T0, T0 + 20 * s], T0 + 30 * s)
    assert (two.attempts_left, two.next_at) == (0, T0 + 100 * s)
    later = hw3.standing([T0, T0 + 20 * s], T0 + 101 * s)
    assert (later.attempts_left, later.next_at) == (1, None)


@given(
    st.lists(st.integers(0, 1000), max_size=12),
    st.integers(0, 1200),
    st.integers(1, 4),
    st.integers(0, 300),
    st.integers(0, 50),
)
def test_an_attempt_is_never_allowed_past_the_limit(
    offsets: list[int], now: int, most: int, window: int, cooldown: int
) -> None:
    """Whenever the standing says go, the window holds fewer than the limit and the
    cooldown is over; and at ``next_at`` an attempt is allowed."""
    from codedock_magic.grading.assignments import Assignment

    hw = Assignment(
        name="hw", cases=(), max_attempts=most, window=window or None, cooldown=cooldown
    )
    times = [T0 + timedelta(seconds=o) for o in offsets if o <= now]
    at = T0 + timedelta(seconds=now)
    standing = hw.standing(times, at)
    counted = [t for t in times if not window or t > at - timedelta(seconds=window)]
    if standing.attempts_left and standing.next_at is None:
        assert len(counted) < most
        assert not times or max(times) + timedelta(seconds=cooldown) <= at
    if standing.next_at is not None:
        assert hw.standing(times, standing.next_at).next_at is None
