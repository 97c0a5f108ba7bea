"""Assignments a sandbox service holds: their cases, their dates, their attempt rules.

The admin points ``SandboxService.assignments_dir`` at a folder with one folder
per assignment, named for it::

    assignments/
      hw3/
        cases.yaml          # or cases.json: the case file grading/cases.py reads
        assignment.yaml     # optional, or assignment.json:
                            #   opens: 2026-01-10T09:00:00+00:00   (ISO 8601)
                            #   due: 2026-01-17T23:59:00+00:00
                            #   closes: 2026-01-20T23:59:00+00:00  (late attempts until then)
                            #   attempts: {max: 5, window: 86400}   (window 0 or none: ever)
                            #   cooldown: 60                         (seconds between attempts)
                            #   reveal_to: [teachers]                (groups that see hidden cases)
                            #   limits: {timeout: 2, memory: 100m}

An assignment's state at a time (:class:`State`): ``not open yet`` before
``opens``; ``open`` until ``due``; ``due`` from ``due`` until ``closes`` (an
attempt is still taken, and marked late); ``closed`` from ``closes`` on (no
attempt is taken). A date left out is no bound. This module is pure: it reads
files and computes, and runs nothing.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ..core.errors import AssignmentError, InvalidValueError
from ..core.limits import LIMIT
from .cases import Case, load_cases

__all__ = [
    "SETTING",
    "Assignment",
    "Standing",
    "State",
    "load_assignment",
    "load_assignments",
]

#: The setting every error of a bad file is named with.
SETTING = "SandboxService.assignments_dir"
#: An assignment's name: its folder's name.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_FIELDS = ("opens", "due", "closes", "attempts", "cooldown", "reveal_to", "limits")


class State(str, enum.Enum):
    """Where an assignment stands at a time."""

    NOT_OPEN = "not open yet"
    OPEN = "open"
    DUE = "due"
    CLOSED = "closed"

    def __str__(self) -> str:
        return self.value

    @property
    def takes_attempts(self) -> bool:
        """Whether an attempt is taken in this state (late when ``due``)."""
        return self in (State.OPEN, State.DUE)


@dataclass(frozen=True)
class Standing:
    """A user's attempts at an assignment, as the service tells them.

    Attributes:
        attempts_left: attempts left now (``None``: no limit).
        next_at: when the next attempt is allowed (``None``: now).
    """

    attempts_left: int | None
    next_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """As JSON values; ``next_at`` in ISO 8601."""
        return {
            "attempts_left": self.attempts_left,
            "next_at": self.next_at.isoformat() if self.next_at is not None else None,
        }


@dataclass(frozen=True)
class Assignment:
    """One assignment: its cases and its rules.

    Attributes:
        name: the folder's name.
        cases: its cases, visible and hidden.
        opens, due, closes: aware datetimes, or ``None`` for no bound.
        max_attempts: attempts per ``window`` (``None``: no limit).
        window: seconds the attempt limit counts over (``None``: ever).
        cooldown: seconds from one attempt to the next.
        reveal_to: groups that see hidden cases in full.
        limits: the limits of its runs, by name, parsed.
    """

    name: str
    cases: tuple[Case, ...]
    opens: datetime | None = None
    due: datetime | None = None
    closes: datetime | None = None
    max_attempts: int | None = None
    window: float | None = None
    cooldown: float = 0.0
    reveal_to: tuple[str, ...] = ()
    limits: dict[str, Any] = field(default_factory=dict)

    def state(self, now: datetime) -> State:
        """The assignment's state at ``now`` (see the module's help)."""
        if self.opens is not None and now < self.opens:
            return State.NOT_OPEN
        if self.closes is not None and now >= self.closes:
            return State.CLOSED
        if self.due is not None and now >= self.due:
            return State.DUE
        return State.OPEN

    def reveals_to(self, groups: Iterable[str]) -> bool:
        """Whether a user in ``groups`` sees the hidden cases in full."""
        return bool(set(self.reveal_to) & set(groups))

    def hidden_seconds(self, default: float) -> float:
        """The hidden cases' time limits together (their own, else ``default``)."""
        return sum(
            case.timeout if case.timeout is not None else default
            for case in self.cases
            if case.hidden
        )

    def standing(self, attempts: Iterable[datetime], now: datetime) -> Standing:
        """How many attempts are left at ``now``, given the times of the earlier ones,
        and when the next is allowed."""
        times = sorted(attempts)
        waits: list[datetime] = []
        if self.opens is not None and now < self.opens:
            waits.append(self.opens)
        if times and self.cooldown > 0:
            ready = times[-1] + timedelta(seconds=self.cooldown)
            if ready > now:
                waits.append(ready)
        left: int | None = None
        if self.max_attempts is not None:
            if self.window:
                since = now - timedelta(seconds=self.window)
                counted = [at for at in times if at > since]
            else:
                counted = times
            left = max(self.max_attempts - len(counted), 0)
            if left == 0:
                if not self.window:
                    return Standing(0, None)
                # The oldest counted attempt leaves the window first.
                waits.append(
                    counted[len(counted) - self.max_attempts] + timedelta(seconds=self.window)
                )
        return Standing(left, max(waits) if waits else None)

    def describe(self, now: datetime) -> dict[str, Any]:
        """Its rules and state as JSON values, nothing of its cases but their names."""
        return {
            "name": self.name,
            "state": self.state(now).value,
            "opens": _iso(self.opens),
            "due": _iso(self.due),
            "closes": _iso(self.closes),
            "max_attempts": self.max_attempts,
            "window": self.window,
            "cooldown": self.cooldown,
            "cases": len(self.cases),
            "hidden": sum(case.hidden for case in self.cases),
            "points": sum(case.points for case in self.cases),
        }


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def load_assignments(folder: str | Path) -> dict[str, Assignment]:
    """Every assignment in ``folder``, by name (entries starting with ``.`` or ``_`` aside).

    Raises:
        InvalidValueError: the folder, or a file in it, is not what it must be; the
            message names ``SandboxService.assignments_dir`` and the file.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise InvalidValueError(SETTING, str(folder), "a folder that exists")
    found: dict[str, Assignment] = {}
    for entry in sorted(root.iterdir()):
        if entry.name.startswith((".", "_")) or not entry.is_dir():
            continue
        found[entry.name] = load_assignment(entry)
    return found


def load_assignment(folder: Path) -> Assignment:
    """The assignment of one folder, named for it.

    Raises:
        InvalidValueError: see :func:`load_assignments`.
    """
    name = folder.name
    if not NAME.fullmatch(name):
        raise InvalidValueError(
            f"{SETTING}: assignment", name, "a name of letters, digits, '_', '.' and '-'"
        )
    cases_file = _one_of(folder, "cases", required=True)
    assert cases_file is not None
    try:
        cases = load_cases(cases_file)
    except InvalidValueError as exc:
        raise AssignmentError(f"{SETTING}: {name}/{cases_file.name}", str(exc)) from None
    rules_file = _one_of(folder, "assignment", required=False)
    rules = _read_rules(rules_file, name) if rules_file is not None else {}
    return _assignment(
        name,
        tuple(cases),
        rules,
        f"{SETTING}: {name}/" + (rules_file.name if rules_file is not None else "assignment.yaml"),
    )


def _one_of(folder: Path, stem: str, *, required: bool) -> Path | None:
    paths = [folder / f"{stem}.{suffix}" for suffix in ("yaml", "yml", "json")]
    present = [path for path in paths if path.is_file()]
    if len(present) > 1:
        raise InvalidValueError(
            f"{SETTING}: {folder.name}", [p.name for p in present], f"one {stem} file"
        )
    if not present and required:
        raise InvalidValueError(
            f"{SETTING}: {folder.name}", f"{stem}.*", f"there: write {stem}.yaml or {stem}.json"
        )
    return present[0] if present else None


def _read_rules(path: Path, name: str) -> dict[str, Any]:
    label = f"{SETTING}: {name}/{path.name}"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidValueError(label, str(path.name), f"readable ({exc})") from None
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            # Dates stay text: they are read below, with their zone.
            data = yaml.load(text, Loader=_text_dates())
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidValueError(
            label, path.name, f"valid {path.suffix[1:].upper()} ({first})"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise InvalidValueError(label, type(data).__name__, "a mapping of settings")
    unknown = sorted(str(key) for key in data if key not in _FIELDS)
    if unknown:
        raise InvalidValueError(
            f"{label}: {unknown[0]}", data[unknown[0]], "a field: " + ", ".join(_FIELDS)
        )
    return dict(data)


def _text_dates() -> Any:
    import yaml

    class TextDates(yaml.SafeLoader):
        """YAML's safe loader, with timestamps left as text."""

    TextDates.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    return TextDates


