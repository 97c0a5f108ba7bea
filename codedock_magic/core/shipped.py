"""Files that ship inside the package, beside its code.

The sandbox images' build files and the JupyterHub fragment live under
``codedock_magic/data/``, so that a wheel installed with pip holds everything an
administrator needs, and a checkout uses the very same files.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DATA", "hub_fragment", "image_dir"]

#: Where the shipped files are. Wheels install packages as plain folders, so a
#: path (not only a resource reader) is what Docker's build and JupyterHub's
#: ``load_subconfig`` can be given.
DATA = Path(__file__).resolve().parents[1] / "data"


def image_dir() -> Path:
    """The build context of the sandbox images: their Dockerfiles and files."""
    return DATA / "images" / "pybuntu"


def hub_fragment() -> Path:
    """The JupyterHub config fragment that registers the sandbox service."""
    return DATA / "jupyterhub_config.py"
