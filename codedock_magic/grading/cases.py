"""Test cases for grading: what one is, and reading them from notebooks and files.

A case is an input, an expected output and how to compare them, worth some
points, perhaps hidden from the student. Cases come as :class:`Case` objects, as
dicts (or any object with the same attributes), or from a JSON or YAML file::

    cases:                      # or the list alone, at the top
      - name: small
        stdin: "3 4\\n"
        expected: "7\\n"
      - name: big
        stdin: "1000000 1\\n"
        expected: "1000001"
        points: 2
        hidden: true
        timeout: 1
        memory: 64m
      - name: close enough
        stdin: "1 3\\n"
        expected: "0.3333"
        compare: numeric
        tolerance: 0.001
      - name: checked by hand
        stdin: "5\\n"
        compare: checker
        checker: checkers.py:is_prime_list     # a file beside this one, and its function

Every field but ``name`` and ``expected`` has a default. A bad field is refused
with a :class:`~codedock_magic.core.errors.CaseError` naming the case and the field.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..core.errors import CaseError, InvalidValueError
from ..core.limits import MAX_TIMEOUT, MIN_MEMORY, parse_size

__all__ = ["COMPARES", "Case", "Checker", "load_cases"]

#: How a case's output is compared with its expected output.
COMPARES = ("whitespace", "exact", "numeric", "regex", "checker")

#: ``checker(output, case)``: the program's stdout and the case it ran. It returns
#: True or False, a fraction of the case's points (0 to 1), or either with a
#: message for the student: ``(0.5, "the order is wrong")``.
Checker = Callable[[str, "Case"], bool | float | tuple[bool | float, str]]

_FIELDS = (
    "name",
    "stdin",
    "expected",
    "points",
    "hidden",
    "timeout",
    "memory",
    "compare",
    "tolerance",
    "checker",
)


@dataclass(frozen=True)
class Case:
    """One test case: an input, the output expected for it, and how to compare them.

    Attributes:
        name: shown with its verdict; unique within a set of cases.
        stdin: what the program reads.
        expected: the stdout expected (for ``regex``, a pattern the whole output,
            trailing whitespace aside, must match; optional for ``checker``).
        points: what passing it is worth (0 or more).
        hidden: show only its name and verdict, never its input, expected output
            or the program's output.
        timeout: its own wall-clock seconds, else the check's.
        memory: its own memory cap (bytes, or a size such as ``64m``, kept as
            bytes), else the check's.
        compare: ``whitespace`` (trailing whitespace and blank lines at the end
            ignored, the default), ``exact``, ``numeric`` (numbers within
            ``tolerance``, other words equal), ``regex`` or ``checker``.
        tolerance: for ``numeric``, the relative and absolute difference allowed.
        checker: for ``checker``, the function that judges the output on the host.
    """

    name: str
    stdin: str | bytes = ""
    expected: str | None = None
    points: float = 1.0
    hidden: bool = False
    timeout: float | None = None
    memory: int | str | None = None
    compare: str = "whitespace"
    tolerance: float = 1e-6
    checker: Checker | None = None

    def __post_init__(self) -> None:
        label = repr(self.name)
        if not isinstance(self.name, str) or not self.name.strip():
            raise CaseError(label, "name", self.name, "a non-empty str")
        if not isinstance(self.stdin, (str, bytes)):
            raise CaseError(label, "stdin", self.stdin, "a str or bytes")
        if self.expected is not None and not isinstance(self.expected, str):
            raise CaseError(label, "expected", self.expected, "a str")
        if self.compare not in COMPARES:
            raise CaseError(label, "compare", self.compare, "one of " + ", ".join(COMPARES))
        if self.compare == "checker":
            if not callable(self.checker):
                raise CaseError(label, "checker", self.checker, "a function (output, case)")
        elif self.expected is None:
            raise CaseError(label, "expected", None, f"given: compare {self.compare} needs it")
        if self.compare == "regex":
            try:
                re.compile(self.expected or "")
            except re.error as exc:
                raise CaseError(label, "expected", self.expected, f"a regex ({exc})") from None
        object.__setattr__(
            self, "points", _number(label, "points", self.points, "a number of points, 0 or more")
        )
        if not isinstance(self.hidden, bool):
            raise CaseError(label, "hidden", self.hidden, "true or false")
        if self.timeout is not None:
            seconds = _number(label, "timeout", self.timeout, "a number of seconds above 0")
            if seconds == 0 or seconds > MAX_TIMEOUT:
                raise CaseError(label, "timeout", self.timeout, "a number of seconds above 0")
            object.__setattr__(self, "timeout", seconds)
        if self.memory is not None:
            try:
                memory = parse_size(self.memory, "memory")
            except InvalidValueError:
                raise CaseError(label, "memory", self.memory, "a size such as 64m") from None
            if memory < MIN_MEMORY:
                raise CaseError(label, "memory", self.memory, "16m or more")
            object.__setattr__(self, "memory", memory)
        object.__setattr__(
            self, "tolerance", _number(label, "tolerance", self.tolerance, "a number, 0 or more")
        )

    def to_dict(self) -> dict[str, Any]:
        """The case as JSON values (a checker by its name)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        if isinstance(self.stdin, bytes):
            data["stdin"] = self.stdin.decode("utf-8", "replace")
        data["checker"] = getattr(self.checker, "__name__", None) if self.checker else None
        return data


