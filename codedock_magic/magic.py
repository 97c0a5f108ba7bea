"""Placeholder replaced by the %%sandbox magic."""

from __future__ import annotations

from typing import Any


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics."""


def unload_ipython_extension(ipython: Any) -> None:
    """Unregister the magics."""
