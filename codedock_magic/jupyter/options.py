"""The options of a ``%%sandbox`` cell, parsed into one typed :class:`CellOptions`.

The limits' flags come from the table of limits, each with an argparse ``type=``
that checks its value, so a bad one is named by argparse itself in one line
(``argument --timeout: timeout 'soon' is not a number of seconds ...``).
"""

from __future__ import annotations

import argparse
import keyword
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument, magic_arguments

from ..core.errors import InvalidValueError
from ..core.limits import LIMITS, Limit

__all__ = ["CellOptions", "cell_options", "parse_options"]


@dataclass(frozen=True)
class CellOptions:
    """What one cell asked for; ``None`` where it asked for nothing.

    Attributes:
        limits: the limits the cell's flags set, checked, by name.
        image: the image the cell named.
        stdin: the variable fed to the code's stdin.
        stdin_file: the file fed to the code's stdin.
        values: the notebook's variables (comma-separated) bound in the sandbox.
        returns: the sandbox's variable brought back.
        files: ``NAME=SOURCE`` specs of files put into the work dir.
        out, err, result: the variables that keep stdout, stderr and the result.
        cases: the variable or file that holds test cases.
        assignment: the assignment, held by the sandbox service, to check against.
        no_raise_error: do not raise when the run does not end ok.
        no_widgets: plain text output even in Jupyter.
    """

    limits: dict[str, float | int] = field(default_factory=dict)
    image: str | None = None
    stdin: str | None = None
    stdin_file: str | None = None
    values: str | None = None
    returns: str | None = None
    files: list[str] = field(default_factory=list)
    out: str | None = None
    err: str | None = None
    result: str | None = None
    cases: str | None = None
    assignment: str | None = None
    no_raise_error: bool = False
    no_widgets: bool = False

    @property
    def asked(self) -> set[str]:
        """The names of the limits, and ``image``, that the cell set."""
        return set(self.limits) | ({"image"} if self.image else set())

    def refuse_with_cases(self) -> None:
        """Refuse the options that make no sense with ``--cases`` (or ``--assignment``)."""
        flag = "--assignment" if self.assignment is not None else "--cases"
        if self.assignment is not None and self.cases is not None:
            raise UsageError("--assignment does not go with --cases: the service holds its cases")
        for option, given in (
            ("--stdin", self.stdin),
            ("--stdin-file", self.stdin_file),
            ("--out", self.out),
            ("--err", self.err),
            ("--in", self.values),
            ("--return", self.returns),
            ("--file", self.files or None),
        ):
            if given is not None:
                raise UsageError(
                    f"{option} does not go with {flag}: a case brings its own stdin and "
                    "nothing else, and --result keeps every case's output"
                )


def _checked(limit: Limit) -> Callable[[str], float | int]:
    def check(value: str) -> float | int:
        try:
            return limit.parse(value)
        except InvalidValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    check.__name__ = limit.name
    return check


def _name(value: str) -> str:
    if not value.isidentifier() or keyword.iskeyword(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a valid variable name")
    return value


# The options after the limits', as the help lists them.
_OPTIONS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("--image",), {"metavar": "NAME", "help": "image to run in (it must have python3)"}),
    (("--stdin",), {"metavar": "NAME", "help": "variable (str or bytes) fed to the code's stdin"}),
    (("--stdin-file",), {"metavar": "PATH", "help": "file fed to the code's stdin"}),
    (
        ("--in",),
        {
            "dest": "values",
            "metavar": "NAMES",
            "help": "notebook variables (comma-separated) sent as JSON and bound in the "
            "sandbox first",
        },
    ),
    (
        ("--return",),
        {
            "dest": "returns",
            "metavar": "NAME",
            "type": _name,
            "help": "bring the sandbox's variable NAME back, as JSON, into the notebook's NAME",
        },
    ),
    (
        ("--file",),
        {
            "dest": "files",
            "action": "append",
            "metavar": "NAME=SOURCE",
            "help": "put a file into /sandbox first: SOURCE is a variable (bytes or str) or a path",
        },
    ),
    (("--out",), {"metavar": "NAME", "type": _name, "help": "store stdout as a str here"}),
    (("--err",), {"metavar": "NAME", "type": _name, "help": "store stderr as a str here"}),
    (
        ("--result",),
        {"metavar": "NAME", "type": _name, "help": "store the RunResult (CheckResult) here"},
    ),
    (
        ("--cases",),
        {
            "metavar": "NAME",
            "help": "check the code against the test cases in this variable or .json/.yaml "
            "file, in fresh containers (a hidden case in one of its own), a badge per case",
        },
    ),
    (
        ("--assignment",),
        {
            "metavar": "NAME",
            "help": "check the code against an assignment the sandbox service holds: you see "
            "the visible cases' diffs, the hidden cases' verdicts, your attempts left",
        },
    ),
    (
        ("--no-raise-error",),
        {
            "action": "store_true",
            "help": "do not raise when the run does not end ok (by default it raises, so Run "
            "All stops)",
        },
    ),
    (("--no-widgets",), {"action": "store_true", "help": "plain text output even in Jupyter"}),
]


def cell_options(func: Any) -> Any:
    """Give the ``%%sandbox`` magic its parser and its help, from the table of limits."""
    specs = [
        (limit.flags, {"dest": limit.name, "metavar": limit.metavar, "type": _checked(limit),
                       "help": limit.help})
        for limit in LIMITS
        if limit.flags
    ] + _OPTIONS  # fmt: skip
    for flags, options in reversed(specs):
        func = argument(*flags, **options)(func)
    # IPython puts one "%" before the name in the usage line.
    return magic_arguments("%sandbox")(func)


def parse_options(parser: argparse.ArgumentParser, line: str) -> CellOptions:
    """The options of a cell's first line.

    Split by :func:`shlex.split` rather than IPython's ``parse_argstring``, which
    keeps quotes in values: ``--mem '100m'`` must mean ``100m``.
    """
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"%%sandbox: cannot split the options ({exc})") from None
    parsed = vars(parser.parse_args(argv))
    limits = {limit.name: parsed.pop(limit.name) for limit in LIMITS if limit.flags}
    parsed["files"] = parsed["files"] or []
    return CellOptions(
        limits={name: value for name, value in limits.items() if value is not None}, **parsed
    )
