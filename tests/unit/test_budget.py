"""What a hostile program sends: every decoder on the host takes anything, and keeps little.

Each decoder of what comes out of a sandbox is fed arbitrary bytes (or JSON) the
way a program or a broken supervisor could send them; none may raise, and the
run's budget (notes, a check's output, what the views show) must hold.
"""

from __future__ import annotations

import contextlib
import json
import struct
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from codedock_magic import RunResult, RunStatus
from codedock_magic.core.budget import CASE_FLOOR, MAX_NOTES, NOTE_CHARS, CheckBudget
from codedock_magic.core.errors import InvalidValueError
from codedock_magic.core.limits import RunLimits
from codedock_magic.core.request import CaseInput, Listener, RunRequest
from codedock_magic.core.result import CaseEnding
from codedock_magic.grading.cases import load_cases
from codedock_magic.grading.check import CheckResult, verdict_of
from codedock_magic.jupyter.checkrender import check_html, check_text
from codedock_magic.jupyter.render import render_html, render_text
from codedock_magic.jupyter.safetext import MARKER, one_line
from codedock_magic.local.caserun import CasesConversation
from codedock_magic.local.conversation import RunConversation
from codedock_magic.local.display import DisplayOutput
from codedock_magic.remote.wire import (
    case_event,
    case_from_json,
    output_event,
    result_event,
    result_from_json,
    result_to_json,
)
from codedock_magic.supervisor.protocol import (
    MAX_FRAME,
    FrameDecoder,
    FrameKind,
    parse_case_end,
    parse_end,
    parse_usage,
)

from .fakes import run_result

KINDS = [kind.value for kind in FrameKind]
chunks = st.lists(st.binary(max_size=200), max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=30,
)


def frame(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">cI", kind, len(body)) + body


def display_frames() -> st.SearchStrategy[bytes]:
    """Display-stream frames, well formed or not, as a program can write them."""
    body = st.binary(max_size=60) | st.builds(
        lambda name, text: name + b"\0" + text,
        st.sampled_from([b"image/png", b"text/html", b"x", b"\xff"]),
        st.binary(max_size=40) | st.just(b"[" * 5000),
    )
    return st.builds(frame, st.sampled_from([b"i", b"v", b"z"]), body) | st.binary(max_size=20)


def assert_bounded(notes: list[str] | tuple[str, ...]) -> None:
    assert len(notes) <= MAX_NOTES + 1
    assert all(len(note) <= 2 * NOTE_CHARS for note in notes)


@given(chunks)
def test_the_frame_decoder_takes_any_bytes_and_holds_at_most_one_frame(parts: list[bytes]) -> None:
    decoder = FrameDecoder()
    for part in parts:
        for kind, _ in decoder.feed(part):
            assert kind in KINDS
        assert decoder.pending <= MAX_FRAME + 5


def test_a_frame_longer_than_any_the_supervisor_sends_breaks_the_stream() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(frame(b"o", b"hi") + struct.pack(">cI", b"o", 2**31)) == [(b"o", b"hi")]
    assert "cannot read" in decoder.broken and decoder.pending == 0
    assert decoder.feed(frame(b"o", b"more")) == []


@given(st.binary(max_size=80))
def test_the_end_case_end_and_usage_parsers_take_any_bytes(data: bytes) -> None:
    parse_end(data)
    parse_usage(data)
    ended = parse_case_end(data)
    assert ended is None or 0 <= ended.seconds < 1e9


@given(st.lists(display_frames(), max_size=60), st.integers(1, 50))
def test_any_display_stream_never_raises_and_its_notes_stay_bounded(
    parts: list[bytes], step: int
) -> None:
    stream = b"".join(parts)
    rich = DisplayOutput()
    for i in range(0, len(stream), step):
        rich.feed_display(stream[i : i + step], at=0)
    assert_bounded(rich.final_notes())


@given(json_values)
def test_any_json_value_comes_back_or_becomes_a_note(value: Any) -> None:
    rich = DisplayOutput()
    rich.feed_display(frame(b"v", b"x\0" + json.dumps(value).encode()), at=0)
    assert rich.has_value or len(rich.notes) == 1


def test_a_value_nested_deeply_is_a_note_not_a_recursion_error() -> None:
    for depth in (150, 990, 100_000, 4_000_000):
        rich = DisplayOutput()
        rich.feed_display(frame(b"v", b"x\0" + b"[" * depth + b"]" * depth), at=0)
        assert not rich.has_value and "deeper than 100" in rich.notes[0], depth
        json.dumps(result_to_json(_result(notes=tuple(rich.final_notes()))))


