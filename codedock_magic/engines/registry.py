"""Engines by name: the one place an engine is chosen.

An engine is found by name in the entry-point group ``codedock_magic.engines``
(as Jupyter finds kernels and pytest its plugins); each entry point names a
callable that takes the engine's options as keywords and returns an
:class:`~.base.Engine`. The built-in ``docker`` is registered the same way, and
found without the package's metadata too (a checkout on the path).

The name comes from the caller's setting (``SandboxMagics.engine``,
``SandboxService.engine``, ``codedock sweep --engine``), else from
``$CODEDOCK_ENGINE``, else it is ``docker``. Its options likewise come from the
caller's setting (``engine_options``), else from ``$CODEDOCK_ENGINE_OPTIONS`` (a
JSON object, e.g. ``{"runtime": "runsc", "uid_range": "30000-39999"}``).
"""

from __future__ import annotations

import importlib
import json
import os
import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from ..core.errors import InvalidValueError
from .base import Engine

__all__ = [
    "DEFAULT_ENGINE",
    "ENGINE_ENV",
    "ENGINE_OPTIONS_ENV",
    "ENTRY_POINT_GROUP",
    "available_engines",
    "connect",
    "engine_name",
    "engine_options",
]

#: The entry-point group third parties register their engines in.
ENTRY_POINT_GROUP = "codedock_magic.engines"
#: The environment variable that names the engine when no setting does.
ENGINE_ENV = "CODEDOCK_ENGINE"
#: The environment variable that gives the engine's options when no setting does.
ENGINE_OPTIONS_ENV = "CODEDOCK_ENGINE_OPTIONS"
DEFAULT_ENGINE = "docker"

# The package's own, also when it runs from a checkout without metadata.
_BUILT_IN = {
    "docker": "codedock_magic.engines.docker:DockerEngine",
    # Loads only with the codedock-magic[kubernetes] extra.
    "kubernetes": "codedock_magic.engines.kubernetes.engine:KubernetesEngine",
}

_cache: dict[tuple[str, str], Engine] = {}
_lock = threading.Lock()


def _forget_lock_after_fork() -> None:
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_lock_after_fork)


def engine_name(name: str | None = None) -> str:
    """``name`` when given, else ``$CODEDOCK_ENGINE``, else ``docker``."""
    return name or os.environ.get(ENGINE_ENV, "").strip() or DEFAULT_ENGINE


def engine_options(options: dict[str, Any] | None = None) -> dict[str, Any]:
    """``options`` when given (not empty), else those ``$CODEDOCK_ENGINE_OPTIONS`` holds.

    Raises:
        InvalidValueError: the variable holds no JSON object.
    """
    if options:
        return options
    text = os.environ.get(ENGINE_OPTIONS_ENV, "").strip()
    if not text:
        return {}
    try:
        found = json.loads(text)
    except ValueError:
        found = None
    if not isinstance(found, dict):
        raise InvalidValueError(
            ENGINE_OPTIONS_ENV, text[:200], 'a JSON object, e.g. {"runtime": "runsc"}'
        )
    return found


def available_engines() -> dict[str, str]:
    """Every engine there is, by name: what its entry point names (``module:attribute``)."""
    found = dict(_BUILT_IN)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(point.name, point.value)
    return found


def _load(target: str) -> Callable[..., Engine]:
    module, _, attribute = target.partition(":")
    found: Any = importlib.import_module(module)
    for part in attribute.split(".") if attribute else ():
        found = getattr(found, part)
    return found  # type: ignore[no-any-return]


def connect(name: str | None = None, **options: Any) -> Engine:
    """The engine called ``name`` (see :func:`engine_name`), made with ``options``
    (see :func:`engine_options`).

    One engine per name and options in a process, made on first use. Making one
    does not reach it yet: the first call that needs it does.

    Raises:
        InvalidValueError: no engine has that name (the message lists those there
            are), or it takes no such options.
    """
    chosen = engine_name(name)
    options = engine_options(options)
    key = (chosen, json.dumps(options, sort_keys=True, default=repr))
    with _lock:
        if key in _cache:
            return _cache[key]
        engines = available_engines()
        if chosen not in engines:
            raise InvalidValueError(
                "engine", chosen, "an engine there is: one of " + ", ".join(sorted(engines))
            )
        try:
            factory = _load(engines[chosen])
        except (ImportError, AttributeError) as exc:
            raise InvalidValueError(
                "engine", chosen, f"an engine that loads ({engines[chosen]}: {exc})"
            ) from None
        try:
            engine = factory(**options)
        except TypeError as exc:
            raise InvalidValueError(
                f"engine options for {chosen}", dict(options), f"options it takes ({exc})"
            ) from None
        _cache[key] = engine
        return engine
