"""The ``%%sandbox`` cell magic, its configuration, and the helper line magics.

Defaults and ceilings are traitlets on :class:`SandboxMagics`, so they are set as
IPython's own magics are::

    %config SandboxMagics.timeout = 5                     # in a notebook
    c.SandboxMagics.max_memory = "512m"                   # ipython_kernel_config.py

These are a convenience for a user who holds the engine anyway. In a multi-user
hub, ``$CODEDOCK_SERVICE_URL`` (or ``SandboxMagics.service_url``) sends every
run to the sandbox service, whose own policy decides: this kernel's settings
can then only ask for less.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import keyword
import os
import shlex
import threading
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from traitlets import (
    Bool,
    Dict,
    Float,
    Int,
    List,
    TraitError,
    Unicode,
    default,
    observe,
    validate,
)

from ..core.errors import (
    CheckerError,
    CodedockError,
    ImageNotFoundError,
    InvalidValueError,
    ServiceRefusedError,
)
from ..core.limits import LIMIT_FIELDS, Limits, format_size, parse_size
from ..core.profile import DEFAULT_IMAGE, Profile
from ..core.request import Backend, check_file_name
from ..core.result import RunFailedError, RunResult
from ..engines import Engine, connect
from ..engines.cleanup import remove_session, sweep
from ..grading.cases import Case, load_cases
from ..grading.check import CheckFailedError, check
from ..local.backend import LocalBackend
from ..local.pool import Pool
from ..local.rich import values_to_json
from ..remote.client import SERVICE_URL_ENV, ServiceBackend
from ..runner import run
from .checkviews import CheckTextView, CheckView, CheckWidgetView
from .views import TextView, View, WidgetView

__all__ = ["SandboxMagics", "load_ipython_extension", "unload_ipython_extension"]

NO_WIDGETS_ENV = "CODEDOCK_NO_WIDGETS"

_SIZES = ("memory", "output", "workdir")

# The parsed options of a cell that sets none: what the defaults resolve to.
_NO_OPTIONS = argparse.Namespace(timeout=None, memory=None, cpus=None, pids=None, image=None)


def _size_trait_check(name: str, value: str, *, empty_ok: bool = False) -> str:
    if empty_ok and value == "":
        return value
    try:
        parse_size(value, name)
    except InvalidValueError as exc:
        raise TraitError(str(exc)) from None
    return value


@magics_class
class SandboxMagics(Magics):
    """Run a cell's code in a fresh, locked-down container (``%%sandbox``)."""

    timeout = Float(10.0, help="Default wall-clock limit of a cell, in seconds.").tag(config=True)
    memory = Unicode("256m", help="Default memory limit (swap disabled), e.g. 100m or 1g.").tag(
        config=True
    )
    cpus = Float(1.0, help="Default CPU share, e.g. 0.5 for half a core.").tag(config=True)
    pids = Int(64, help="Default limit on processes and threads inside the sandbox.").tag(
        config=True
    )
    output = Unicode(
        "1m", help="Bytes of stdout and of stderr kept; past that a head and a tail."
    ).tag(config=True)
    workdir = Unicode("64m", help="Size of the writable work dir /sandbox.").tag(config=True)
    image = Unicode(DEFAULT_IMAGE, help="Default image; it must have python3.").tag(config=True)
    widgets = Bool(
        True, help="Show a live widget view in Jupyter (False: plain text everywhere)."
    ).tag(config=True)
    raise_error = Bool(True, help="Raise after showing the output when a run does not end ok.").tag(
        config=True
    )
    max_timeout = Float(
        0.0, help="Ceiling: the longest timeout a cell may ask for (0: no ceiling)."
    ).tag(config=True)
    max_memory = Unicode("", help="Ceiling: the most memory a cell may ask for ('': none).").tag(
        config=True
    )
    max_cpus = Float(0.0, help="Ceiling: the most CPUs a cell may ask for (0: none).").tag(
        config=True
    )
    max_pids = Int(
        0, help="Ceiling: the most processes and threads a cell may ask for (0: none)."
    ).tag(config=True)
    max_output = Unicode("", help="Ceiling: the largest output cap ('': none).").tag(config=True)
    max_workdir = Unicode("", help="Ceiling: the largest work dir ('': none).").tag(config=True)
    max_stdin = Unicode(
        "16m",
        help="Ceiling: the most stdin a cell may feed its program, from --stdin or --stdin-file.",
    ).tag(config=True)
    allowed_images = List(
        Unicode(), default_value=[], help="Ceiling: the only images cells may use ([]: any)."
    ).tag(config=True)
    pool_size = Int(
        2,
        help="Containers started ahead of time for the default image and limits, so a cell "
        "does not wait for one (0: none). Each still serves a single run.",
    ).tag(config=True)
    pool_idle = Float(
        300.0, help="Seconds an unused pooled container is kept before it is replaced."
    ).tag(config=True)
    sweep_on_load = Bool(
        True, help="When the extension loads, remove containers orphaned by dead kernels."
    ).tag(config=True)
    service_url = Unicode(
        help="The sandbox service that runs the cells, e.g. http://127.0.0.1:8765 "
        f"(default: ${SERVICE_URL_ENV}; '': this kernel's own engine). With one, the "
        "kernel needs no engine, and the service's limits apply."
    ).tag(config=True)
    service_token = Unicode(
        help="The token sent to the service (default: $CODEDOCK_SERVICE_TOKEN, else "
        "the hub's $JUPYTERHUB_API_TOKEN)."
    ).tag(config=True)
    engine = Unicode(
        "",
        help="The engine the cells' sandboxes run on, by name ('': $CODEDOCK_ENGINE, else "
        "docker); more register in the codedock_magic.engines entry-point group. Read when "
        "the extension loads.",
    ).tag(config=True)
    engine_options = Dict(
        help="The engine's options, e.g. docker's base_url, timeout, runtime ('runsc' for "
        "gVisor) and init.",
    ).tag(config=True)

    @default("service_url")
    def _default_service_url(self) -> str:
        return os.environ.get(SERVICE_URL_ENV, "").strip()

    @validate("memory", "output", "workdir")
    def _check_size(self, proposal: Any) -> str:
        return _size_trait_check(proposal["trait"].name, proposal["value"])

    @validate("max_memory", "max_output", "max_workdir")
    def _check_max_size(self, proposal: Any) -> str:
        return _size_trait_check(proposal["trait"].name, proposal["value"], empty_ok=True)

    @validate("max_stdin")
    def _check_max_stdin(self, proposal: Any) -> str:
        return _size_trait_check("max_stdin", proposal["value"])

    @validate("max_pids")
    def _check_max_pids(self, proposal: Any) -> int:
        if proposal["value"] < 0:
            raise TraitError(f"max_pids must be 0 (no ceiling) or more, not {proposal['value']}")
        return int(proposal["value"])

    @validate("pool_size")
    def _check_pool_size(self, proposal: Any) -> int:
        if proposal["value"] < 0:
            raise TraitError(f"pool_size must be 0 or more, not {proposal['value']}")
        return int(proposal["value"])

    @validate("timeout", "cpus", "pids", "pool_idle")
    def _check_positive(self, proposal: Any) -> Any:
        if proposal["value"] <= 0:
            raise TraitError(f"{proposal['trait'].name} must be positive, not {proposal['value']}")
        return proposal["value"]

    def __init__(self, shell: Any = None, engine: Engine | None = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        # A kernel whose cells go to a sandbox service holds no engine at all.
        self._engine = engine
        if engine is None and not self.service_url:
            self._engine = self._connect()
        self.pool = Pool(self._engine, size=0)
        #: What runs the cells: the sandbox service when one is set, else a local
        #: backend over this kernel's engine and pool.
        self.backend: Backend = self._make_backend()

    def _make_backend(self) -> Backend:
        if self.service_url:
            try:
                return ServiceBackend(self.service_url, self.service_token or None)
            except InvalidValueError as exc:
                raise TraitError(f"SandboxMagics.service_url: {exc}") from None
        return LocalBackend(self._engine, pool=self.pool)

    @property
    def remote(self) -> ServiceBackend | None:
        """The sandbox service cells go to, or ``None`` when they run on a local engine."""
        return self.backend if isinstance(self.backend, ServiceBackend) else None

    @observe("service_url", "service_token")
    def _on_service_change(self, change: Any) -> None:
        if hasattr(self, "backend"):
            self.backend = self._make_backend()
            self._configure_pool()

    def start_pool(self) -> None:
        """Size the warm pool from the config and start filling it in the background.

        With a sandbox service the kernel keeps no pool: the service has its own.
        """
        self._configure_pool()
        if self.remote is None:
            self.pool.start()

    @observe(
        "timeout",
        "memory",
        "cpus",
        "pids",
        "workdir",
        "image",
        "pool_size",
        "pool_idle",
        "max_timeout",
        "max_memory",
        "max_cpus",
        "max_pids",
        "max_output",
        "max_workdir",
        "allowed_images",
    )
    def _on_config_change(self, change: Any) -> None:
        # Config given at construction arrives before the pool exists.
        if hasattr(self, "pool"):
            self._configure_pool()

    def _configure_pool(self) -> None:
        if self.remote is not None:
            self.pool.configure(size=0)
            return
        try:
            limits, image = self._limits(_NO_OPTIONS)
        except UsageError:
            # The default image is not allowed: nothing to warm up.
            self.pool.configure(size=0)
            return
        self.pool.configure(
            size=self.pool_size, profile=Profile(image, limits.container), idle=self.pool_idle
        )

    @property
    def sandbox_engine(self) -> Engine:
        """The engine cells run on (the one :attr:`engine` names)."""
        if self._engine is None:
            self._engine = self._connect()
        return self._engine

    def _connect(self) -> Engine:
        try:
            return connect(self.engine or None, **self.engine_options)
        except InvalidValueError as exc:
            raise TraitError(f"SandboxMagics.engine: {exc}") from None

    # -- %%sandbox ---------------------------------------------------------------

    # IPython puts one "%" before the name in the usage line.
    @magic_arguments("%sandbox")
    @argument("--timeout", metavar="SECONDS", help="wall-clock limit, e.g. 2 or 0.5")
    @argument("--mem", "--memory", dest="memory", metavar="SIZE", help="memory, e.g. 100m or 1g")
    @argument("--cpus", metavar="N", help="CPU share, e.g. 0.5")
    @argument("--pids", metavar="N", help="most processes and threads at once")
    @argument("--image", metavar="NAME", help="image to run in (it must have python3)")
    @argument("--stdin", metavar="NAME", help="variable (str or bytes) fed to the code's stdin")
    @argument("--stdin-file", metavar="PATH", help="file fed to the code's stdin")
    @argument(
        "--in",
        dest="values",
        metavar="NAMES",
        help="notebook variables (comma-separated) sent as JSON and bound in the sandbox first",
    )
    @argument(
        "--return",
        dest="returns",
        metavar="NAME",
        help="bring the sandbox's variable NAME back, as JSON, into the notebook's NAME",
    )
    @argument(
        "--file",
        dest="files",
        action="append",
        metavar="NAME=SOURCE",
        help="put a file into /sandbox first: SOURCE is a variable (bytes or str) or a path",
    )
    @argument("--out", metavar="NAME", help="store stdout as a str in this variable")
    @argument("--err", metavar="NAME", help="store stderr as a str in this variable")
    @argument("--result", metavar="NAME", help="store the RunResult (CheckResult) here")
    @argument(
        "--cases",
        metavar="NAME",
        help="check the code against the test cases in this variable or .json/.yaml file, "
        "all in one container, a badge per case",
    )
    @argument(
        "--no-raise-error",
        action="store_true",
        help="do not raise when the run does not end ok (by default it raises, so Run All stops)",
    )
    @argument("--no-widgets", action="store_true", help="plain text output even in Jupyter")
    @cell_magic
    def sandbox(self, line: str, cell: str) -> None:
        """Run the cell's Python code in a fresh, locked-down Docker container.

        The code runs with python3 in the image, as an unprivileged user with no
        network, under the limits given here or configured on SandboxMagics
        (%config SandboxMagics). Output streams in live; a badge tells how the run
        ended: ok, error (exit code), timeout, memory limit, killed by signal or
        interrupted. The notebook's Interrupt button stops the run.

        Example::

            %%sandbox --timeout 2 --mem 100m
            print(sum(range(10)))
        """
        args = self._parse(line)
        limits, image = self._limits(args)
        for name in (args.out, args.err, args.result):
            if name is not None and (not name.isidentifier() or keyword.iskeyword(name)):
                raise UsageError(f"{name!r} is not a valid variable name")
        if args.returns is not None and (
            not args.returns.isidentifier() or keyword.iskeyword(args.returns)
        ):
            raise UsageError(f"--return: {args.returns!r} is not a valid variable name")
        if args.cases is not None:
            self._check(args, cell, limits, image)
            return
        stdin = self._stdin(args)
        values = self._values(args.values)
        files = self._files(args.files or [])
        view = self._view(args.no_widgets)
        # A service applies limits of its own, known with the result.
        view.start(limits if self.remote is None else None, image)
        try:
            result = run(
                cell,
                stdin=stdin,
                limits=limits,
                image=image,
                on_output=view.on_output,
                on_state=view.on_state,
                backend=self.backend,
                asked=self._asked(args),
                values=values,
                returns=args.returns,
                files=files,
                on_image=view.on_image,
            )
        except ServiceRefusedError as exc:
            # A ceiling or a quota of the service: a usage problem, told in one line.
            view.abandon(exc)
            raise UsageError(f"%%sandbox: {exc}") from None
        except BaseException as exc:
            view.abandon(exc)
            raise
        view.finish(result)
        self._store(args, result)
        if not result.ok and self.raise_error and not args.no_raise_error:
            raise RunFailedError(result)

    def _check(self, args: Any, cell: str, limits: Limits, image: str) -> None:
        for option, given in (
            ("--stdin", args.stdin),
            ("--stdin-file", args.stdin_file),
            ("--out", args.out),
            ("--err", args.err),
            ("--in", args.values),
            ("--return", args.returns),
            ("--file", args.files),
        ):
            if given is not None:
                raise UsageError(
                    f"{option} does not go with --cases: a case brings its own stdin and "
                    "nothing else, and --result keeps every case's output"
                )
        cases = self._cases(args.cases)
        view: CheckView = CheckTextView() if self._plain(args.no_widgets) else CheckWidgetView()
        view.start(limits if self.remote is None else None, image, len(cases))
        try:
            result = check(
                cell,
                cases,
                limits=limits,
                image=image,
                on_case=view.on_case,
                backend=self.backend,
                asked=self._asked(args),
            )
        except (ServiceRefusedError, CheckerError) as exc:
            view.abandon(exc)
            raise UsageError(f"%%sandbox --cases: {exc}") from None
        except BaseException as exc:
            view.abandon(exc)
            raise
        view.finish(result)
        if args.result is not None and self.shell is not None:
            self.shell.user_ns[args.result] = result
        if not result.all_passed and self.raise_error and not args.no_raise_error:
            raise CheckFailedError(result)

    def _cases(self, name: str) -> list[Case]:
        namespace = self.shell.user_ns if self.shell is not None else {}
        if name in namespace:
            source: object = namespace[name]
        elif Path(name).expanduser().is_file():
            source = Path(name).expanduser()
        else:
            raise UsageError(
                f"--cases: no variable named {name!r} in the notebook, and no file {name}"
            )
        try:
            return load_cases(source)
        except InvalidValueError as exc:
            raise UsageError(f"--cases {name}: {exc}") from None

    def _asked(self, args: Any) -> set[str]:
        # What this cell or this kernel's config chose: a service fills the rest
        # from its own defaults, so a kernel left alone gets what the admin set.
        asked = {name for name in ("timeout", "memory", "cpus", "pids") if getattr(args, name)}
        defaults: Any = self.trait_defaults(*LIMIT_FIELDS, "image")
        asked |= {name for name, value in defaults.items() if getattr(self, name) != value}
        if args.image:
            asked.add("image")
        return asked

    def _parse(self, line: str) -> Any:
        try:
            argv = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"%%sandbox: cannot split the options ({exc})") from None
        return self.sandbox.parser.parse_args(argv)

    def _limits(self, args: Any) -> tuple[Limits, str]:
        asked = {
            "timeout": args.timeout,
            "memory": args.memory,
            "cpus": args.cpus,
            "pids": args.pids,
        }
        option = {"timeout": "--timeout", "memory": "--mem", "cpus": "--cpus", "pids": "--pids"}
        try:
            limits = Limits(
                timeout=args.timeout if args.timeout is not None else self.timeout,
                memory=args.memory if args.memory is not None else self.memory,
                cpus=args.cpus if args.cpus is not None else self.cpus,
                pids=args.pids if args.pids is not None else self.pids,
                output=self.output,
                workdir=self.workdir,
            )
        except InvalidValueError as exc:
            raise UsageError(f"{option.get(exc.name, exc.name)}: {exc}") from None
        ceilings = {
            "timeout": self.max_timeout or None,
            "memory": parse_size(self.max_memory, "max_memory") if self.max_memory else None,
            "cpus": self.max_cpus or None,
            "pids": self.max_pids or None,
            "output": parse_size(self.max_output, "max_output") if self.max_output else None,
            "workdir": parse_size(self.max_workdir, "max_workdir") if self.max_workdir else None,
        }
        clamped: dict[str, Any] = {}
        for name, ceiling in ceilings.items():
            value = getattr(limits, name)
            if ceiling is None or value <= ceiling:
                continue
            if asked.get(name) is not None:
                shown = format_size(int(ceiling)) if name in _SIZES else f"{ceiling:g}"
                raise UsageError(
                    f"{option[name]} {asked[name]} exceeds the ceiling "
                    f"SandboxMagics.max_{name} = {shown} set by your administrator"
                )
            # A configured default above the ceiling is brought down to it.
            clamped[name] = ceiling
        if clamped:
            limits = limits.replace(**clamped)
        image = args.image or self.image
        if self.allowed_images and image not in self.allowed_images:
            raise UsageError(
                f"--image {image} is not allowed; SandboxMagics.allowed_images = "
                f"{list(self.allowed_images)}"
            )
        return limits, image

    def _stdin(self, args: Any) -> bytes | str | None:
        cap = parse_size(self.max_stdin, "max_stdin")

        def too_much(source: str) -> UsageError:
            return UsageError(
                f"{source} holds more than SandboxMagics.max_stdin = {self.max_stdin}; feed "
                "the program less, or ask your administrator to raise the ceiling"
            )

        if args.stdin is not None and args.stdin_file is not None:
            raise UsageError("give --stdin or --stdin-file, not both")
        if args.stdin is not None:
            namespace = self.shell.user_ns if self.shell is not None else {}
            if args.stdin not in namespace:
                raise UsageError(f"--stdin: no variable named {args.stdin!r} in the notebook")
            value = namespace[args.stdin]
            if not isinstance(value, (str, bytes)):
                raise UsageError(
                    f"--stdin: {args.stdin} holds a {type(value).__name__}, not str or bytes"
                )
            data = value.encode("utf-8") if isinstance(value, str) else value
            if len(data) > cap:
                raise too_much(f"--stdin {args.stdin}")
            return data
        if args.stdin_file is not None:
            path = Path(args.stdin_file).expanduser()
            try:
                # Read one byte past the ceiling at most: an endless file such as
                # /dev/zero must not be read forever.
                with path.open("rb") as handle:
                    data = handle.read(cap + 1)
            except OSError as exc:
                raise UsageError(f"--stdin-file: cannot read {path}: {exc.strerror}") from None
            if len(data) > cap:
                raise too_much(f"--stdin-file {path}")
            return data
        return None

    def _plain(self, no_widgets: bool) -> bool:
        # Text, not widgets: asked for, or no frontend that could show one.
        frontend = getattr(self.shell, "kernel", None) is not None
        return bool(
            no_widgets or not self.widgets or not frontend or os.environ.get(NO_WIDGETS_ENV)
        )

    def _values(self, names: str | None) -> dict[str, Any] | None:
        if not names:
            return None
        namespace = self.shell.user_ns if self.shell is not None else {}
        values = {}
        for name in (part.strip() for part in names.split(",")):
            if name not in namespace:
                raise UsageError(f"--in: no variable named {name!r} in the notebook")
            values[name] = namespace[name]
        try:
            sent = values_to_json(values)
        except InvalidValueError as exc:
            raise UsageError(
                f"--in {exc.name}: {exc.name} holds a {exc.value}, not {exc.expected}"
            ) from None
        if len(sent) > parse_size(self.max_stdin, "max_stdin"):
            raise UsageError(
                f"--in {names}: more JSON than SandboxMagics.max_stdin = {self.max_stdin}"
            )
        return values

    def _files(self, specs: list[str]) -> dict[str, bytes]:
        namespace = self.shell.user_ns if self.shell is not None else {}
        cap = parse_size(self.max_stdin, "max_stdin")
        files: dict[str, bytes] = {}
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
                    with path.open("rb") as handle:
                        data = handle.read(cap + 1)
                except OSError as exc:
                    raise UsageError(
                        f"--file {spec}: no variable {source!r}, and cannot read {path}: "
                        f"{exc.strerror}"
                    ) from None
            files[name] = data
            if sum(len(d) for d in files.values()) > cap:
                raise UsageError(
                    f"--file {spec}: the files hold more than SandboxMagics.max_stdin = "
                    f"{self.max_stdin}; send less, or ask your administrator to raise it"
                )
        return files

    def _view(self, no_widgets: bool) -> View:
        return TextView() if self._plain(no_widgets) else WidgetView()

    def _store(self, args: Any, result: RunResult) -> None:
        if self.shell is None:
            return
        for name, value in (
            (args.out, result.stdout),
            (args.err, result.stderr),
            (args.result, result),
        ):
            if name is not None:
                self.shell.user_ns[name] = value
        returned = args.returns is not None and not any(
            note.startswith(f"--return {args.returns}:") for note in result.notes
        )
        if returned:
            self.shell.user_ns[args.returns] = result.value

    # -- line magics -------------------------------------------------------------

    @line_magic
    def sandbox_cleanup(self, line: str = "") -> int:
        """Remove every sandbox container this kernel started, and say how many."""
        if self.remote is not None:
            print(
                f"runs go to the sandbox service at {self.remote.url}, which removes each "
                "container when its run ends or this kernel goes; nothing to remove here"
            )
            return 0
        count = remove_session(self.sandbox_engine)
        print(f"removed {count} sandbox container(s) of this kernel")
        return count

    @line_magic
    def sandbox_doctor(self, line: str = "") -> None:
        """Check each promise of a sandbox, as this kernel's cells meet it: a row each."""
        from ..doctor import diagnose, report

        if self.remote is not None:
            # The service applies its own defaults; the kernel's do not count.
            findings = diagnose(image=self.image, backend=self.remote)
        else:
            limits, image = self._limits(_NO_OPTIONS)
            findings = diagnose(
                image=image, limits=limits, engine=self.sandbox_engine, backend=self.backend
            )
        print(report(findings))

    @line_magic
    def sandbox_info(self, line: str = "") -> None:
        """Show this kernel's sandbox settings, ceilings, engine and image in one place."""
        if self.remote is not None:
            self._service_info(self.remote)
            return
        print("defaults:  " + self._defaults_line())
        ceilings = [
            f"max_timeout={self.max_timeout:g}" if self.max_timeout else "",
            f"max_memory={self.max_memory}" if self.max_memory else "",
            f"max_cpus={self.max_cpus:g}" if self.max_cpus else "",
            f"max_pids={self.max_pids}" if self.max_pids else "",
            f"max_output={self.max_output}" if self.max_output else "",
            f"max_workdir={self.max_workdir}" if self.max_workdir else "",
            f"max_stdin={self.max_stdin}",
            f"allowed_images={list(self.allowed_images)}" if self.allowed_images else "",
        ]
        print("ceilings:  " + (", ".join(c for c in ceilings if c) or "none"))
        print(f"view:      {'widgets' if self.widgets else 'text'}, raise_error={self.raise_error}")
        pool = self.pool
        warm = f"{pool.ready} of {pool.size} ready, idle {pool.idle:g}s, hits {pool.hits}"
        problem = f"; PROBLEM refilling: {pool.last_error}" if pool.last_error else ""
        print(f"pool:      {warm}, cold starts {pool.misses}{problem}")
        try:
            engine = self.sandbox_engine
            engine.ping()
            print(f"engine:    answering at {engine.address}")
        except CodedockError as exc:
            print(f"engine:    PROBLEM: {exc}")
            return
        try:
            present = engine.image_exists(self.image)
        except CodedockError as exc:
            print(f"image:     PROBLEM: {exc}")
            return
        if present:
            print(f"image:     {self.image} (present)")
        else:
            print(f"image:     PROBLEM: {ImageNotFoundError(self.image)}")

    def _service_info(self, service: ServiceBackend) -> None:
        print(f"service:   {service.url}")
        try:
            info = service.info()
        except CodedockError as exc:
            print(f"service:   PROBLEM: {exc}")
            return
        groups = ", ".join(info.get("groups", [])) or "none"
        print(f"user:      {info.get('user')} (groups: {groups})")
        sizes = ("memory", "output", "workdir")

        def shown(name: str, value: Any) -> str:
            return format_size(int(value)) if name in sizes else f"{value:g}"

        defaults = info.get("defaults", {})
        print(
            "defaults:  "
            + " ".join(f"{n}={shown(n, defaults[n])}" for n in LIMIT_FIELDS if n in defaults)
            + f" image={info.get('default_image')}"
        )
        ceilings = info.get("ceilings", {})
        listed = [f"max_{n}={shown(n, ceilings[n])}" for n in LIMIT_FIELDS if n in ceilings]
        listed.append(f"allowed_images={info.get('allowed_images') or 'any'}")
        print("ceilings:  " + ", ".join(listed) + "  (the service's; this kernel's do not apply)")
        print(
            f"quota:     {info.get('max_concurrent_per_user')} runs at once, "
            f"{info.get('max_queued_per_user')} queued; code up to "
            f"{format_size(int(info.get('max_code_bytes', 0)))}, stdin up to "
            f"{format_size(int(info.get('max_stdin_bytes', 0)))}"
        )
        print(f"view:      {'widgets' if self.widgets else 'text'}, raise_error={self.raise_error}")

    def _defaults_line(self) -> str:
        return (
            f"timeout={self.timeout:g}s memory={self.memory} cpus={self.cpus:g} pids={self.pids} "
            f"output={self.output} workdir={self.workdir} image={self.image}"
        )