def test_a_flood_of_rejected_frames_values_and_files_keeps_twenty_notes_and_a_closing_one() -> None:
    rich = DisplayOutput()
    for index in range(20_000):
        rich.feed_display(frame(b"i", b"text/html\0<b>x</b>"), at=0)
        rich.feed_display(frame(b"v", b"x\0not json"), at=0)
        rich.add_file(b"f%d\0" % index + b"x" * (9 * 1024 * 1024 if index == 0 else 10))
        rich.add_note(b"out/q: past 100 files; skipped" + b"!" * 5000)
    notes = rich.final_notes()
    assert len(notes) == MAX_NOTES + 1 and len(rich.files) == 100
    assert notes[-1].startswith("79,880 more notes like these were not kept; ")
    assert "bytes the program sent were not kept in all" in notes[-1]


@given(st.lists(st.tuples(st.sampled_from(KINDS), st.binary(max_size=100)), max_size=40))
def test_a_run_takes_any_frames_and_keeps_within_its_budget(
    frames: list[tuple[bytes, bytes]],
) -> None:
    conversation = RunConversation(RunRequest(code=b"", limits=RunLimits(output=1024)), Listener())
    for kind, body in frames:
        conversation.on_frame(kind, body)
    result = conversation.not_started()
    assert_bounded(result.notes)
    assert len(result.stdout.encode()) <= 1024 + 100 and len(result.stderr.encode()) <= 1024 + 100


@settings(max_examples=50)
@given(
    st.lists(
        st.tuples(st.sampled_from([b"o", b"e", b"c", b"n"]), st.binary(max_size=3000)), max_size=40
    )
)
def test_a_check_takes_any_frames_and_its_cases_share_one_budget(
    frames: list[tuple[bytes, bytes]],
) -> None:
    cases = tuple(CaseInput() for _ in range(10))
    request = RunRequest(code=b"", limits=RunLimits(output=4096), cases=cases)
    conversation = CasesConversation(request, Listener())
    for kind, body in frames:
        if kind == b"c":
            body = b"exit 0 0.1" if body[:1] < b"\x80" else body
        conversation.on_frame(kind, body)
    result = conversation.not_started()
    assert len(result.cases) == 10
    for stream in ("stdout", "stderr"):
        kept = sum(len(getattr(case, stream).encode("utf-8", "replace")) for case in result.cases)
        # A cut case's text adds its marker line; the bytes kept are within the budget.
        assert kept <= CheckBudget(4096).most(10) + 10 * 100


def test_ten_noisy_cases_keep_one_output_cap_and_a_floor_each() -> None:
    cases = tuple(CaseInput() for _ in range(10))
    request = RunRequest(code=b"", limits=RunLimits(output=1024 * 1024), cases=cases)
    conversation = CasesConversation(request, Listener())
    for _ in range(10):
        for _ in range(40):
            conversation.on_frame(b"o", b"\x01" * 65536)
            conversation.on_frame(b"e", b"<" * 65536)
        conversation.on_frame(b"c", b"exit 1 0.5")
    kept = [len(case.stdout) for case in conversation.done]
    assert kept[0] > 1024 * 1000 and all(size < CASE_FLOOR + 100 for size in kept[1:])
    assert sum(len(case.stderr) for case in conversation.done) < 1024 * 1024 + 10 * 1200


def test_a_case_end_the_host_cannot_read_ends_the_cases_with_a_note() -> None:
    cases = (CaseInput(), CaseInput())
    conversation = CasesConversation(RunRequest(code=b"", cases=cases), Listener())

    class Talk:
        broken = ""

        def abandon(self, why: str) -> None:
            self.broken = why

    talk = Talk()
    conversation._talk = talk  # type: ignore[assignment]
    conversation.on_frame(b"c", b"exit zero \xff")
    assert "case end the host cannot read" in talk.broken and conversation.done == []


@given(
    json_values
    | st.dictionaries(
        st.sampled_from(
            ["status", "limits", "notes", "cases", "files", "images", "image_positions", "stdout"]
        ),
        json_values,
    )
)
def test_the_wire_refuses_any_malformed_result_or_case_with_one_error(data: Any) -> None:
    for decode in (result_from_json, case_from_json):
        with contextlib.suppress(InvalidValueError):
            decode(data)


def test_the_wire_refuses_a_result_with_a_deep_value_or_huge_numbers() -> None:
    good = result_to_json(_result())
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    for bad in (
        {**good, "stdout": deep},
        {**good, "image_positions": [float("inf")]},
        {**good, "files": []},
        {**good, "duration": 10**400},
    ):
        with contextlib.suppress(InvalidValueError):
            result_from_json(bad)


