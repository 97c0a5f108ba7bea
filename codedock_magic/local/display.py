"""What a program shows besides text (images, a value, files), checked and capped on the host.

The program's runtime (:mod:`codedock_magic.supervisor.runtime`) writes images
and a returned value on its display descriptor, in frames of a kind byte and a
4-byte length; the supervisor relays that stream unread. Everything in it is
the program's, so it is parsed here defensively: a frame longer than any cap
ends the stream, an image that is not the PNG, JPEG or SVG it claims to be, or
one past the caps, becomes a note, and none of it can touch a run's status.
Nothing in it can raise here either: whatever cannot be read becomes a note,
and the notes are bounded (:class:`~codedock_magic.core.budget.NoteBudget`).
"""

from __future__ import annotations

import json
import keyword
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.budget import MAX_VALUE_DEPTH, NAME_CHARS, NOTE_CHARS, NoteBudget, clip
from ..core.errors import InvalidValueError
from ..core.limits import format_size

__all__ = [
    "IMAGE_TYPES",
    "MAX_FILE_BYTES",
    "MAX_IMAGES",
    "MAX_IMAGE_BYTES",
    "MAX_VALUE_BYTES",
    "DisplayOutput",
    "check_image",
    "values_to_json",
]

#: The image types shown; SVG only ever as an ``<img>``, never inline.
IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")
MAX_IMAGES = 20
MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_IMAGES_BYTES = 20 * 1024 * 1024
MAX_VALUE_BYTES = 8 * 1024 * 1024
#: The supervisor's own caps on files from /sandbox/out, checked again here.
MAX_FILES = 100
MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_FILES_BYTES = 32 * 1024 * 1024

_HEADER = struct.Struct(">cI")


def values_to_json(values: Mapping[str, Any]) -> bytes:
    """The JSON text of ``values`` for the sandbox; never a pickle.

    Raises:
        InvalidValueError: a name is not a variable name, a value is not JSON (one
            line naming it), or all of them are over the size cap.
    """
    for name, value in values.items():
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise InvalidValueError("value name", name, "a variable name")
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidValueError(
                name,
                type(value).__name__,
                f"a JSON value: str, number, bool, None, list or dict ({exc})",
            ) from None
    text = json.dumps(dict(values), allow_nan=False, separators=(",", ":")).encode("utf-8")
    if len(text) > MAX_VALUE_BYTES:
        raise InvalidValueError(
            "values", format_size(len(text)), f"at most {format_size(MAX_VALUE_BYTES)} of JSON"
        )
    return text


def check_image(mime: str, data: bytes) -> str:
    """Why ``data`` is not a ``mime`` image worth showing; empty when it is."""
    if mime not in IMAGE_TYPES:
        return f"an image of type {mime[:40]!r} (only PNG, JPEG and SVG are shown)"
    if mime == "image/png" and not (data.startswith(b"\x89PNG\r\n\x1a\n") and b"IHDR" in data[:16]):
        return "an image that says PNG but is not one"
    if mime == "image/jpeg" and not data.startswith(b"\xff\xd8\xff"):
        return "an image that says JPEG but is not one"
    if mime == "image/svg+xml":
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return "an SVG image that is not UTF-8 text"
        if "<svg" not in text:
            return "an image that says SVG but is not one"
    return ""