def _quiet_sweep(engine: Engine | None) -> None:
    # Best effort: a kernel must start even when the engine is down.
    with contextlib.suppress(Exception):
        sweep(engine)


def _quiet_cleanup(magics: SandboxMagics) -> None:
    with contextlib.suppress(Exception):
        magics.pool.close()
    if magics.remote is not None:
        return  # the kernel holds no engine; its closed connections end its runs
    with contextlib.suppress(Exception):
        remove_session(magics._engine)


_loaded: dict[int, SandboxMagics] = {}


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%%sandbox``, ``%sandbox_cleanup``, ``%sandbox_info`` and ``%sandbox_doctor``.

    Also starts the warm pool and, in the background, removes containers orphaned
    by dead kernels on this host; this kernel's own containers go when it exits.
    """
    if id(ipython) in _loaded:
        return
    magics = SandboxMagics(shell=ipython)
    ipython.register_magics(magics)
    _loaded[id(ipython)] = magics
    if magics.sweep_on_load and magics.remote is None:
        threading.Thread(
            target=_quiet_sweep, args=(magics._engine,), name="codedock-sweep", daemon=True
        ).start()
    magics.start_pool()
    atexit.register(_quiet_cleanup, magics)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the magics registered by :func:`load_ipython_extension`."""
    magics = _loaded.pop(id(ipython), None)
    if magics is None:
        return
    magics.pool.close()
    for kind in ("cell", "line"):
        for name in list(magics.magics[kind]):
            ipython.magics_manager.magics[kind].pop(name, None)
