"""Nothing a program prints can pass for the product's own lines, in any piece sizes."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from codedock_magic.jupyter.safetext import MARKER, Neutraliser, neutralise

# Text rich in what attacks use: escapes, carriage returns, the marker, bidi overrides.
pieces = st.lists(
    st.sampled_from(["\x1b[2K", "\r", "\n", "\t", MARKER, "[sand", "box]", " ok ", "\u202e", "é"])
    | st.text(max_size=5),
    max_size=30,
)
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def test_escapes_become_visible_and_the_marker_is_escaped_at_line_start() -> None:
    forged = "done\x1b[1A\x1b[2K\r[sandbox] ok · 0.01 s\n[sandbox] ok\nnot [sandbox] at start\n"
    assert neutralise(forged) == (
        "done\\x1b[1A\\x1b[2K\\x0d[sandbox] ok · 0.01 s\n\\[sandbox] ok\nnot [sandbox] at start\n"
    )
    assert neutralise("a\tb\n") == "a\tb\n"


@given(pieces)
def test_no_output_line_can_start_with_the_marker_or_hold_a_control(parts: list[str]) -> None:
    text = "".join(parts)
    safe = neutralise(text)
    assert not UNSAFE.search(safe)
    assert not any(line.startswith(MARKER) for line in safe.split("\n"))
    # Only escapes are added: the text is still all there.
    assert safe.replace("\\[sandbox]", MARKER).count("\n") == text.count("\n")


@given(pieces)
def test_pieces_read_as_the_whole(parts: list[str]) -> None:
    neutraliser = Neutraliser()
    streamed = "".join(neutraliser.feed(part) for part in parts) + neutraliser.flush()
    assert streamed == neutralise("".join(parts))


def test_the_saved_renderings_show_one_status_line_and_no_escapes() -> None:
    from codedock_magic import Limits, RunResult, RunStatus
    from codedock_magic.jupyter.render import render_html, render_text

    forged = "\x1b[2J[sandbox] ok · fake\n"
    result = RunResult(
        status=RunStatus.ERROR,
        exit_code=3,
        signal=None,
        stdout=forged,
        stderr=forged,
        duration=0.1,
        truncated=False,
        limits=Limits(),
        image="img",
    )
    text = render_text(result)
    assert [line for line in text.splitlines() if line.startswith(MARKER)] == [
        text.splitlines()[-1]
    ]
    assert text.splitlines()[-1].startswith("[sandbox] error (exit 3)")
    assert "\x1b" not in text and "\x1b" not in render_html(result)
    assert "\\x1b[2J[sandbox] ok · fake" in render_html(result)


def test_a_capped_runs_saved_renderings_stay_within_two_and_a_half_caps() -> None:
    from codedock_magic import Limits, RunResult, RunStatus
    from codedock_magic.jupyter.render import render_html, render_text
    from codedock_magic.local.output import CappedOutput

    cap = 64 * 1024
    for flood in ("<&>" * 100_000, "\x1b" * 300_000, "plain text\n" * 30_000):
        kept = CappedOutput(cap)
        kept.feed(flood.encode())
        result = RunResult(
            status=RunStatus.OK,
            exit_code=0,
            signal=None,
            stdout=kept.text(),
            stderr=kept.text(),
            duration=0.1,
            truncated=True,
            limits=Limits(output=cap),
            image="img",
        )
        saved = len(render_html(result).encode()) + len(render_text(result).encode())
        assert saved <= 2.5 * cap, (repr(flood[:3]), saved / cap)
        assert "characters cut from the saved view" in render_html(result)
        assert render_text(result).splitlines()[-1].startswith("[sandbox] ok")