@dataclass
class DisplayOutput:
    """The images, value, files and notes of one run, as they arrive.

    Attributes:
        images: ``(mime, bytes)`` in the order they came.
        positions: for each image, how much stdout (in characters) had come first.
        files: from ``/sandbox/out``, by name relative to it.
        value: the returned variable's JSON value, when one came.
        has_value: whether one came (a JSON ``null`` is a value).
        notes: one line for each thing not shown, and why; at most
            :data:`~codedock_magic.core.budget.MAX_NOTES` of them (see :meth:`final_notes`).
    """

    images: list[tuple[str, bytes]] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    value: Any = None
    has_value: bool = False
    budget: NoteBudget = field(default_factory=NoteBudget)
    _buffer: bytearray = field(default_factory=bytearray)
    _broken: bool = False
    # The program answered --return: with a value, or with why there is none.
    _value_answered: bool = False
    _image_bytes: int = 0
    _file_bytes: int = 0

    @property
    def notes(self) -> list[str]:
        """The notes kept so far."""
        return self.budget.kept

    def final_notes(self) -> list[str]:
        """The notes kept, and one closing note when more were not kept."""
        return self.budget.closing()

    def feed_display(self, data: bytes, at: int) -> list[tuple[str, bytes]]:
        """Take display-stream bytes; return the images they complete, to show at once.

        ``at`` is how much stdout had arrived. Never raises: what cannot be read
        becomes a note.
        """
        if self._broken:
            self.budget.lost += len(data)
            return []
        try:
            return self._frames(data, at)
        except Exception as exc:  # the program's bytes must never raise on the host
            self._break(
                f"the host could not read the program's display stream ({type(exc).__name__})"
            )
            return []

    def _break(self, why: str) -> None:
        self._broken = True
        self.budget.add(why, lost=len(self._buffer))
        self._buffer.clear()

    def _frames(self, data: bytes, at: int) -> list[tuple[str, bytes]]:
        self._buffer += data
        shown: list[tuple[str, bytes]] = []
        while len(self._buffer) >= _HEADER.size:
            kind, length = _HEADER.unpack_from(self._buffer)
            if length > max(MAX_IMAGE_BYTES, MAX_VALUE_BYTES) + 256 or kind not in (b"i", b"v"):
                self._break(
                    "the program's display stream broke its framing; nothing more of it is shown"
                )
                break
            if len(self._buffer) < _HEADER.size + length:
                break
            body = bytes(self._buffer[_HEADER.size : _HEADER.size + length])
            del self._buffer[: _HEADER.size + length]
            name, _, payload = body.partition(b"\0")
            if kind == b"i":
                image = self._take_image(name.decode("ascii", "replace"), payload, at)
                if image is not None:
                    shown.append(image)
            else:
                self._take_value(clip(name.decode("utf-8", "replace"), NAME_CHARS), payload)
        return shown

    def _take_image(self, mime: str, data: bytes, at: int) -> tuple[str, bytes] | None:
        problem = check_image(mime, data)
        if not problem and len(self.images) >= MAX_IMAGES:
            problem = f"an image past the first {MAX_IMAGES}"
        elif not problem and len(data) > MAX_IMAGE_BYTES:
            problem = f"an image of {format_size(len(data))}, over {format_size(MAX_IMAGE_BYTES)}"
        elif not problem and self._image_bytes + len(data) > MAX_IMAGES_BYTES:
            problem = f"an image past {format_size(MAX_IMAGES_BYTES)} of images in all"
        if problem:
            self.budget.add(f"not shown: {problem}", lost=len(data))
            return None
        self.images.append((mime, data))
        self.positions.append(at)
        self._image_bytes += len(data)
        return mime, data

    def _take_value(self, name: str, payload: bytes) -> None:
        self._value_answered = True
        if payload.startswith(b"!"):
            self.budget.add(f"--return {name}: " + payload[1:].decode("utf-8", "replace"))
            return
        if len(payload) > MAX_VALUE_BYTES:
            self.budget.add(
                f"--return {name}: its JSON is {format_size(len(payload))}, over "
                f"{format_size(MAX_VALUE_BYTES)}; not brought back",
                lost=len(payload),
            )
            return
        try:
            value = json.loads(payload.decode("utf-8"))
            deep = _deeper_than(value, MAX_VALUE_DEPTH)
        except (UnicodeDecodeError, ValueError):
            self.budget.add(
                f"--return {name}: what came back is not JSON; not brought back", lost=len(payload)
            )
            return
        except RecursionError:
            deep = True
        if deep:
            self.budget.add(
                f"--return {name}: its JSON nests deeper than {MAX_VALUE_DEPTH} levels; "
                "not brought back",
                lost=len(payload),
            )
            return
        self.value = value
        self.has_value = True

    def expect_value(self, name: str) -> None:
        """The run asked for ``name`` back: a note says so when neither it nor a reason came."""
        if not self._value_answered:
            self.budget.add(
                f"--return {name}: nothing came back (the program did not get to its end)"
            )

    def add_file(self, payload: bytes) -> None:
        """A file from ``/sandbox/out`` (``name\\0bytes``), within the caps."""
        name_bytes, _, data = payload.partition(b"\0")
        name = name_bytes.decode("utf-8", "replace")
        if (
            len(self.files) >= MAX_FILES
            or len(data) > MAX_FILE_BYTES
            or self._file_bytes + len(data) > MAX_FILES_BYTES
        ):
            self.budget.add(
                f"out/{clip(name, NAME_CHARS)}: past the caps on files; not brought back",
                lost=len(payload),
            )
            return
        self.files[name] = data
        self._file_bytes += len(data)

    def add_note(self, payload: bytes) -> None:
        """The supervisor's note on something it did not bring back."""
        self.budget.add(payload[: NOTE_CHARS * 4].decode("utf-8", "replace"))


def _deeper_than(value: Any, most: int) -> bool:
    """Whether ``value`` nests lists and objects more than ``most`` deep (without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            if depth > most:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False
