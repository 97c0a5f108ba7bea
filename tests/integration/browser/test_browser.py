"""What a student sees, in JupyterLab and Notebook 7, in a real headless Chromium."""

from __future__ import annotations

import time
from typing import Any

from codedock_magic.jupyter.render import COLOURS

from .conftest import Server, shot

OK = "%%sandbox\nprint('hello from the sandbox')"
ERROR = "%%sandbox --no-raise-error\ndef mean(xs):\n    return sum(xs) / len(xs)\nprint(mean([]))"
TIMEOUT = "%%sandbox --timeout 1 --no-raise-error\nwhile True:\n    pass"
MEMORY = "%%sandbox --mem 100m --no-raise-error\nhog = bytearray(300 * 1024 * 1024)"
WIDE = "%%sandbox\nprint('wide ' * 60)\nprint('unicode: ☃ π — 日本語 ✓')"
STREAM = (
    "%%sandbox --timeout 30\nimport time\nfor i in range(25):\n"
    "    print(f'line {i}', flush=True)\n    time.sleep(0.3)"
)
TICKING = (
    "%%sandbox --timeout 300\nimport time\nwhile True:\n"
    "    print('tick', flush=True)\n    time.sleep(0.2)"
)
PLOT = (
    "%%sandbox --image codedock/pybuntu-sci:latest --timeout 60\n"
    "import matplotlib.pyplot as plt\n"
    "print('a plot:')\n"
    "plt.plot([1, 3, 2])\n"
    "plt.show()\n"
    "print('and an SVG:')\n"
    'display(b\'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20">\'\n'
    '        b\'<rect width="40" height="20" fill="teal"/></svg>\')'
)
KERNEL_STATUS = (
    "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
    " const k = w && w.sessionContext && w.sessionContext.session"
    " && w.sessionContext.session.kernel;"
    " return k ? w.context.path + ':' + k.status : null; }"
)


