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

import atexit
import contextlib
import os
import threading
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from traitlets import Bool, Float, Int, List, TraitError, Unicode, observe, validate

from ..core.errors import CheckerError, CodedockError, InvalidValueError, ServiceRefusedError
from ..core.limits import LIMIT, Limits, parse_size
from ..core.profile import DEFAULT_IMAGE, Profile
from ..core.request import Backend
from ..core.result import RunFailedError, RunResult
from ..engines import Engine
from ..engines.cleanup import remove_session, sweep
from ..grading.check import CheckFailedError, check
from ..local.pool import Pool
from ..remote.client import ServiceBackend
from ..runner import choose_backend, run
from . import info, inputs
from .checkviews import CheckTextView, CheckWidgetView
from .options import CellOptions, cell_options, parse_options
from .settings import EngineSettings, LimitSettings
from .views import TextView, WidgetView

__all__ = ["SandboxMagics", "load_ipython_extension", "unload_ipython_extension"]

NO_WIDGETS_ENV = "CODEDOCK_NO_WIDGETS"


# The pool settings, each of which resizes the pool when it changes.
_POOL = ("pool_size", "pool_max", "pool_idle")


@magics_class
class SandboxMagics(LimitSettings, EngineSettings, Magics):  # type: ignore[misc]
    """Run a cell's code in a fresh, locked-down container (``%%sandbox``).

    Each limit's default and ceiling (``timeout``, ``max_timeout``) are in ``LimitSettings``.
    """

    image = Unicode(DEFAULT_IMAGE, help="Default image; it must have python3.").tag(config=True)
    widgets = Bool(
        True, help="Show a live widget view in Jupyter (False: plain text everywhere)."
    ).tag(config=True)
    raise_error = Bool(True, help="Raise after showing the output when a run does not end ok.").tag(
        config=True
    )
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
    pool_max = Int(
        4,
        help="The most containers the pool keeps started while cells come in bursts; it "
        "grows by one for each cell that found it empty in the last 30 s, and is back to "
        "pool_size after 60 s without a cell (0, or below pool_size: a fixed pool of pool_size).",
    ).tag(config=True)
    pool_idle = Float(
        300.0, help="Seconds an unused pooled container is kept before it is replaced."
    ).tag(config=True)
    sweep_on_load = Bool(
        True, help="When the extension loads, remove containers orphaned by dead kernels."
    ).tag(config=True)

    @validate("max_stdin")
    def _check_max_stdin(self, proposal: Any) -> str:
        try:
            parse_size(proposal["value"], "max_stdin")
        except InvalidValueError as exc:
            raise TraitError(str(exc)) from None
        return str(proposal["value"])

    @validate("pool_size", "pool_max", "pool_idle")
    def _check_pool(self, proposal: Any) -> Any:
        name, value = proposal["trait"].name, proposal["value"]
        if value < 0 or (name == "pool_idle" and value == 0):
            raise TraitError(f"{name} must be {'positive' if value else '0 or more'}, not {value}")
        return value

    def __init__(self, shell: Any = None, engine: Engine | None = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self._engine = engine
        # Made for a local engine only: a kernel whose cells go to a service keeps none.
        self._pool: Pool | None = None
        #: What runs the cells: the sandbox service when one is set, else a local
        #: backend over this kernel's engine and pool.
        self.backend: Backend = self._make_backend()

    def _make_backend(self) -> Backend:
        if self.service_url:
            try:
                return choose_backend(
                    service_url=self.service_url, service_token=self.service_token
                )
            except InvalidValueError as exc:
                raise TraitError(f"SandboxMagics.service_url: {exc}") from None
        if self._engine is None:
            # Made when cells first run here, from the settings: a kernel whose cells go
            # to a service holds none. The pool serves on that engine.
            self._engine = self.connect_engine()
            self.close_pool()
        return choose_backend(engine=self._engine, pool=self.pool)

    @property
    def pool(self) -> Pool:
        """The warm pool on this kernel's engine, made when first asked for."""
        if self._pool is None:
            self._pool = Pool(self._engine, size=0)
        return self._pool

    def close_pool(self) -> None:
        """Remove the pool's idle containers and forget it (a kernel on a service has none)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

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

    @observe(*LIMIT, *(f"max_{name}" for name in LIMIT), "image", "allowed_images", *_POOL)
    def _on_config_change(self, change: Any) -> None:
        # Config given at construction arrives before the backend is chosen.
        if hasattr(self, "backend"):
            self._configure_pool()

    def _configure_pool(self) -> None:
        # Nothing to warm up for a service, or for a default image that is not allowed.
        if self.remote is not None or (
            self.allowed_images and self.image not in self.allowed_images
        ):
            if self._pool is not None:
                self._pool.configure(size=0, max_size=0)
            return
        limits, _ = self.limit_settings()
        profile = Profile(self.image, limits.container)
        # pool_size 0 still turns the pool off; a pool_max below it means a fixed pool.
        ceiling = max(self.pool_size, self.pool_max) if self.pool_size else 0
        self.pool.configure(
            size=self.pool_size, max_size=ceiling, profile=profile, idle=self.pool_idle
        )

    @property
    def sandbox_engine(self) -> Engine:
        """The engine cells run on (the one :attr:`engine` names)."""
        if self._engine is None:
            self._engine = self.connect_engine()
        return self._engine

    # -- %%sandbox ---------------------------------------------------------------

    @cell_options
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
        options = parse_options(self.sandbox.parser, line)
        limits, image = self._limits(options)
        if options.cases is not None or options.assignment is not None:
            self._check(options, cell, limits, image)
            return
        namespace = self._namespace()
        cap, shown = parse_size(self.max_stdin, "max_stdin"), self.max_stdin
        stdin = inputs.stdin(namespace, options.stdin, options.stdin_file, cap, shown)
        values = inputs.values(namespace, options.values, cap, shown)
        files = inputs.files(namespace, options.files, cap, shown)
        view = TextView() if self._plain(options) else WidgetView()
        # A service applies limits of its own, known with the result.
        view.start(limits if self.remote is None else None, image)
        result: RunResult = self._show(
            view,
            "%%sandbox",
            lambda: run(
                cell,
                stdin=stdin,
                limits=limits,
                image=image,
                on_output=view.on_output,
                on_state=view.on_state,
                backend=self.backend,
                asked=self._asked(options),
                values=values,
                returns=options.returns,
                files=files,
                on_image=view.on_image,
            ),
        )
        if self.shell is not None:
            for name, value in ((options.out, result.stdout), (options.err, result.stderr)):
                if name is not None:
                    self.shell.user_ns[name] = value
            if options.returns and result.returned:
                self.shell.user_ns[options.returns] = result.value
        self._store_result(options, result)
        if not result.ok and self._raises(options):
            raise RunFailedError(result)

    def _check(self, options: CellOptions, cell: str, limits: Limits, image: str) -> None:
        options.refuse_with_cases()
        view = CheckTextView() if self._plain(options) else CheckWidgetView()
        if options.assignment is not None:
            if self.remote is None:
                raise UsageError(
                    f"%%sandbox --assignment {options.assignment}: assignments are held by the "
                    "sandbox service, and this kernel has none; set CODEDOCK_SERVICE_URL (a "
                    "JupyterHub with codedock sets it) or SandboxMagics.service_url"
                )
            view.start(None, image, 0)
            name = options.assignment
            result = self._show(
                view,
                "%%sandbox --assignment",
                lambda: check(cell, assignment=name, on_case=view.on_case, backend=self.remote),
            )
        else:
            cases = inputs.cases(self._namespace(), options.cases or "")
            view.start(limits if self.remote is None else None, image, len(cases))
            result = self._show(
                view,
                "%%sandbox --cases",
                lambda: check(
                    cell,
                    cases,
                    limits=limits,
                    image=image,
                    on_case=view.on_case,
                    backend=self.backend,
                    asked=self._asked(options),
                ),
            )
        self._store_result(options, result)
        if not result.all_passed and self._raises(options):
            raise CheckFailedError(result)

    def _show(self, view: Any, what: str, call: Callable[[], Any]) -> Any:
        # One way for a run and a check: the view ends with the result, or is
        # abandoned with the error. A ceiling or a quota of the service, or a
        # checker that raised, is a usage problem, told in one line.
        try:
            result = call()
        except (ServiceRefusedError, CheckerError) as exc:
            view.abandon(exc)
            raise UsageError(f"{what}: {exc}") from None
        except BaseException as exc:
            view.abandon(exc)
            raise
        view.finish(result)
        return result

    def _namespace(self) -> dict[str, Any]:
        return self.shell.user_ns if self.shell is not None else {}

    def _store_result(self, options: CellOptions, result: Any) -> None:
        if options.result is not None and self.shell is not None:
            self.shell.user_ns[options.result] = result

    def _raises(self, options: CellOptions) -> bool:
        return bool(self.raise_error and not options.no_raise_error)

    def _plain(self, options: CellOptions) -> bool:
        # Text, not widgets: asked for, or no frontend that could show one.
        frontend = getattr(self.shell, "kernel", None) is not None
        no_widgets = options.no_widgets or not self.widgets or os.environ.get(NO_WIDGETS_ENV)
        return bool(no_widgets or not frontend)

    def _asked(self, options: CellOptions) -> set[str]:
        # What this cell or this kernel's config chose: a service fills the rest
        # from its own defaults, so a kernel left alone gets what the admin set.
        defaults: Any = self.trait_defaults(*LIMIT, "image")
        return options.asked | {n for n, v in defaults.items() if getattr(self, n) != v}

    def _limits(self, options: CellOptions) -> tuple[Limits, str]:
        defaults, ceilings = self.limit_settings()
        limits = defaults.replace(**options.limits) if options.limits else defaults
        over = ceilings.over(limits, options.limits)
        if over is not None:
            limit = LIMIT[over]
            raise UsageError(
                f"{limit.flags[0]} {limit.show(options.limits[over])} exceeds the ceiling "
                f"{ceilings.setting(over)} = {ceilings.shown(over)} set by your administrator"
            )
        image = options.image or self.image
        if self.allowed_images and image not in self.allowed_images:
            raise UsageError(
                f"--image {image} is not allowed; SandboxMagics.allowed_images = "
                f"{list(self.allowed_images)}"
            )
        return limits, image

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
            limits, image = self._limits(CellOptions())
            findings = diagnose(
                image=image, limits=limits, engine=self.sandbox_engine, backend=self.backend
            )
        print(report(findings))

    @line_magic
    def sandbox_assignments(self, line: str = "") -> None:
        """List the assignments the sandbox service holds for you, with their states
        (not open yet, open, due, closed), your attempts left and when the next is allowed."""
        if self.remote is None:
            raise UsageError(
                "%sandbox_assignments: assignments are held by the sandbox service, and this "
                "kernel has none; set CODEDOCK_SERVICE_URL or SandboxMagics.service_url"
            )
        try:
            listed = self.remote.assignments().get("assignments", [])
        except CodedockError as exc:
            raise UsageError(f"%sandbox_assignments: {exc}") from None
        print("\n".join(info.assignment_lines(listed)))

    @line_magic
    def sandbox_info(self, line: str = "") -> None:
        """Show this kernel's sandbox settings, ceilings, engine and image in one place."""
        if self.remote is not None:
            info.service(self.remote, self.widgets, self.raise_error)
        else:
            info.local(self)


def _quiet_sweep(engine: Engine | None) -> None:
    # Best effort: a kernel must start even when the engine is down.
    with contextlib.suppress(Exception):
        sweep(engine)


def _quiet_cleanup(magics: SandboxMagics) -> None:
    with contextlib.suppress(Exception):
        magics.close_pool()
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
    magics.close_pool()
    for kind in ("cell", "line"):
        for name in list(magics.magics[kind]):
            ipython.magics_manager.magics[kind].pop(name, None)
