"""Real kernels through nbclient: the widget view, its static replacement, the notebooks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from codedock_magic import DockerEngine
from codedock_magic.jupyter.notebooks import outcomes

ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, *sources: str) -> Any:
    notebook = new_notebook(
        cells=[new_code_cell("%load_ext codedock_magic"), *map(new_code_cell, sources)],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )
    path = tmp_path / "probe.ipynb"
    nbformat.write(notebook, path)
    return execute(path, tmp_path)


class RunAllStopped(Exception):
    """The headless run stopped at a failing cell; the message is what it printed."""


def execute(path: Path, out: Path) -> Any:
    # Each notebook runs in a process of its own, as the README's command runs it:
    # many nbclient runs in one long-lived test process now and then lose a reply's
    # wake-up and sit out the whole cell timeout.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "codedock_magic.jupyter.notebooks",
            str(path),
            "--save-to",
            str(out / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RunAllStopped(done.stderr)
    return nbformat.read(out / "run" / path.name, as_version=4)


def _widgets(notebook: Any, model: str) -> list[dict[str, Any]]:
    states = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    return [entry["state"] for entry in states.values() if entry["model_name"] == model]


STREAMING = (
    "%%sandbox --timeout 10\n"
    "import sys, time\n"
    "for i in range(4):\n"
    "    print(f'line {i}')\n"
    "    print(f'warn {i}', file=sys.stderr)\n"
    "    time.sleep(0.1)\n"
    "print('<b>not bold</b> ☃')\n"
)


def test_widget_streams_then_freezes_into_static_html(tmp_path: Path, engine: DockerEngine) -> None:
    notebook = _run(tmp_path, STREAMING)
    outputs = notebook.cells[1].outputs
    # Only the static rendering remains in the cell: nothing that needs a widget model.
    assert [o.output_type for o in outputs] == ["display_data"]
    data = outputs[0].data
    assert "application/vnd.jupyter.widget-view+json" not in data
    assert outputs[0].metadata["codedock"] == {"status": "ok", "exit_code": 0, "summary": "ok"}
    html = data["text/html"]
    assert 'data-status="ok"' in html
    assert "line 0\nline 1\nline 2\nline 3\n&lt;b&gt;not bold&lt;/b&gt; ☃" in html
    assert '<pre class="codedock-stderr"' in html and "warn 3" in html
    assert data["text/plain"].startswith(
        "line 0\nline 1\nline 2\nline 3\n<b>not bold</b> ☃\nwarn 0\n"
    )
    assert "[sandbox] ok · " in data["text/plain"].splitlines()[-1]

    # While it ran, the Output widget received the streams as they came.
    (live,) = _widgets(notebook, "OutputModel")
    streams: dict[str, str] = {"stdout": "", "stderr": ""}
    for chunk in live["outputs"]:
        streams[chunk["name"]] += chunk["text"]
    assert streams["stdout"] == "line 0\nline 1\nline 2\nline 3\n<b>not bold</b> ☃\n"
    assert streams["stderr"] == "warn 0\nwarn 1\nwarn 2\nwarn 3\n"
    badges = [s["value"] for s in _widgets(notebook, "HTMLModel") if "codedock-badge" in s["value"]]
    assert len(badges) == 1 and 'data-status="ok"' in badges[0]
    (box,) = _widgets(notebook, "VBoxModel")
    assert len(box["children"]) == 2


@pytest.mark.parametrize(
    ("source", "status", "badge"),
    [
        ("%%sandbox --no-raise-error\nraise SystemExit(3)", "error", "error (exit 3)"),
        ("%%sandbox --timeout 1 --no-raise-error\nwhile True: pass", "timeout", "timeout after 1s"),
        (
            "%%sandbox --mem 100m --no-raise-error\nx = bytearray(300 * 1024**2)",
            "memory limit",
            "memory limit (100m) exceeded",
        ),
        (
            "%%sandbox --no-raise-error\nimport os\nos.kill(os.getpid(), 9)",
            "killed by signal",
            "killed by SIGKILL",
        ),
    ],
)
def test_each_status_gets_its_badge(
    tmp_path: Path, engine: DockerEngine, source: str, status: str, badge: str
) -> None:
    notebook = _run(tmp_path, source)
    (output,) = notebook.cells[1].outputs
    assert output.metadata["codedock"]["status"] == status
    assert f'data-status="{status}"' in output.data["text/html"]
    assert f">{badge}</span>" in output.data["text/html"]
    finals = [s["value"] for s in _widgets(notebook, "HTMLModel") if "codedock-badge" in s["value"]]
    assert finals == [finals[0]] and f'data-status="{status}"' in finals[0]


def test_a_failing_cell_stops_run_all_with_one_line(tmp_path: Path, engine: DockerEngine) -> None:
    with pytest.raises(RunAllStopped) as info:
        _run(tmp_path, "%%sandbox\nraise ValueError('student bug')", "print('never')")
    message = str(info.value)
    assert "RunFailedError: the sandboxed cell did not end ok: error (exit 1)" in message
    assert "codedock_magic/magic.py" not in message.split("CellExecutionError")[-1]


def test_no_widgets_option_prints_plain_text(tmp_path: Path, engine: DockerEngine) -> None:
    notebook = _run(tmp_path, "%%sandbox --no-widgets\nprint('plain')")
    outputs = notebook.cells[1].outputs
    assert {o.output_type for o in outputs} == {"stream"}
    assert "".join(o.text for o in outputs).startswith("plain\n[sandbox] ok · ")


def test_demo_notebook(engine: DockerEngine, tmp_path: Path) -> None:
    notebook = execute(ROOT / "notebooks" / "demo.ipynb", tmp_path)
    found = {o.source.splitlines()[0]: o.statuses for o in outcomes(notebook)}
    assert found == {
        "%%sandbox --timeout 2 --mem 100m": ["ok"],
        "%%sandbox --no-raise-error": ["error"],
        "%%sandbox --stdin answer": ["ok"],
        "%%sandbox --timeout 1 --no-raise-error": ["timeout"],
        "%%sandbox --mem 100m --no-raise-error": ["memory limit"],
        "%%sandbox --pids 32 --timeout 5 --no-raise-error": ["ok"],
        "%%sandbox --timeout 10": ["ok"],
        "%%sandbox --out squares": ["ok"],
        "%%sandbox --image codedock/pybuntu-sci:latest --in temperatures --return summary "
        "--timeout 60": ["ok"],
    }
    by_source = {c.source.splitlines()[0] if c.source else "": c for c in notebook.cells}
    traceback = by_source["%%sandbox --no-raise-error"].outputs[0].data["text/plain"]
    assert "ZeroDivisionError: division by zero" in traceback
    fork = (
        by_source["%%sandbox --pids 32 --timeout 5 --no-raise-error"].outputs[0].data["text/plain"]
    )
    assert "forks: Resource temporarily unavailable" in fork
    assert by_source["[int(s) for s in squares.split()]"].outputs[0].data["text/plain"] == (
        "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]"
    )
    plot = by_source[
        "%%sandbox --image codedock/pybuntu-sci:latest --in temperatures --return summary "
        "--timeout 60"
    ].outputs[0]
    assert plot.data["text/html"].count('src="data:image/png;base64,') == 1
    assert "[sandbox] image: image/png" in plot.data["text/plain"]
    assert by_source["summary"].outputs[0].data["text/plain"] == (
        "{'warmest': 'Jun', 'mean': 10.85}"
    )
    info = "".join(o.get("text", "") for o in notebook.cells[-1].outputs)
    assert "defaults:  timeout=3s" in info and "(present)" in info


def test_teaching_notebook(engine: DockerEngine, tmp_path: Path) -> None:
    notebook = execute(ROOT / "notebooks" / "teaching.ipynb", tmp_path)
    found = [(o.source.splitlines()[0], o.summaries) for o in outcomes(notebook)]
    assert found == [
        ("%%sandbox --cases cases --result outcome", ["6/6 passed · 7/7 points"]),
        ("%%sandbox --cases grading/cases.yaml --no-raise-error", ["1/8 passed · 1/10 points"]),
        ("%%sandbox --cases grading/cases.yaml --no-raise-error", ["7/8 passed · 8/10 points"]),
        ("%%sandbox --cases count_cases --no-raise-error", ["0/2 passed · 2/4 points"]),
        (
            "%%sandbox --assignment sum --no-raise-error",
            ["0/3 passed · 0/4 points · 4 attempts left"],
        ),
        ("%%sandbox --assignment sum", ["3/3 passed · 4/4 points · 3 attempts left"]),
    ]
    text = {
        i: "".join(o.get("text", "") for o in cell.get("outputs", []))
        for i, cell in enumerate(notebook.cells)
    }
    printed = "\n".join(text.values())
    assert "{'score': 10.0, 'possible': 10.0}" in printed
    assert "graded 11, not graded 0" in printed
    for line in ("bob    1/10", "cy     8/10  passed | timeout | passed", "kit    0/10"):
        assert line in printed
    assert "8/8 passed · 10/10 points\nfound nothing" in printed
    # The service's hidden case: its verdict alone, never its input or expected output.
    assert "  sum: open · 3 cases (1 hidden) · 3 attempts left" in printed
    saved = json.dumps([cell.outputs for cell in notebook.cells if "--assignment" in cell.source])
    assert "550" not in saved and "10 20 30" not in saved and "many numbers" in saved


CHECK_CELL = (
    "cases = [\n"
    "    {'name': 'shown', 'stdin': '1 2', 'expected': '4'},\n"
    "    {'name': 'secret', 'stdin': 'in-77 3', 'expected': 'out-99', 'hidden': True},\n"
    "    {'name': 'fine', 'stdin': '2 2', 'expected': '4'},\n"
    "]"
)


def test_a_check_freezes_into_badges_and_saves_nothing_of_a_hidden_case(
    tmp_path: Path, engine: DockerEngine
) -> None:
    body = "a, b = input().split()\nprint(a, 'printed-55', int(b) + 1)"
    notebook = _run(tmp_path, CHECK_CELL, f"%%sandbox --cases cases --no-raise-error\n{body}")
    (output,) = notebook.cells[2].outputs
    html = output.data["text/html"]
    assert output.metadata["codedock"]["verdicts"] == [
        "wrong answer",
        "wrong answer",
        "wrong answer",
    ]
    assert output.metadata["codedock"]["status"] == "failed"
    assert html.count('class="codedock-case"') == 3 and "0/3 passed · 0/3 points" in html
    assert 'data-verdict="wrong answer"' in html and "codedock-diff" in html
    assert "printed-55" in html  # the visible cases' diffs
    # Everything saved but the cell defining the cases: outputs and widget state.
    saved = json.dumps([notebook.cells[2], notebook.metadata])
    for secret in ("in-77", "out-99", "printed-55 4"):
        assert secret not in saved, secret
    assert "widget-state" not in json.dumps(output.data)


def test_a_capped_cell_saves_within_two_and_a_half_caps(
    tmp_path: Path, engine: DockerEngine
) -> None:
    cap = 64 * 1024
    flood = "%%sandbox\nimport sys\nsys.stdout.write('<&' * 500000)\nsys.stderr.write('<' * 500000)"
    notebook = _run(tmp_path, "%config SandboxMagics.output = '64k'", flood)
    outputs = notebook.cells[2].outputs
    saved = len(json.dumps([dict(output) for output in outputs], ensure_ascii=False).encode())
    assert saved <= 2.5 * cap, f"{saved / cap:.2f}x the cap"
    assert outputs[0].metadata["codedock"]["status"] == "ok"


IMAGES = (
    "%%sandbox\n"
    "import base64\n"
    "print('<b>before</b>')\n"
    "display(base64.b64decode('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgAB"
    "SK+kcQAAAABJRU5ErkJggg=='))\n"
    "display(b'<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>')\n"
    "print('after')\n"
    "import os\n"
    "os.mkdir('out')\n"
    "open('out/table.csv', 'w').write('a,b')\n"
)


def test_images_and_files_freeze_into_the_saved_view(tmp_path: Path, engine: DockerEngine) -> None:
    notebook = _run(tmp_path, IMAGES)
    (output,) = notebook.cells[1].outputs
    html = output.data["text/html"]
    before, png, svg, after = (
        html.index("&lt;b&gt;before"),
        html.index('src="data:image/png;base64,'),
        html.index('src="data:image/svg+xml;base64,'),
        html.index("after"),
    )
    assert before < png < svg < after
    # The SVG's markup (and its script) is only ever inside a data URL.
    assert "<svg" not in html and "<script" not in html
    assert "out/table.csv" in html and 'download="table.csv"' in html
    assert "data:application/octet-stream;base64,YSxi" in html
    text = output.data["text/plain"]
    assert "[sandbox] image: image/png, 0.1 KiB" in text
    assert "[sandbox] file: out/table.csv, 0.0 KiB" in text