def _rgb(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


def open_notebook(page: Any, server: Server, name: str, cells: int, ui: str = "lab") -> None:
    # A workspace of its own, reset, so no notebook of an earlier test is restored.
    stem = name.removesuffix(".ipynb")
    path = f"lab/workspaces/{stem}/tree/{name}" if ui == "lab" else f"notebooks/{name}"
    page.goto(server.url(path) + ("&reset" if ui == "lab" else ""))
    # The first cell shown can be a placeholder; wait for the real count.
    page.wait_for_function(
        f"document.querySelectorAll('.jp-Notebook .jp-Cell').length === {cells}", timeout=60_000
    )
    wait_for_kernel(page, name)


def wait_for_kernel(page: Any, name: str) -> None:
    # The kernel starts (and autoloads the extension) before it is idle.
    page.wait_for_function(f"({KERNEL_STATUS})() === '{name}:idle'", timeout=60_000)


def run_cells(page: Any, count: int, first: int = 0) -> None:
    page.locator(".jp-Notebook .jp-Cell").nth(first).locator(".jp-InputPrompt").click()
    page.keyboard.press("Escape")
    # Shift+Enter runs and moves on; on the last cell it would add an empty one.
    for index in range(count):
        page.keyboard.press("Control+Enter" if first + index == last_cell(page) else "Shift+Enter")


def last_cell(page: Any) -> int:
    return int(page.locator(".jp-Notebook .jp-Cell").count()) - 1


def badges(page: Any) -> list[tuple[str, str, str]]:
    """(status, text, background colour) of every badge, in page order."""
    return [
        tuple(row)
        for row in page.eval_on_selector_all(
            ".codedock-badge",
            "els => els.map(e => [e.dataset.status, e.textContent,"
            " getComputedStyle(e).backgroundColor])",
        )
    ]


def wait_for_badges(page: Any, statuses: list[str], within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if [status for status, _, _ in badges(page)] == statuses:
            return
        time.sleep(0.2)
    raise AssertionError(f"badges {badges(page)} never became {statuses}")


def prompts(page: Any) -> list[str]:
    return [
        text.strip()
        for text in page.eval_on_selector_all(
            ".jp-InputPrompt", "els => els.map(e => e.textContent)"
        )
    ]


def output_text(page: Any, cell: int) -> str:
    return str(
        page.locator(".jp-Notebook .jp-Cell").nth(cell).locator(".jp-Cell-outputArea").inner_text()
    )


def test_lab_badges_say_what_happened(page: Any, server: Server) -> None:
    notebook = server.notebook("badges.ipynb", OK, ERROR, TIMEOUT, MEMORY, WIDE)
    open_notebook(page, server, notebook, 5)
    run_cells(page, 5)
    wait_for_badges(page, ["ok", "error", "timeout", "memory limit", "ok"])
    shot(page, "lab-badges")
    found = badges(page)
    assert [text for _, text, _ in found] == [
        "ok",
        "error (exit 1)",
        "timeout after 1s",
        "memory limit (100m) exceeded",
        "ok",
    ]
    assert [colour for _, _, colour in found] == [
        _rgb(COLOURS[status]) for status in ("ok", "error", "timeout", "memory limit", "ok")
    ]
    assert "unicode: ☃ π — 日本語 ✓" in output_text(page, 4)
    # A wide line wraps inside the output instead of widening the page.
    assert page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth")
    assert "hello from the sandbox" in output_text(page, 0)
    error = output_text(page, 1)
    assert "ZeroDivisionError: division by zero" in error and "return sum(xs) / len(xs)" in error


def test_lab_output_streams_while_the_cell_runs(page: Any, server: Server) -> None:
    open_notebook(page, server, server.notebook("stream.ipynb", STREAM), 1)
    run_cells(page, 1)
    page.wait_for_function(
        "document.querySelector('.jp-Cell-outputArea') &&"
        " document.querySelector('.jp-Cell-outputArea').innerText.includes('line 2')",
        timeout=30_000,
    )
    counts = []
    for _ in range(3):
        assert prompts(page)[0] == "[*]:", "the cell finished before we could watch it stream"
        counts.append(output_text(page, 0).count("line "))
        time.sleep(0.8)
    shot(page, "lab-streaming")
    assert counts == sorted(counts) and counts[-1] > counts[0] > 0, counts
    assert [status for status, _, _ in badges(page)] == ["running"]
    wait_for_badges(page, ["ok"])
    assert output_text(page, 0).count("line ") == 25


def test_lab_interrupt_from_the_toolbar(page: Any, server: Server) -> None:
    open_notebook(page, server, server.notebook("interrupt.ipynb", TICKING, OK), 2)
    run_cells(page, 1)
    page.wait_for_function(
        "document.querySelector('.jp-Cell-outputArea') &&"
        " document.querySelector('.jp-Cell-outputArea').innerText.includes('tick')",
        timeout=30_000,
    )
    page.locator(".jp-NotebookPanel-toolbar [data-command='notebook:interrupt-kernel']").click()
    wait_for_badges(page, ["interrupted"], within=10)
    assert "RunFailedError" in output_text(page, 0)
    run_cells(page, 1, first=1)
    wait_for_badges(page, ["interrupted", "ok"])
    shot(page, "lab-interrupt")


def test_lab_result_survives_save_reload_and_restart(page: Any, server: Server) -> None:
    name = server.notebook("saved.ipynb", OK, ERROR)
    open_notebook(page, server, name, 2)
    run_cells(page, 2)
    wait_for_badges(page, ["ok", "error"])
    page.keyboard.press("Control+s")
    page.wait_for_function("() => !document.querySelector('.jp-mod-dirty')", timeout=10_000)
    page.reload()
    open_notebook(page, server, name, 2)
    wait_for_badges(page, ["ok", "error"], within=10)
    assert "model not found" not in page.inner_text("body")
    assert "hello from the sandbox" in output_text(page, 0)
    shot(page, "lab-after-reload")
    # Not awaited: the command resolves only once its dialog is answered.
    page.evaluate("() => { window.jupyterapp.commands.execute('kernelmenu:restart'); }")
    page.locator(".jp-Dialog button.jp-mod-accept").click()
    page.wait_for_timeout(500)
    wait_for_kernel(page, name)
    wait_for_badges(page, ["ok", "error"], within=10)
    assert "ZeroDivisionError" in output_text(page, 1)
    shot(page, "lab-after-restart")


def images(page: Any) -> list[list[Any]]:
    """(loaded with pixels, start of its data URL) of every image from the sandbox."""
    return list(
        page.eval_on_selector_all(
            ".codedock-image",
            "els => els.map(e => [e.complete && e.naturalWidth > 0, e.src.slice(0, 22)])",
        )
    )


def test_lab_images_show_in_order_and_survive_a_reload(page: Any, server: Server) -> None:
    name = server.notebook("plot.ipynb", PLOT)
    open_notebook(page, server, name, 1)
    run_cells(page, 1)
    wait_for_badges(page, ["ok"], within=90)
    shown = [[True, "data:image/png;base64,"], [True, "data:image/svg+xml;bas"]]
    page.wait_for_function(
        "[...document.querySelectorAll('.codedock-image')].every(e => e.complete)",
        timeout=10_000,
    )
    assert images(page) == shown
    text = output_text(page, 0)
    assert text.index("a plot:") < text.index("and an SVG:")
    page.keyboard.press("Control+s")
    page.wait_for_function("() => !document.querySelector('.jp-mod-dirty')", timeout=10_000)
    page.reload()
    open_notebook(page, server, name, 1)
    wait_for_badges(page, ["ok"], within=10)
    page.wait_for_function(
        "[...document.querySelectorAll('.codedock-image')].every(e => e.complete)",
        timeout=10_000,
    )
    assert images(page) == shown
    # The SVG is an image, never markup in the page.
    assert page.locator(".codedock-result svg").count() == 0
    shot(page, "lab-images-after-reload")


def test_lab_help(page: Any, server: Server) -> None:
    open_notebook(page, server, server.notebook("help.ipynb", "%%sandbox?"), 1)
    run_cells(page, 1)
    page.wait_for_function("document.body.innerText.includes('--timeout SECONDS')", timeout=30_000)
    text = page.inner_text("body")
    for option in ("--mem SIZE", "--stdin NAME", "--no-raise-error", "--no-widgets"):
        assert option in text
    shot(page, "lab-help")


def test_notebook7_essentials(page: Any, server: Server) -> None:
    name = server.notebook("classic.ipynb", OK, ERROR, STREAM)
    open_notebook(page, server, name, 3, ui="notebook")
    run_cells(page, 3)
    page.wait_for_function("document.body.innerText.includes('line 3')", timeout=30_000)
    assert "[*]:" in prompts(page)
    shot(page, "notebook7-streaming")
    wait_for_badges(page, ["ok", "error", "ok"])
    assert [colour for _, _, colour in badges(page)][:2] == [
        _rgb(COLOURS["ok"]),
        _rgb(COLOURS["error"]),
    ]
    page.keyboard.press("Control+s")
    page.wait_for_timeout(1000)
    page.reload()
    open_notebook(page, server, name, 3, ui="notebook")
    wait_for_badges(page, ["ok", "error", "ok"], within=10)
    assert "model not found" not in page.inner_text("body")
    shot(page, "notebook7-after-reload")
