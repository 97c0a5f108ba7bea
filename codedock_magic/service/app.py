"""``codedock serve``: the sandbox service, the one process that holds the engine.

A traitlets application, configured as Jupyter's own are::

    codedock serve --config /etc/codedock/codedock_service_config.py

    # codedock_service_config.py
    c.SandboxService.max_memory = "512m"
    c.SandboxService.group_settings = {"teachers": {"max_memory": "2g", "max_timeout": 300}}

Without ``--config`` it reads ``/etc/codedock/codedock_service_config.py`` when
that file exists. A bad setting stops it before it listens, with one line
naming the setting. Started by JupyterHub (see ``codedock hub-config``)
it checks tokens with the hub; otherwise with its ``api_tokens``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from tornado import httpserver, web
from tornado.netutil import bind_sockets
from traitlets import (
    Dict,
    Float,
    HasTraits,
    Int,
    List,
    MetaHasTraits,
    TraitError,
    TraitType,
    Unicode,
    default,
)
from traitlets.config import Application, Config
from traitlets.config.loader import PyFileConfigLoader

from ..core.errors import CodedockError, InvalidValueError
from ..core.limits import LIMITS, Kind, Limit, Limits, parse_size
from ..core.profile import Profile
from ..core.version import __version__
from ..engines import Engine, connect
from ..engines.cleanup import sweep
from ..gradebook import Gradebook
from ..grading.assignments import load_assignments
from ..local.backend import LocalBackend
from ..local.pool import Pool, Pools
from .assignments import assignment_handlers
from .audit import AuditLog
from .auth import Caller, TokenChecker
from .boundary import ConnectionCaps, Door, DoorServer, access_log, clip_tornado_log
from .handlers import handlers
from .metrics import Metrics
from .policy import SETTINGS, Policy
from .refusals import RefusalLimiter
from .scheduler import FairScheduler
from .starts import TurnTakingStarts
from .state import LiveRun, ServiceState
from .unread import UnreadLedger

__all__ = [
    "DEFAULT_CONFIG",
    "SandboxService",
    "assignments_dir_from_config",
    "db_url_from_config",
    "main",
    "run_defaults_from_config",
]

#: Read when no ``--config`` is given and the file exists.
DEFAULT_CONFIG = "/etc/codedock/codedock_service_config.py"

#: Seconds the hub's answer about a token is kept: a revoked token stops working
#: within them.
TOKEN_CACHE_SECONDS = 4
#: The most containers an admin may ask one pool to keep ready.
WARM_MAX = 64


def _limit_trait(limit: Limit, value: Any, help: str) -> TraitType[Any, Any]:
    kind = {Kind.SIZE: Unicode, Kind.COUNT: Int}.get(limit.kind, Float)
    trait: TraitType[Any, Any] = kind(value, help=help).tag(config=True)
    return trait


def _limit_settings() -> dict[str, TraitType[Any, Any]]:
    traits = {}
    for limit in LIMITS:
        none = "''" if limit.is_size else "0"
        traits[f"default_{limit.name}"] = _limit_trait(
            limit, limit.default, f"The {limit.help} of a run that asks for none."
        )
        traits[f"max_{limit.name}"] = _limit_trait(
            limit, limit.ceiling, f"Ceiling on a run's {limit.help} ({none}: none)."
        )
    return traits


# Each limit's default and ceiling, made from the table of limits.
_LimitSettings: Any = MetaHasTraits("_LimitSettings", (HasTraits,), _limit_settings())


class SandboxService(_LimitSettings, Application):  # type: ignore[misc]
    """The sandbox service: an HTTP API over the engine, under the service's policy."""

    name = "codedock-serve"
    description = __doc__
    version = __version__

    aliases = {  # noqa: RUF012 (traitlets reads it from the class)
        "config": "SandboxService.config_file",
        "ip": "SandboxService.ip",
        "port": "SandboxService.port",
        "log-level": "Application.log_level",
    }

    config_file = Unicode("", help=f"The config file to load (default: {DEFAULT_CONFIG}).").tag(
        config=True
    )
    ip = Unicode("127.0.0.1", help="The address to listen on.").tag(config=True)
    port = Int(8765, help="The port to listen on (0: any free one).").tag(config=True)

    default_image = Unicode(SETTINGS["default_image"], help="Image of a run that names none.").tag(
        config=True
    )
    max_code_bytes = Unicode(
        SETTINGS["max_code_bytes"], help="The largest code a run may send."
    ).tag(config=True)
    max_stdin_bytes = Unicode(
        SETTINGS["max_stdin_bytes"],
        help="The most a run may feed its program: stdin, files and values (and all its "
        "cases' stdin) together.",
    ).tag(config=True)
    allowed_images = List(
        Unicode(),
        default_value=SETTINGS["allowed_images"],
        help="The only images runs may use ([]: any).",
    ).tag(config=True)
    max_concurrent_per_user = Int(
        SETTINGS["max_concurrent_per_user"], help="Runs of one user at once; more wait in a queue."
    ).tag(config=True)
    max_queued_per_user = Int(
        SETTINGS["max_queued_per_user"],
        help="Runs of one user waiting; past that, refused (HTTP 429).",
    ).tag(config=True)
    max_cases = Int(
        SETTINGS["max_cases"], help="The most test cases one run (one check) may have."
    ).tag(config=True)
    max_run_seconds = Float(
        SETTINGS["max_run_seconds"],
        help="The most seconds a whole run may ask for: its timeout, or its cases' "
        "timeouts together (0: no bound).",
    ).tag(config=True)
    group_settings = Dict(
        help="Settings by hub group, e.g. {'teachers': {'max_memory': '2g'}}; a user in "
        "several groups gets the most generous value of each."
    ).tag(config=True)

    max_concurrent = Int(8, help="Runs at once across all users.").tag(config=True)
    pool_size = Int(2, help="Containers kept started for runs with the default limits.").tag(
        config=True
    )
    pool_max = Int(
        0,
        help="The most containers each pool keeps started while runs come in bursts; it grows "
        "by one for each run that found it empty in the last 30 s, and is back to its size "
        "after 60 s without a run (0, or below its size: a fixed pool).",
    ).tag(config=True)
    pool_sizes = Dict(
        key_trait=Unicode(),
        value_trait=Int(),
        help="More warm pools, by image, for runs with the default limits, e.g. "
        "{'codedock/pybuntu-sci:latest': 8} before a class; admins change them with "
        "POST /api/warm.",
    ).tag(config=True)
    admin_users = List(Unicode(), help="Users who may warm the pools (POST /api/warm).").tag(
        config=True
    )
    admin_groups = List(
        Unicode(), help="Hub groups whose members may warm the pools (POST /api/warm)."
    ).tag(config=True)
    pool_idle = Float(300.0, help="Seconds a pooled container waits before it is replaced.").tag(
        config=True
    )
    audit_log = Unicode("", help="A file that gets one JSON line per run ('': none).").tag(
        config=True
    )
    db_url = Unicode(
        "sqlite:///codedock-gradebook.sqlite",
        help="The gradebook's database, as a SQLAlchemy URL (SQLite by default, in the "
        "folder the service starts in; postgresql://user@host/name works too).",
    ).tag(config=True)
    api_tokens = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        help="Static tokens, each mapped to a user name, for use without a hub.",
    ).tag(config=True)
    metrics_token = Unicode("", help="The token that /metrics asks for ('': hub scope only).").tag(
        config=True
    )
    engine = Unicode(
        "",
        help="The engine sandboxes run on, by name ('': $CODEDOCK_ENGINE, else docker); more "
        "register in the codedock_magic.engines entry-point group.",
    ).tag(config=True)
    engine_options = Dict(
        help="The engine's options, e.g. docker's base_url, timeout, runtime ('runsc' for "
        "gVisor) and init.",
    ).tag(config=True)

    max_header_bytes = Int(Door.max_header_bytes, help="The largest request headers.").tag(
        config=True
    )
    header_timeout = Float(
        Door.header_timeout,
        help="Seconds for a request's headers to arrive, and for an idle connection to "
        "send its next request.",
    ).tag(config=True)
    body_timeout = Float(Door.body_timeout, help="Seconds for a request's body to arrive.").tag(
        config=True
    )
    max_connections = Int(Door.max_connections, help="Connections open at once, in all.").tag(
        config=True
    )
    max_connections_per_address = Int(
        Door.max_connections_per_address,
        help="Connections from one address that carry no request a token let in.",
    ).tag(config=True)
    max_unread_bytes = Unicode(
        "1m",
        help="Bytes of a user's runs' events their clients have not read yet; past it, "
        "their runs wait for them to read.",
    ).tag(config=True)
    refusals_per_second = Float(
        1.0, help="Refused runs a second a user may cost in the long run (audited in full)."
    ).tag(config=True)
    refusal_burst = Int(30, help="Refused runs a user may cost at once.").tag(config=True)
    assignments_dir = Unicode(
        "",
        help="A folder of assignments, one folder each, named for it, with cases.yaml "
        "(or .json) and optionally assignment.yaml (or .json); read at start ('': none).",
    ).tag(config=True)
    user_groups = Dict(
        key_trait=Unicode(),
        value_trait=List(Unicode()),
        help="Groups of each api_tokens user, e.g. {'ada': ['teachers']} (hub users have "
        "their hub groups).",
    ).tag(config=True)

    @default("log_level")
    def _default_log_level(self) -> int:
        return logging.INFO

    def __init__(self, engine: Engine | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._engine = engine
        self.runs: dict[str, LiveRun] = {}
        self.server: httpserver.HTTPServer | None = None
        self.bound_port = 0
        self._serving = False

    # -- configuration ---------------------------------------------------------------

    def load_config_path(self, path: str) -> bool:
        """Read the config file ``path`` (else the default one, if it exists); False if none.

        Loaded here rather than with ``load_config_file``, which logs a bad value
        and exits: a bad setting must be named on one line of our own.
        """
        path = path or (DEFAULT_CONFIG if Path(DEFAULT_CONFIG).exists() else "")
        if not path:
            return False
        if not Path(path).is_file():
            raise InvalidValueError("--config", path, "a config file that exists")
        folder, name = os.path.split(os.path.abspath(path))
        loaded = PyFileConfigLoader(name, path=folder, log=self.log).load_config()
        self._check_known(loaded)
        self.update_config(loaded)
        return True

    def initialize(self, argv: list[str] | None = None) -> None:
        """Read the command line and the config file, then check every setting."""
        self.parse_command_line(argv)
        if self.load_config_path(self.config_file):
            # The command line wins over the file.
            self.parse_command_line(argv)
        hub_url = os.environ.get("JUPYTERHUB_SERVICE_URL")
        if hub_url and "port" not in self.config.SandboxService:
            # Started by the hub: listen where the hub will look.
            where = urlparse(hub_url)
            self.ip, self.port = where.hostname or self.ip, where.port or self.port
        self.policy = Policy(self._settings(), self.group_settings, prefix="SandboxService.")
        if self.max_concurrent < 1:
            raise InvalidValueError(
                "SandboxService.max_concurrent", self.max_concurrent, "at least 1"
            )
        if self.pool_size < 0:
            raise InvalidValueError("SandboxService.pool_size", self.pool_size, "0 or more")
        if self.pool_max < 0:
            raise InvalidValueError("SandboxService.pool_max", self.pool_max, "0 or more")
        for image, size in self.pool_sizes.items():
            self.check_warm(image, size, f"SandboxService.pool_sizes[{image!r}]")
        self.door = self._door()
        self.unread_cap = parse_size(self.max_unread_bytes, "SandboxService.max_unread_bytes")
        if self.refusals_per_second <= 0 or self.refusal_burst < 1:
            raise InvalidValueError(
                "SandboxService.refusals_per_second",
                self.refusals_per_second,
                "above 0, with a burst of 1 or more",
            )
        self.assignments = load_assignments(self.assignments_dir) if self.assignments_dir else {}
        self.sandbox_engine  # noqa: B018 (an unknown engine is a bad setting, said now)

    def _door(self) -> Door:
        for name in ("max_header_bytes", "max_connections", "max_connections_per_address"):
            if getattr(self, name) < 1:
                raise InvalidValueError(f"SandboxService.{name}", getattr(self, name), "at least 1")
        for name in ("header_timeout", "body_timeout"):
            if not getattr(self, name) > 0:
                raise InvalidValueError(
                    f"SandboxService.{name}", getattr(self, name), "a number of seconds above 0"
                )
        return Door(
            max_header_bytes=self.max_header_bytes,
            header_timeout=self.header_timeout,
            body_timeout=self.body_timeout,
            max_connections=self.max_connections,
            max_connections_per_address=self.max_connections_per_address,
        )

    def _check_known(self, config: Config) -> None:
        known = set(self.class_trait_names(config=True))
        for name, value in config.get("SandboxService", {}).items():
            if name not in known:
                raise InvalidValueError(
                    f"SandboxService.{name}", value, "set: there is no such setting (a typo?)"
                )

    def check_warm(self, image: str, size: Any, name: str = "size") -> int:
        """``size`` if it is a pool size for ``image`` the policy allows; else raise.

        Raises:
            InvalidValueError: not a whole number from 0 to :data:`WARM_MAX`, or an
                image runs may not use.
        """
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= WARM_MAX:
            raise InvalidValueError(name, size, f"a whole number from 0 to {WARM_MAX}")
        images = self.policy.tier().images
        if not isinstance(image, str) or not image or (images and image not in images):
            raise InvalidValueError(
                "image", image, f"one of allowed_images {list(images)}" if images else "an image"
            )
        return size

    def is_admin(self, caller: Caller) -> bool:
        """Whether ``caller`` may warm the pools."""
        return caller.name in self.admin_users or bool(set(caller.groups) & set(self.admin_groups))

    def warm(self, image: str, size: int) -> Pool:
        """Keep ``size`` containers of ``image`` ready (with the default limits) from now on."""
        tier = self.policy.tier()
        profile = Profile(image, tier.defaults.container)
        # 0 turns a pool off, as pool_size = 0 does; pool_max below the size fixes it.
        ceiling = max(size, self.pool_max) if size else 0
        pool = self.pools.find(profile)
        if pool is not None:
            pool.configure(size=size, max_size=ceiling)
            return pool
        pool = self.pools.add(
            Pool(
                self.sandbox_engine,
                size=size,
                max_size=ceiling,
                profile=profile,
                idle=self.pool_idle,
            )
        )
        if self._serving:
            pool.start()
        return pool

    def _settings(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SETTINGS}

    # -- running ---------------------------------------------------------------------

    @property
    def sandbox_engine(self) -> Engine:
        """The engine runs start on: the one :attr:`engine` names, with :attr:`engine_options`."""
        if self._engine is None:
            self._engine = connect(self.engine or None, **self.engine_options)
        return self._engine

    def make_app(self) -> web.Application:
        """The tornado application, with everything a handler needs."""
        # First: a database that cannot be opened stops the service before it holds anything.
        self.gradebook = Gradebook(self.db_url)
        tier = self.policy.tier()
        self.pools = Pools()
        self.pool = self.warm(tier.default_image, self.pool_size)
        for image, size in self.pool_sizes.items():
            self.warm(image, size)
        self.backend = LocalBackend(self.sandbox_engine, pool=self.pools)
        self.cold_starts = TurnTakingStarts(self.sandbox_engine)
        self.executor = ThreadPoolExecutor(self.max_concurrent, thread_name_prefix="codedock-run")
        self.scheduler = FairScheduler(self.max_concurrent)
        self.audit = AuditLog(self.audit_log)
        self.metrics = Metrics(lambda: float(self.pools.ready))
        self.tokens = TokenChecker(self.api_tokens, _hub_auth(), self.user_groups)
        self.refusals = RefusalLimiter(self.refusals_per_second, self.refusal_burst)
        self.unread = UnreadLedger(self.unread_cap)
        self.connections = ConnectionCaps(self.door)
        state: ServiceState = self
        return web.Application(
            [*handlers(), *assignment_handlers()],
            codedock_service=state,
            codedock_assignments=getattr(self, "assignments", {}),
            codedock_attempts_under_way=set(),
            serve_traceback=False,
            log_function=access_log,
        )

    async def serve(self, ready: threading.Event | None = None) -> None:
        """Listen, then serve until cancelled; the pool and the sweep start once listening."""
        app = self.make_app()
        clip_tornado_log()
        self.server = DoorServer(app, self.door, self.connections)
        sockets = bind_sockets(self.port, self.ip)
        self.server.add_sockets(sockets)
        self.bound_port = sockets[0].getsockname()[1]
        self.log.info("codedock serve %s on http://%s:%d", __version__, self.ip, self.bound_port)
        # The hub waits for the URL to answer, so listen first: containers a former
        # run of this service left go in the background.
        threading.Thread(target=self._sweep, name="codedock-sweep", daemon=True).start()
        self._serving = True
        self.pools.start()
        if ready is not None:
            ready.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.shutdown()

    def _sweep(self) -> None:
        try:
            removed = sweep(self.sandbox_engine)
        except CodedockError as exc:
            self.log.warning("could not sweep orphaned sandboxes: %s", exc)
            return
        if removed:
            self.log.info("removed %d orphaned sandbox container(s)", len(removed))

    def shutdown(self) -> None:
        """Stop every run and remove the pool's containers."""
        if self.server is not None:
            self.server.stop()
        for run in list(self.runs.values()):
            run.stop.set()
        with contextlib.suppress(Exception):
            self.pools.close()
        with contextlib.suppress(Exception):
            self.executor.shutdown(wait=True, cancel_futures=True)
        self.audit.close()
        with contextlib.suppress(Exception):
            self.gradebook.close()

    def start(self) -> None:
        """Serve until SIGTERM or SIGINT."""
        loop = asyncio.new_event_loop()
        task = loop.create_task(self.serve())
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(task)
        loop.close()


def db_url_from_config(path: str = "") -> str:
    """The gradebook's URL as ``codedock serve --config PATH`` would read it (no engine needed).

    Without ``path``, the default config file when it exists, as the service does.
    """
    return str(_configured(path).db_url)


def assignments_dir_from_config(path: str = "") -> str:
    """The service's ``assignments_dir`` as ``codedock serve --config PATH`` would read it."""
    return str(_configured(path).assignments_dir)


def run_defaults_from_config(path: str = "") -> tuple[Limits, str]:
    """The limits and image a check of the service gets when it asks for none.

    Those of its base tier, as ``codedock serve --config PATH`` would read them;
    a regrade runs with them, as the service ran the attempts.
    """
    app = _configured(path)
    tier = Policy(app._settings(), app.group_settings, prefix="SandboxService.").tier()
    return tier.defaults, tier.default_image


def _configured(path: str) -> SandboxService:
    app = SandboxService()
    app.load_config_path(path)
    return app


def _hub_auth() -> Any:
    # A hub gives its managed services JUPYTERHUB_API_URL; elsewhere there is none.
    if not os.environ.get("JUPYTERHUB_API_URL"):
        return None
    from jupyterhub.services.auth import HubAuth

    return HubAuth(cache_max_age=TOKEN_CACHE_SECONDS)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``codedock serve``; a bad setting exits 2 with one line."""
    service = SandboxService()
    try:
        service.initialize(argv)
    except (InvalidValueError, TraitError) as exc:
        print(f"codedock serve: bad setting: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a config file that does not run
        print(
            f"codedock serve: cannot load the config: {type(exc).__name__}: {exc}", file=sys.stderr
        )
        return 2
    try:
        service.start()
    except CodedockError as exc:  # the gradebook's database did not open
        print(f"codedock serve: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"codedock serve: cannot listen on {service.ip}:{service.port}: {exc}", file=sys.stderr
        )
        return 1
    return 0
