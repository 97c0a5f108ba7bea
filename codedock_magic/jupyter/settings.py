"""The kernel's default and ceiling of each limit, as traitlets made from the table of limits.

``SandboxMagics.memory`` is the memory of a cell that asks for none,
``SandboxMagics.max_memory`` the most a cell may ask for. They follow the rule
the sandbox service follows (:func:`~codedock_magic.core.limits.resolve`): a
default over its ceiling is refused, naming both settings, when it is set.
"""

from __future__ import annotations

import os
from typing import Any

from traitlets import (
    Dict,
    Float,
    HasTraits,
    Int,
    MetaHasTraits,
    TraitError,
    TraitType,
    Unicode,
    default,
    validate,
)

from ..core.errors import InvalidValueError
from ..core.limits import LIMIT, LIMITS, Ceilings, Kind, Limit, Limits, resolve
from ..engines import Engine, connect
from ..remote.client import SERVICE_URL_ENV

__all__ = ["EngineSettings", "LimitSettings", "limit_settings_lines"]

_PREFIX = "SandboxMagics."
_NAMES = [name for limit in LIMITS for name in (limit.name, f"max_{limit.name}")]


def _trait(limit: Limit, value: Any, help: str) -> TraitType[Any, Any]:
    kind = {Kind.SIZE: Unicode, Kind.COUNT: Int}.get(limit.kind, Float)
    trait: TraitType[Any, Any] = kind(value, help=help).tag(config=True)
    return trait


def _check(self: Any, proposal: Any) -> Any:
    name, value = proposal["trait"].name, proposal["value"]
    limit = LIMIT[name.removeprefix("max_")]
    if not limit.is_size:
        if name == limit.name and value <= 0:
            raise TraitError(f"{name} must be positive, not {value}")
        if value < 0:
            raise TraitError(f"{name} must be 0 (no ceiling) or more, not {value}")
    settings = {other: getattr(self, other) for other in _NAMES}
    settings[name] = value
    try:
        resolve(settings, default="{}", prefix=_PREFIX)
    except InvalidValueError as exc:
        raise TraitError(str(exc)) from None
    return value


def _namespace() -> dict[str, Any]:
    space: dict[str, Any] = {}
    for limit in LIMITS:
        none = "''" if limit.is_size else "0"
        space[limit.name] = _trait(limit, limit.default, f"Default {limit.help}.")
        space[f"max_{limit.name}"] = _trait(
            limit,
            "" if limit.is_size else type(limit.default)(0),
            f"Ceiling on a cell's {limit.help} ({none}: no ceiling).",
        )
    space["_check_limit_setting"] = validate(*_NAMES)(_check)
    return space


class _Resolving:
    def limit_settings(self) -> tuple[Limits, Ceilings]:
        """The defaults of a cell that asks for nothing, and the ceilings, by the shared rule."""
        settings = {name: getattr(self, name) for name in _NAMES}
        return resolve(settings, default="{}", prefix=_PREFIX)


#: A base of ``SandboxMagics``: each limit's default and ceiling.
LimitSettings: Any = MetaHasTraits("LimitSettings", (_Resolving, HasTraits), _namespace())


class EngineSettings(HasTraits):
    """A base of ``SandboxMagics``: where the cells run, a sandbox service or an engine."""

    service_url = Unicode(
        help="The sandbox service that runs the cells, e.g. http://127.0.0.1:8765 "
        f"(default: ${SERVICE_URL_ENV}; '': this kernel's own engine). With one, the "
        "kernel needs no engine, and the service's limits apply."
    ).tag(config=True)
    service_token = Unicode(
        help="The token sent to the service (default: $CODEDOCK_SERVICE_TOKEN, else "
        "the hub's $JUPYTERHUB_API_TOKEN)."
    ).tag(config=True)

    @default("service_url")
    def _default_service_url(self) -> str:
        return os.environ.get(SERVICE_URL_ENV, "").strip()

    engine = Unicode(
        "",
        help="The engine the cells' sandboxes run on, by name ('': $CODEDOCK_ENGINE, else "
        "docker); more register in the codedock_magic.engines entry-point group. Read when "
        "cells first run on this kernel's own engine.",
    ).tag(config=True)
    engine_options = Dict(
        help="The engine's options, e.g. docker's base_url, timeout, runtime ('runsc' for "
        "gVisor) and init.",
    ).tag(config=True)

    def connect_engine(self) -> Engine:
        """The engine these settings name (reaching it is left to its first use)."""
        try:
            return connect(self.engine or None, **self.engine_options)
        except InvalidValueError as exc:
            raise TraitError(f"SandboxMagics.engine: {exc}") from None


def limit_settings_lines(settings: Any) -> tuple[str, list[str]]:
    """The defaults (``timeout=10s memory=256m ...``) and the ceilings set, for the info."""
    defaults = []
    ceilings = []
    for limit in LIMITS:
        value = getattr(settings, limit.name)
        shown = value if limit.is_size else f"{value:g}"
        defaults.append(f"{limit.name}={shown}{'s' if limit.kind is Kind.SECONDS else ''}")
        bound = getattr(settings, f"max_{limit.name}")
        if bound:
            ceilings.append(f"max_{limit.name}={bound if limit.is_size else f'{bound:g}'}")
    return " ".join(defaults), ceilings
