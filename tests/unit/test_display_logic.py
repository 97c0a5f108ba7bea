"""Rich output's pure logic: the display stream's parsing and caps, values, extras, rendering."""

from __future__ import annotations

import base64
import json
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codedock_magic import Limits, RunResult, RunStatus
from codedock_magic.errors import InvalidValueError
from codedock_magic.jupyter.render import image_html, render_html, render_text, status_line
from codedock_magic.local.display import MAX_IMAGES, DisplayOutput, check_image, values_to_json
from codedock_magic.remote.wire import result_from_json, result_to_json
from codedock_magic.supervisor.protocol import encode_extras, parse_usage

from .fakes import program

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg=="
)


def frame(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">cI", kind, len(body)) + body


def test_images_and_a_value_parse_across_any_chunking() -> None:
    stream = frame(b"i", b"image/png\0" + PNG) + frame(b"v", b'x\0{"a": [1, null]}')
    for step in (1, 3, len(stream)):
        rich = DisplayOutput()
        shown = []
        for i in range(0, len(stream), step):
            shown += rich.feed_display(stream[i : i + step], at=5)
        assert shown == [("image/png", PNG)] and rich.positions == [5]
        assert rich.has_value and rich.value == {"a": [1, None]} and rich.notes == []


@given(st.binary(max_size=400))
def test_any_bytes_on_the_display_stream_never_raise(data: bytes) -> None:
    rich = DisplayOutput()
    rich.feed_display(data, at=0)
    rich.feed_display(data, at=0)
    assert len(rich.images) <= MAX_IMAGES
    assert all(not check_image(mime, body) for mime, body in rich.images)


@pytest.mark.parametrize(
    ("mime", "data", "problem"),
    [
        ("image/png", PNG, ""),
        ("image/png", b"GIF89a", "says PNG"),
        ("image/jpeg", b"\xff\xd8\xff\xe0", ""),
        ("image/jpeg", PNG, "says JPEG"),
        ("image/svg+xml", b"<svg/>", ""),
        ("image/svg+xml", b"\xff<svg", "not UTF-8"),
        ("text/html", b"<b>", "only PNG, JPEG and SVG"),
    ],
)
def test_an_image_must_be_what_it_claims(mime: str, data: bytes, problem: str) -> None:
    found = check_image(mime, data)
    assert (problem in found) if problem else found == ""


def test_values_are_json_or_refused_naming_them() -> None:
    assert json.loads(values_to_json({"a": [1, "x"], "b": None})) == {"a": [1, "x"], "b": None}
    for values, name in (({"s": {1}}, "s"), ({"f": float("nan")}, "f"), ({"class": 1}, "class")):
        with pytest.raises(InvalidValueError) as caught:
            values_to_json(values)
        assert name in str(caught.value)


def test_the_supervisor_reads_the_extras_the_host_writes() -> None:
    wire = encode_extras(b'{"a":1}', "total", [("data.csv", b"x,y"), ("d/e.bin", b"\0")])
    extras = program.Extras(wire)
    assert (extras.values, extras.returns) == (b'{"a":1}', "total")
    assert extras.files == [("data.csv", b"x,y"), ("d/e.bin", b"\0")]
    assert program.Extras(b"").files == [] and parse_usage(b"1500000000 4096") == (1.5, 4096)
    assert parse_usage(b"1.5 x") is None


def _result(**extra: object) -> RunResult:
    fields: dict[str, object] = dict(
        status=RunStatus.OK,
        exit_code=0,
        signal=None,
        stdout="one\ntwo\n",
        stderr="",
        duration=0.2,
        truncated=False,
        limits=Limits(),
        image="img",
        cpu_seconds=0.05,
        peak_memory=12 * 1024**2,
    )
    fields.update(extra)
    return RunResult(**fields)  # type: ignore[arg-type]


def test_the_saved_view_places_images_where_they_came_and_never_inlines_svg() -> None:
    svg = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"
    result = _result(
        images=(("image/png", PNG), ("image/svg+xml", svg)),
        image_positions=(4, 8),
        files={"r.txt": b"42"},
        notes=("not shown: an image past the first 20",),
    )
    html = render_html(result)
    assert html.index(">one\n<") < html.index("data:image/png") < html.index(">two\n<")
    assert html.index(">two\n<") < html.index("data:image/svg+xml")
    assert "<svg" not in html and "<script" not in html
    assert 'download="r.txt"' in html and "past the first 20" in html
    text = render_text(result)
    assert "[sandbox] image: image/png, 0.1 KiB" in text and "[sandbox] file: out/r.txt" in text
    assert "[sandbox] note: not shown" in text
    assert " · cpu 0.05 s · peak 12.0 MiB · " in status_line(result)
    assert image_html("image/png", PNG).startswith('<img class="codedock-image"')
    assert result_from_json(json.loads(json.dumps(result_to_json(result)))) == result


def test_the_text_view_puts_an_image_note_on_a_line_of_its_own() -> None:
    import io

    from codedock_magic.jupyter.views import TextView

    out = io.StringIO()
    view = TextView(stdout=out, stderr=io.StringIO())
    view.on_output("stdout", "no newline yet")
    view.on_image("image/png", PNG)
    view.on_output("stdout", "line\n")
    view.on_image("image/png", PNG)
    note = "[sandbox] image: image/png, 0.1 KiB\n"
    assert out.getvalue() == f"no newline yet\n{note}line\n{note}"
