"""Build and list the sandbox images on a Docker engine (``codedock image``).

The build files ship inside the package (``codedock_magic/data/images/pybuntu``),
so a wheel installed with pip can build the images with no checkout. With a
registry, the Dockerfiles start from their public bases. Without one (air-gapped
servers, CI here), the base is a Debian root file system made by ``debootstrap``
from the machine's own apt mirror and imported into the engine. Nothing is
rebuilt when an image built from the same files already exists.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker.errors
import requests.exceptions

from ..core.errors import EngineError, ImageBuildError
from ..core.shipped import image_dir
from ..core.version import __version__
from .docker import SUPERVISOR_LABEL, DockerEngine

__all__ = [
    "IMAGES",
    "SCI",
    "STANDARD",
    "ImageBuilder",
    "ImageInfo",
    "Recipe",
]

#: Labels every image built here carries.
INPUTS_LABEL = "io.codedock.inputs"
KIND_LABEL = "io.codedock.image"
VERSION_LABEL = "io.codedock.version"

# Part of every inputs digest: raise it when the way an image is built changes in
# a way its files do not show, so that existing images count as outdated.
_RECIPE_VERSION = "3"
# The build context's folder copied to the images' /opt/codedock: the supervisor
# and runtime baked in, or nothing.
_BAKED_FOLDER = "codedock"
# A build streams nothing for long stretches (matplotlib's font cache, an import);
# docker-py's read timeout must outlast them.
_BUILD_TIMEOUT = 1800


@dataclass(frozen=True)
class Recipe:
    """How one sandbox image is built.

    Attributes:
        kind: its short name (``pybuntu``, ``pybuntu-sci``).
        name: the image's name and tag.
        dockerfile: the Dockerfile in the build context.
        files: the build context's files it uses (its digest covers them).
        offline_base: the base image made with debootstrap when no registry answers.
        offline_packages: the Debian packages that base is made with.
        offline_args: build arguments when building on that base.
        aliases: further names it is tagged with.
    """

    kind: str
    name: str
    dockerfile: str
    files: tuple[str, ...]
    offline_base: str
    offline_packages: tuple[str, ...]
    offline_args: Mapping[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    def inputs(self, baked: Mapping[str, bytes] | None = None) -> str:
        """A digest of what the image is built from: it says whether one is current.

        ``baked``: the files it carries under /opt/codedock (see :class:`ImageBuilder`).
        """
        digest = hashlib.sha256(_RECIPE_VERSION.encode())
        for name in (self.dockerfile, *self.files):
            digest.update(name.encode() + b"\0" + (image_dir() / name).read_bytes())
        for name, data in sorted((baked or {}).items()):
            digest.update(f"{_BAKED_FOLDER}/{name}".encode() + b"\0" + data)
        return digest.hexdigest()[:16]


#: The default sandbox image; also tagged ``pybuntu``, pycodedock's default name.
STANDARD = Recipe(
    kind="pybuntu",
    name="codedock/pybuntu:latest",
    dockerfile="Dockerfile",
    files=(),
    offline_base="codedock/debian-python:bookworm",
    offline_packages=("python3",),
    aliases=("pybuntu:latest",),
)
#: The same with numpy, matplotlib and pandas from Debian's packages.
SCI = Recipe(
    kind="pybuntu-sci",
    name="codedock/pybuntu-sci:latest",
    dockerfile="Dockerfile.sci",
    files=("codedock_mplcache.py",),
    offline_base="codedock/debian-python-sci:bookworm",
    offline_packages=("python3", "python3-numpy", "python3-matplotlib", "python3-pandas"),
    # The offline base has the packages in already.
    offline_args={"INSTALL": ""},
)
IMAGES: Mapping[str, Recipe] = {recipe.kind: recipe for recipe in (STANDARD, SCI)}


@dataclass(frozen=True)
class ImageInfo:
    """One sandbox image on the engine, as ``codedock image list`` shows it.

    Attributes:
        name: one of its names (an image with several is listed once per name).
        kind: which recipe built it, or ``""`` when it carries no such label.
        size: its size in bytes.
        version: the package version it was built for, ``""`` when unknown.
        current: whether it was built from the files this package ships.
    """

    name: str
    kind: str
    size: int
    version: str
    current: bool


def _apt_mirror() -> str:
    # The first Debian archive the machine's own apt sources name (not security).
    if os.environ.get("CODEDOCK_MIRROR"):
        return os.environ["CODEDOCK_MIRROR"]
    sources = [Path("/etc/apt/sources.list")]
    folder = Path("/etc/apt/sources.list.d")
    if folder.is_dir():
        sources += sorted(folder.glob("*.sources")) + sorted(folder.glob("*.list"))
    for path in sources:
        with contextlib.suppress(OSError):
            for line in path.read_text().splitlines():
                if not line.startswith(("URIs:", "deb ")) or "security" in line:
                    continue
                found = re.search(r"https?://\S+", line)
                if found:
                    return found.group(0)
    return "http://deb.debian.org/debian"


class ImageBuilder:
    """Builds the sandbox images on one Docker engine and lists them.

    Args:
        engine: the engine to build on; the one from the environment by default.
        log: where progress lines go.
        suite: the Debian suite of an offline base.
        baked: files the images carry under ``/opt/codedock`` (root's, read-only to
            everyone else, ``.py`` files compiled there by the image's python3),
            and their digest, which the images carry as a label: the supervisor
            and runtime, so that a sandbox need not be sent them. None: nothing.
    """

    def __init__(
        self,
        engine: DockerEngine | None = None,
        *,
        log: Callable[[str], None] = print,
        suite: str = "bookworm",
        baked: tuple[Mapping[str, bytes], str] | None = None,
    ) -> None:
        self._engine = engine or DockerEngine(timeout=_BUILD_TIMEOUT)
        self._log = log
        self._suite = suite
        self._baked: Mapping[str, bytes] = baked[0] if baked else {}
        self._baked_digest = baked[1] if baked else ""

    @property
    def engine(self) -> DockerEngine:
        """The engine images are built on."""
        return self._engine

    def _labels_of(self, image: str) -> Mapping[str, str] | None:
        inspect: Callable[[str], dict[str, Any]] = self._engine.api.inspect_image
        try:
            details = inspect(image)
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.APIError as exc:
            raise ImageBuildError(image, f"the engine could not inspect it: {exc}") from exc
        return (details.get("Config") or {}).get("Labels") or {}

    def is_current(self, recipe: Recipe) -> bool:
        """Whether ``recipe``'s image exists, built from the files this package ships."""
        labels = self._labels_of(recipe.name)
        return labels is not None and labels.get(INPUTS_LABEL) == recipe.inputs(self._baked)

    def build(
        self,
        recipe: Recipe,
        *,
        force: bool = False,
        offline: bool = False,
        base: str | None = None,
    ) -> None:
        """Build ``recipe``'s image unless a current one exists, and tag its aliases.

        Args:
            recipe: which image.
            force: build even when a current image exists (the engine's layer cache
                still makes that quick).
            offline: do not try a registry; build on a debootstrap base at once.
            base: build on this image instead of the Dockerfile's own base.

        An explicit ``offline`` or ``base`` builds even when a current image exists:
        the image's digest covers its files, not the base it was built on.

        Raises:
            ImageBuildError: the build failed; the message ends with the build's
                last lines and what to do.
            EngineUnavailableError: no engine answered.
        """
        self._engine.ping()
        inputs = recipe.inputs(self._baked)
        if not (force or offline or base) and self.is_current(recipe):
            self._log(f"image {recipe.name} is up to date (inputs {inputs})")
        elif base:
            self._build(recipe, {"BASE": base})
        elif offline:
            self._build_offline(recipe)
        else:
            try:
                self._build(recipe, {})
            except ImageBuildError as online:
                # Most often no registry answered; whatever it was, the offline
                # way may still work, and if it fails too both causes are said.
                self._log(
                    f"building {recipe.name} on its public base failed "
                    f"({_last_line(online.detail)}); building on a Debian base made offline instead"
                )
                try:
                    self._build_offline(recipe)
                except ImageBuildError as offline_error:
                    raise ImageBuildError(
                        recipe.name,
                        f"on its public base: {_last_line(online.detail)}; "
                        f"offline: {offline_error.detail}",
                        offline_error.hint,
                    ) from offline_error
        for alias in recipe.aliases:
            repository, _, tag = alias.partition(":")
            try:
                self._engine.api.tag(recipe.name, repository, tag or "latest")
            except docker.errors.APIError as exc:
                raise ImageBuildError(
                    alias, f"the engine would not tag {recipe.name} so: {exc.explanation or exc}"
                ) from exc
            self._log(f"tagged {recipe.name} as {alias}")

    def _build_offline(self, recipe: Recipe) -> None:
        self._offline_base(recipe)
        self._build(recipe, {"BASE": recipe.offline_base, **recipe.offline_args})

    def _build(self, recipe: Recipe, args: Mapping[str, str]) -> None:
        tail: list[str] = []
        labels = {
            INPUTS_LABEL: recipe.inputs(self._baked),
            KIND_LABEL: recipe.kind,
            VERSION_LABEL: __version__,
        }
        if self._baked_digest:
            labels[SUPERVISOR_LABEL] = self._baked_digest
        try:
            with self._context() as context:
                self._stream_build(recipe, context, args, labels, tail)
        except docker.errors.APIError as exc:
            raise ImageBuildError(recipe.name, str(exc.explanation or exc)) from exc
        except requests.exceptions.RequestException as exc:
            raise ImageBuildError(
                recipe.name,
                f"the engine stopped answering during the build ({exc}); check that it runs "
                "and run codedock image build again",
            ) from exc
        self._log(f"built {recipe.name}")

    @contextlib.contextmanager
    def _context(self) -> Iterator[Path]:
        # The shipped build files, and the folder of baked files beside them.
        with _scratch() as scratch:
            context = scratch / "context"
            shutil.copytree(image_dir(), context)
            folder = context / _BAKED_FOLDER
            folder.mkdir(exist_ok=True)
            for name, data in self._baked.items():
                (folder / name).write_bytes(data)
            yield context

    def _stream_build(
        self,
        recipe: Recipe,
        context: Path,
        args: Mapping[str, str],
        labels: Mapping[str, str],
        tail: list[str],
    ) -> None:
        stream = self._engine.api.build(
            path=str(context),
            dockerfile=recipe.dockerfile,
            tag=recipe.name,
            buildargs=dict(args),
            labels=dict(labels),
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
        )
        for chunk in stream:
            if "error" in chunk:
                tail.append(str(chunk["error"]).strip())
                raise ImageBuildError(
                    recipe.name,
                    " | ".join(tail[-8:]),
                    "fix what the last step says and run codedock image build again",
                )
            text = str(chunk.get("stream", "")).strip()
            if text:
                tail[:] = [*tail[-19:], text]

    def _offline_base(self, recipe: Recipe) -> None:
        base = recipe.offline_base
        if self._labels_of(base) is not None:
            return
        debootstrap = _debootstrap(base)
        mirror = _apt_mirror()
        self._log(f"building the base {base} offline with debootstrap from {mirror}")
        with _scratch() as scratch:
            rootfs = scratch / "rootfs"
            rootfs.mkdir()
            done = subprocess.run(
                [
                    debootstrap,
                    "--variant=minbase",
                    "--include=" + ",".join(recipe.offline_packages),
                    self._suite,
                    str(rootfs),
                    mirror,
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                last = " | ".join((done.stdout + done.stderr).strip().splitlines()[-5:])
                raise ImageBuildError(
                    base,
                    f"debootstrap from {mirror} failed: {last}; set CODEDOCK_MIRROR to a "
                    "Debian mirror this machine reaches, or give --base IMAGE",
                )
            # What a sandbox never needs: package caches and docs keep the image small.
            for junk in (
                "var/cache/apt/archives",
                "var/lib/apt/lists",
                "usr/share/doc",
                "usr/share/man",
            ):
                shutil.rmtree(rootfs / junk, ignore_errors=True)
            archive = scratch / "rootfs.tar"
            try:
                subprocess.run(
                    ["tar", "-C", str(rootfs), "-cf", str(archive), "."],
                    capture_output=True,
                    check=True,
                )
            except (OSError, subprocess.CalledProcessError) as exc:
                raise ImageBuildError(
                    base, f"could not pack the root file system with tar ({exc}); install tar"
                ) from exc
            shutil.rmtree(rootfs, ignore_errors=True)
            repository, _, tag = base.partition(":")
            try:
                self._engine.api.import_image_from_file(str(archive), repository, tag)
            except docker.errors.APIError as exc:
                raise ImageBuildError(base, f"the engine refused the import: {exc}") from exc

    def list(self) -> list[ImageInfo]:
        """Every image on the engine built as a sandbox image, one row per name."""
        self._engine.ping()
        try:
            found = self._engine.api.images(filters={"label": INPUTS_LABEL})
        except docker.errors.APIError as exc:
            raise EngineError(f"the Docker engine could not list images: {exc}") from exc
        rows = []
        for image in found:
            labels = image.get("Labels") or {}
            for name in image.get("RepoTags") or ():
                if name == "<none>:<none>":
                    continue  # a layer of an older build, no longer named
                kind = labels.get(KIND_LABEL) or _kind_of(name)
                recipe = IMAGES.get(kind)
                rows.append(
                    ImageInfo(
                        name=name,
                        kind=kind,
                        size=int(image.get("Size") or 0),
                        version=labels.get(VERSION_LABEL, ""),
                        current=recipe is not None
                        and labels.get(INPUTS_LABEL) == recipe.inputs(self._baked),
                    )
                )
        return sorted(rows, key=lambda row: row.name)


def _kind_of(name: str) -> str:
    # Images built before they carried a kind label: known by their names.
    for recipe in IMAGES.values():
        if name in (recipe.name, *recipe.aliases):
            return recipe.kind
    return ""


def _last_line(text: str) -> str:
    # The build's lines come joined by " | "; the last says why.
    lines = [line for line in text.replace(" | ", "\n").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no reason given"


def _debootstrap(image: str) -> str:
    if os.geteuid() != 0:
        raise ImageBuildError(
            image,
            "building a Debian base offline needs root (debootstrap); run codedock image "
            "build as root, or give --base IMAGE with python3 in it",
        )
    found = shutil.which("debootstrap")
    if found:
        return found
    if shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-qq", "debootstrap"]
        if subprocess.run(install, capture_output=True, env=env, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env, check=False)
            subprocess.run(install, capture_output=True, env=env, check=False)
        found = shutil.which("debootstrap")
        if found:
            return found
    raise ImageBuildError(
        image,
        "building a Debian base offline needs debootstrap, and it could not be installed; "
        "install it (apt-get install debootstrap) and run codedock image build again, "
        "or give --base IMAGE with python3 in it",
    )


@contextlib.contextmanager
def _scratch() -> Iterator[Path]:
    # A root file system is hundreds of MiB: /var/tmp is on disk where /tmp may not be.
    where = "/var/tmp" if os.access("/var/tmp", os.W_OK) else None
    folder = Path(tempfile.mkdtemp(prefix="codedock-image-", dir=where))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