def _number(label: str, field: str, value: object, expected: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CaseError(label, field, value, expected)
    if not math.isfinite(value) or value < 0:
        raise CaseError(label, field, value, expected)
    return float(value)


def load_cases(source: object, *, base: Path | None = None) -> list[Case]:
    """Cases from a list (of :class:`Case`, dicts or objects with those attributes) or a file.

    A ``str`` or :class:`~pathlib.Path` ending in ``.json``, ``.yaml`` or ``.yml``
    is read as a file (see the module's help for its schema); a checker named
    there as ``FILE.py:FUNCTION`` is loaded from beside it. ``base`` is where
    relative checker files are looked for when ``source`` is not a file.

    Raises:
        CaseError: a case is malformed, or two share a name.
        InvalidValueError: ``source`` is none of those, or its file cannot be read.
    """
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        return load_cases(_read_file(path), base=path.parent)
    if isinstance(source, Mapping) and "cases" in source:
        extra = sorted(set(source) - {"cases"})
        if extra:
            raise InvalidValueError("cases file", extra[0], "a field of it (only 'cases' is)")
        source = source["cases"]
    if isinstance(source, (Mapping, bytes)) or not isinstance(source, Iterable):
        raise InvalidValueError(
            "cases", type(source).__name__, "a list of cases, or a .json or .yaml file of them"
        )
    cases: list[Case] = []
    for number, item in enumerate(source, 1):
        case = item if isinstance(item, Case) else _case_from(item, number, base)
        if any(case.name == seen.name for seen in cases):
            raise CaseError(f"{case.name!r} (#{number})", "name", case.name, "unique")
        cases.append(case)
    if not cases:
        raise InvalidValueError("cases", "[]", "at least one case")
    return cases


def _case_from(item: object, number: int, base: Path | None) -> Case:
    if isinstance(item, Mapping):
        values = dict(item)
        label = f"{values.get('name', '')!r} (#{number})" if "name" in values else f"#{number}"
        unknown = sorted(str(key) for key in values if key not in _FIELDS)
        if unknown:
            raise CaseError(
                label, unknown[0], values[unknown[0]], "a field of a case: " + ", ".join(_FIELDS)
            )
    else:
        values = {name: getattr(item, name) for name in _FIELDS if hasattr(item, name)}
        label = f"#{number}"
    values.setdefault("name", f"case {number}")
    label = f"{values['name']!r} (#{number})"
    if isinstance(values.get("checker"), str):
        values["checker"] = _load_checker(label, values["checker"], base)
    if values.get("checker") is not None and "compare" not in values:
        values["compare"] = "checker"
    try:
        return Case(**values)
    except CaseError as exc:
        raise CaseError(label, exc.field, exc.value, exc.expected) from None
    except TypeError as exc:
        raise CaseError(label, "fields", sorted(values), f"valid ({exc})") from None


def _read_file(path: Path) -> object:
    suffix = path.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise InvalidValueError("cases file", str(path), "a .json, .yaml or .yml file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidValueError("cases file", str(path), f"readable ({exc})") from None
    try:
        if suffix == ".json":
            return json.loads(text)
        import yaml

        return yaml.safe_load(text)
    except ValueError as exc:  # json's JSONDecodeError is one
        raise InvalidValueError("cases file", str(path), f"valid JSON ({exc})") from None
    except Exception as exc:  # yaml.YAMLError, without importing yaml up front
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidValueError("cases file", str(path), f"valid YAML ({first})") from None


def _load_checker(label: str, spec: str, base: Path | None) -> Checker:
    where, colon, name = spec.rpartition(":")
    if not colon or not where.endswith(".py") or not name.isidentifier():
        raise CaseError(label, "checker", spec, "FILE.py:FUNCTION")
    path = Path(where).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    loader_spec = importlib.util.spec_from_file_location(f"codedock_checker_{path.stem}", path)
    if loader_spec is None or loader_spec.loader is None or not path.is_file():
        raise CaseError(label, "checker", spec, f"a readable file ({path} is not)")
    module = importlib.util.module_from_spec(loader_spec)
    try:
        loader_spec.loader.exec_module(module)
    except Exception as exc:
        raise CaseError(
            label, "checker", spec, f"a file that loads ({type(exc).__name__}: {exc})"
        ) from None
    function = getattr(module, name, None)
    if not callable(function):
        raise CaseError(label, "checker", spec, f"a function in {path.name}")
    return function  # type: ignore[no-any-return]