def _assignment(
    name: str, cases: tuple[Case, ...], rules: dict[str, Any], label: str
) -> Assignment:
    dates = {key: _date(f"{label}: {key}", rules.get(key)) for key in ("opens", "due", "closes")}
    order = [dates[key] for key in ("opens", "due", "closes") if dates[key] is not None]
    if order != sorted(order):  # type: ignore[type-var]
        raise InvalidValueError(
            f"{label}: dates", [str(d) for d in order], "opens <= due <= closes"
        )
    max_attempts, window = _attempts(f"{label}: attempts", rules.get("attempts"))
    cooldown = _seconds(f"{label}: cooldown", rules.get("cooldown", 0))
    groups = rules.get("reveal_to", [])
    if isinstance(groups, str):
        groups = [groups]
    if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
        raise InvalidValueError(f"{label}: reveal_to", groups, "a list of group names")
    return Assignment(
        name=name,
        cases=cases,
        opens=dates["opens"],
        due=dates["due"],
        closes=dates["closes"],
        max_attempts=max_attempts,
        window=window,
        cooldown=cooldown,
        reveal_to=tuple(groups),
        limits=_limits(f"{label}: limits", rules.get("limits", {})),
    )


def _date(label: str, value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidValueError(
            label, value, "an ISO 8601 time, e.g. 2026-01-17T23:59:00+00:00"
        ) from None
    if when.tzinfo is None:
        raise InvalidValueError(label, value, "a time with its zone, e.g. +00:00 or Z")
    return when.astimezone(timezone.utc)


def _seconds(label: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise InvalidValueError(label, value, "a number of seconds, 0 or more")
    return float(value)


def _attempts(label: str, value: Any) -> tuple[int | None, float | None]:
    if value is None:
        return None, None
    if not isinstance(value, Mapping) or set(value) - {"max", "window"}:
        raise InvalidValueError(label, value, "a mapping {max: N, window: SECONDS}")
    most = value.get("max")
    if isinstance(most, bool) or not isinstance(most, int) or most < 1:
        raise InvalidValueError(f"{label}: max", most, "a whole number of attempts, 1 or more")
    window = _seconds(f"{label}: window", value.get("window", 0))
    return most, window or None


def _limits(label: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidValueError(label, value, "a mapping of limits, e.g. {timeout: 2}")
    parsed: dict[str, Any] = {}
    for key, given in value.items():
        limit = LIMIT.get(str(key))
        if limit is None:
            raise InvalidValueError(label, key, "a limit: " + ", ".join(LIMIT))
        parsed[str(key)] = limit.parse(given, f"{label}: {key}")
    return parsed
