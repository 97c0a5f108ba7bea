"""What a cell feeds its program from the notebook: stdin, values, files and cases.

Each reads the notebook's variables (or a path) and is bounded by ``cap``
(``SandboxMagics.max_stdin``); a problem is a one-line :class:`UsageError`
naming the option.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError

from ..core.errors import InvalidValueError
from ..core.request import check_file_name
from ..grading.cases import Case, load_cases
from ..local.display import values_to_json

__all__ = ["cases", "files", "stdin", "values"]


def _too_much(source: str, cap: str) -> UsageError:
    return UsageError(
        f"{source} holds more than SandboxMagics.max_stdin = {cap}; feed the program less, "
        "or ask your administrator to raise the ceiling"
    )


def _read(path: Path, cap: int) -> bytes:
    # One byte past the ceiling at most: an endless file such as /dev/zero must
    # not be read forever.
    with path.open("rb") as handle:
        return handle.read(cap + 1)


def stdin(
    namespace: Mapping[str, Any], name: str | None, path: str | None, cap: int, shown: str
) -> bytes | None:
    """The bytes of ``--stdin NAME`` or ``--stdin-file PATH``, if either is given."""
    if name is not None and path is not None:
        raise UsageError("give --stdin or --stdin-file, not both")
    if name is not None:
        if name not in namespace:
            raise UsageError(f"--stdin: no variable named {name!r} in the notebook")
        value = namespace[name]
        if not isinstance(value, (str, bytes)):
            raise UsageError(f"--stdin: {name} holds a {type(value).__name__}, not str or bytes")
        data = value.encode("utf-8") if isinstance(value, str) else value
        if len(data) > cap:
            raise _too_much(f"--stdin {name}", shown)
        return data
    if path is not None:
        where = Path(path).expanduser()
        try:
            data = _read(where, cap)
        except OSError as exc:
            raise UsageError(f"--stdin-file: cannot read {where}: {exc.strerror}") from None
        if len(data) > cap:
            raise _too_much(f"--stdin-file {where}", shown)
        return data
    return None


def values(
    namespace: Mapping[str, Any], names: str | None, cap: int, shown: str
) -> dict[str, Any] | None:
    """The variables of ``--in NAMES``, checked to travel as JSON."""
    if not names:
        return None
    chosen = {}
    for name in (part.strip() for part in names.split(",")):
        if name not in namespace:
            raise UsageError(f"--in: no variable named {name!r} in the notebook")
        chosen[name] = namespace[name]
    try:
        sent = values_to_json(chosen)
    except InvalidValueError as exc:
        raise UsageError(
            f"--in {exc.name}: {exc.name} holds a {exc.value}, not {exc.expected}"
        ) from None
    if len(sent) > cap:
        raise UsageError(f"--in {names}: more JSON than SandboxMagics.max_stdin = {shown}")
    return chosen


def files(namespace: Mapping[str, Any], specs: list[str], cap: int, shown: str) -> dict[str, bytes]:
    """The files of each ``--file NAME=SOURCE``: a variable's bytes or text, or a path's."""
    chosen: dict[str, bytes] = {}
    for spec in specs:
        name, equals, source = spec.partition("=")
        if not equals or not name or not source:
            raise UsageError(f"--file {spec}: give NAME=SOURCE, e.g. --file data.csv=data")
        try:
            check_file_name(name)
        except InvalidValueError as exc:
            raise UsageError(f"--file {spec}: {exc}") from None
        if source in namespace:
            value = namespace[source]
            if not isinstance(value, (str, bytes)):
                raise UsageError(
                    f"--file {spec}: {source} holds a {type(value).__name__}, not bytes or str"
                )
            data = value.encode("utf-8") if isinstance(value, str) else value
        else:
            path = Path(source).expanduser()
            try:
                data = _read(path, cap)
            except OSError as exc:
                raise UsageError(
                    f"--file {spec}: no variable {source!r}, and cannot read {path}: {exc.strerror}"
                ) from None
        chosen[name] = data
        if sum(len(d) for d in chosen.values()) > cap:
            raise UsageError(
                f"--file {spec}: the files hold more than SandboxMagics.max_stdin = "
                f"{shown}; send less, or ask your administrator to raise it"
            )
    return chosen


def cases(namespace: Mapping[str, Any], name: str) -> list[Case]:
    """The test cases of ``--cases NAME``: a variable's, or a .json/.yaml file's."""
    if name in namespace:
        source: object = namespace[name]
    elif Path(name).expanduser().is_file():
        source = Path(name).expanduser()
    else:
        raise UsageError(f"--cases: no variable named {name!r} in the notebook, and no file {name}")
    try:
        return load_cases(source)
    except InvalidValueError as exc:
        raise UsageError(f"--cases {name}: {exc}") from None