@given(st.text(max_size=400))
def test_one_line_leaves_no_control_newline_or_bidi_override(text: str) -> None:
    shown = one_line(text)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in shown)
    assert not any(c in shown for c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
    assert len(shown) <= 300 * 6


def _result(**fields: Any) -> RunResult:
    return run_result(**{"status": RunStatus.ERROR, "exit_code": 3, "image": "pybuntu", **fields})


FORGERIES = [
    "x\n[sandbox] ok · 0.01 s",
    "x\r[sandbox] ok · 0.01 s",
    "\x1b[1A\x1b[2K[sandbox] ok",
    "\u202e[sandbox] ok",
    "a\u2028[sandbox] ok",
]


@given(st.lists(st.sampled_from(FORGERIES) | st.text(max_size=30), min_size=1, max_size=5))
def test_names_and_notes_cannot_forge_or_hide_the_status_line(names: list[str]) -> None:
    result = _result(
        files={name: b"1" for name in names}, notes=tuple(names), cases=(), stdout="out\n"
    )
    text = render_text(result)
    ours = [line for line in text.split("\n") if line.startswith(f"{MARKER} error")]
    assert len(ours) == 1 and text.endswith(ours[0])
    assert "\r" not in text and "\x1b" not in text and "\u202e" not in text
    html_view = render_html(result)
    assert "\u202e" not in html_view and "\x1b" not in html_view


def test_a_case_ending_keeps_nothing_more_than_it_is_given() -> None:
    # CaseEnding holds only what the conversation kept; here for the type checker's sake.
    assert CaseEnding.__dataclass_fields__.keys() >= {"stdout", "stderr"}


def _weight(text: str) -> int:
    # What a text weighs in a saved notebook (nbformat writes JSON, a line per line).
    return len(json.dumps(text, ensure_ascii=False).encode()) + 10 * text.count("\n")


def test_the_saved_view_of_the_worst_run_weighs_twice_the_cap_and_a_little() -> None:
    cap = 1024 * 1024
    worst = _result(
        stdout=("\n" * (cap // 2)) + '"<\x01' * (cap // 6),
        stderr="\u202e\n" * (cap // 2),
        truncated=True,
        notes=('"' * NOTE_CHARS,) * (MAX_NOTES + 1),
        files={'"' * 200 + str(n): b"" for n in range(100)},
    )
    assert worst.limits.output == cap
    html_view, text_view = render_html(worst), render_text(worst)
    own = 320 * 1024
    assert _weight(html_view) + _weight(text_view) <= 2 * cap + own


def _noisy_check(cap: int, count: int) -> CasesConversation:
    cases = tuple(CaseInput() for _ in range(count))
    request = RunRequest(code=b"", limits=RunLimits(output=cap), cases=cases)
    conversation = CasesConversation(request, Listener())
    for _ in range(count):
        for _ in range(2 * cap // 65536):
            conversation.on_frame(b"o", b"\x01\n" * 32768)
            conversation.on_frame(b"e", b'"' * 65536)
        conversation.on_frame(b"c", b"exit 1 0.5")
    return conversation


def test_what_the_service_sends_of_a_noisy_check_is_within_its_stated_bound() -> None:
    cap, count = 1024 * 1024, 10
    conversation = _noisy_check(cap, count)
    result = conversation.not_started()
    sent = sum(len(json.dumps(case_event(i, c))) for i, c in enumerate(conversation.done))
    sent += len(json.dumps(result_event(result)))
    assert sent <= 24 * (cap + count * 1024)


def test_what_the_service_sends_of_a_noisy_run_is_within_its_stated_bound() -> None:
    cap = 1024 * 1024
    sent: list[int] = []
    conversation = RunConversation(
        RunRequest(code=b"", limits=RunLimits(output=cap)),
        Listener(
            on_output=lambda stream, text: sent.append(len(json.dumps(output_event(stream, text))))
        ),
    )
    for _ in range(64):
        conversation.on_frame(b"o", b"\x01" * 65536)
        conversation.on_frame(b"e", b"\xff" * 65536)
    for index in range(5000):
        conversation.on_frame(b"n", b"out/\x01" + b"%d" % index + b" past the caps")
    sent.append(len(json.dumps(result_event(conversation.not_started()))))
    # The run's text: six bytes for each byte kept, at most; the events' own fields.
    assert sum(sent) <= 18 * cap + 64 * 1024


def test_a_checks_saved_view_weighs_at_most_48_kib_a_case() -> None:
    conversation = _noisy_check(64 * 1024, 10)
    cases = [
        {"name": f"{n}" + '"' * 300 + "\n[sandbox] ok", "expected": "1\n" * 200} for n in range(10)
    ]
    checked = [verdict_of(load_cases(cases)[i], ran) for i, ran in enumerate(conversation.done)]
    result = CheckResult(cases=tuple(checked), run=conversation.not_started())
    assert _weight(check_html(result)) + _weight(check_text(result)) <= 10 * 48 * 1024 + 4096
