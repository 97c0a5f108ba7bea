"""``%sandbox_info``: this kernel's settings, ceilings, pool, engine and image, or its service's."""

from __future__ import annotations

from typing import Any

from ..core.errors import CodedockError, ImageNotFoundError
from ..core.limits import LIMIT, LIMIT_FIELDS, format_size
from ..remote.client import ServiceBackend
from .settings import limit_settings_lines

__all__ = ["assignment_lines", "local", "service"]


def _view(widgets: bool, raise_error: bool) -> str:
    return f"view:      {'widgets' if widgets else 'text'}, raise_error={raise_error}"


def local(magics: Any) -> None:
    """Print what a kernel that runs its own sandboxes has: ``magics`` is its ``SandboxMagics``."""
    defaults, ceilings = limit_settings_lines(magics)
    print(f"defaults:  {defaults} image={magics.image}")
    ceilings.append(f"max_stdin={magics.max_stdin}")
    if magics.allowed_images:
        ceilings.append(f"allowed_images={list(magics.allowed_images)}")
    print("ceilings:  " + ", ".join(ceilings))
    print(_view(magics.widgets, magics.raise_error))
    pool = magics.pool
    warm = (
        f"{pool.ready} ready, keeps {pool.size} (up to {pool.max_size} in a burst, now "
        f"{pool.target}), idle {pool.idle:g}s, hits {pool.hits}"
    )
    problem = f"; PROBLEM refilling: {pool.last_error}" if pool.last_error else ""
    print(f"pool:      {warm}, cold starts {pool.misses}{problem}")
    try:
        engine = magics.sandbox_engine
        engine.ping()
        print(f"engine:    answering at {engine.address}")
    except CodedockError as exc:
        print(f"engine:    PROBLEM: {exc}")
        return
    try:
        present = engine.image_exists(magics.image)
    except CodedockError as exc:
        print(f"image:     PROBLEM: {exc}")
        return
    if present:
        print(f"image:     {magics.image} (present)")
    else:
        print(f"image:     PROBLEM: {ImageNotFoundError(magics.image)}")


def service(backend: ServiceBackend, widgets: bool, raise_error: bool) -> None:
    """Print what the sandbox service says of this kernel's user: its defaults, ceilings, quota."""
    print(f"service:   {backend.url}")
    try:
        info = backend.info()
    except CodedockError as exc:
        print(f"service:   PROBLEM: {exc}")
        return
    groups = ", ".join(info.get("groups", [])) or "none"
    print(f"user:      {info.get('user')} (groups: {groups})")
    defaults = info.get("defaults", {})
    print(
        "defaults:  "
        + " ".join(f"{n}={LIMIT[n].show(defaults[n])}" for n in LIMIT_FIELDS if n in defaults)
        + f" image={info.get('default_image')}"
    )
    ceilings = info.get("ceilings", {})
    listed = [f"max_{n}={LIMIT[n].show(ceilings[n])}" for n in LIMIT_FIELDS if n in ceilings]
    listed.append(f"allowed_images={info.get('allowed_images') or 'any'}")
    print("ceilings:  " + ", ".join(listed) + "  (the service's; this kernel's do not apply)")
    print(
        f"quota:     {info.get('max_concurrent_per_user')} runs at once, "
        f"{info.get('max_queued_per_user')} queued; code up to "
        f"{format_size(int(info.get('max_code_bytes', 0)))}, stdin up to "
        f"{format_size(int(info.get('max_stdin_bytes', 0)))}"
    )
    print(_view(widgets, raise_error))
    try:
        listed = backend.assignments().get("assignments", [])
    except CodedockError as exc:
        print(f"assignments: PROBLEM: {exc}")
        return
    for line in assignment_lines(listed):
        print(line)


def assignment_lines(listed: list[dict[str, Any]]) -> list[str]:
    """One line per assignment: its name, state, due time, attempts left, next attempt."""
    if not listed:
        return ["assignments: none"]
    lines = ["assignments:"]
    for entry in listed:
        parts = [str(entry.get("state"))]
        if entry.get("due"):
            parts.append(f"due {entry['due']}")
        parts.append(f"{entry.get('cases')} cases ({entry.get('hidden')} hidden)")
        left = entry.get("attempts_left")
        parts.append("attempts: no limit" if left is None else f"{left} attempts left")
        if entry.get("next_at"):
            parts.append(f"next attempt at {entry['next_at']}")
        if entry.get("revealed"):
            parts.append("hidden cases shown to you")
        lines.append(f"  {entry.get('name')}: " + " · ".join(parts))
    return lines
