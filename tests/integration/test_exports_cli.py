"""``codedock grade --format``, ``codedock report`` and ``codedock similarity`` on the
shipped class, against the real engine; the pages opened in a real Chromium."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from codedock_magic import DockerEngine

from ..conftest import IN_CI
from .test_grade_cli import EXPECTED, SHIPPED

ROOT = Path(__file__).resolve().parents[2]
SIMILAR = ROOT / "tests" / "data" / "similar"
ARTIFACTS = ROOT / "test-artifacts" / "grading"
CHROMIUM = Path(os.environ.get("CODEDOCK_CHROMIUM", "/usr/bin/chromium"))
# The hidden cases' inputs and expected outputs in the shipped cases.yaml.
HIDDEN = ("498 499 500", "125250")


def codedock(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codedock_magic", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _open(html: Path, name: str) -> Any:
    """Open ``html`` in Chromium with every request but the file itself refused; save a
    screenshot; return what the page shows and the requests refused."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or not CHROMIUM.exists():
        reason = "the page check needs playwright and Debian's chromium"
        if IN_CI:
            pytest.fail(f"CI=true and {reason}")
        pytest.skip(reason)
    refused: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            context = browser.new_context(viewport={"width": 1200, "height": 900})

            def only_the_file(route: Any) -> None:
                if route.request.url == html.as_uri():
                    route.continue_()
                else:
                    refused.append(route.request.url)
                    route.abort()

            context.route("**/*", only_the_file)
            tab = context.new_page()
            dialogs: list[str] = []
            tab.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            tab.goto(html.as_uri())
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            tab.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
            shown = {
                "text": tab.inner_text("body"),
                "bars": tab.locator("svg rect").count(),
                "marked": tab.locator("span.m").count(),
                "scripts": tab.locator("script").count(),
            }
        finally:
            browser.close()
    return shown, refused, dialogs


def test_gradescope_then_canvas_from_the_same_batch_then_the_class_report(
    engine: DockerEngine, tmp_path: Path
) -> None:
    submissions = tmp_path / "class"
    shutil.copytree(SHIPPED / "submissions", submissions)
    cases = str(SHIPPED / "cases.yaml")
    out = tmp_path / "gradescope"
    done = codedock(
        "grade", str(submissions), "--cases", cases, "--out", str(out), "--format", "gradescope"
    )
    assert done.returncode == 0, done.stderr
    assert "graded 11, already graded 0" in done.stdout and "(11 file(s))" in done.stdout
    record = out / "codedock-results.json"
    students = sorted(EXPECTED)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == students
    for student in students:
        text = (out / student / "results.json").read_text()
        data = json.loads(text)
        assert f"{data['score']:g}" == EXPECTED[student]
        assert sum(t["max_score"] for t in data["tests"]) == 10
        for test in data["tests"]:
            assert test["status"] in ("passed", "failed")
            if test["name"] in ("many numbers", "stays small"):
                assert test["visibility"] == "after_published" and "output" not in test
            else:
                assert test["visibility"] == "visible" and isinstance(test["output"], str)
        # The hidden cases' input and expected output, and how they ended, stay behind.
        assert not [secret for secret in HIDDEN if secret in text]
    cy = json.loads((out / "cy" / "results.json").read_text())
    assert "timeout" not in json.dumps(cy)  # cy timed out on a hidden case
    # The teacher's record keeps everything, and the run's memory.
    teacher = json.loads(record.read_text())["submissions"]
    assert teacher["cy"]["cases"][6]["verdict"] == "timeout"
    assert all(isinstance(row["peak_memory"], int) for row in teacher.values())

    # A Canvas export of the same batch: its record beside it is resumed, nothing re-run.
    canvas = tmp_path / "canvas.csv"
    shutil.copy(record, tmp_path / "canvas.json")
    done = codedock(
        "grade", str(submissions), "--cases", cases, "--out", str(canvas), "--format", "canvas"
    )
    assert done.returncode == 0, done.stderr
    assert "graded 0, already graded 11" in done.stdout
    rows = list(csv.reader(canvas.open()))
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "cases"]
    assert rows[1][0] == "Points Possible" and rows[1][5] == "10"
    assert {row[3]: row[5] for row in rows[2:]} == EXPECTED

    page = tmp_path / "class.html"
    done = codedock("report", str(record), "--out", str(page), "--title", "Sums")
    assert done.returncode == 0, done.stderr
    assert "11 submissions" in done.stdout
    shown, refused, dialogs = _open(page, "class-report")
    assert refused == [] and dialogs == [] and shown["scripts"] == 0
    text = shown["text"]
    assert "11 submissions" in text and shown["bars"] == 11  # one bar per score, 0 to 10
    assert "many numbers (hidden)" in text and "no hand-in times" in text
    slowest = text.split("Slowest submissions")[1].split("Most memory-hungry")[0]
    rows = [line.split("\t")[0] for line in slowest.splitlines() if "\t" in line][1:]
    # cy ran into a 2 s timeout: among the slowest of the class, whatever the load.
    assert len(rows) == 5 and "cy" in rows[:3]

    bad = codedock("report", str(tmp_path / "nothing.csv"), "--out", str(page))
    assert bad.returncode == 1 and "JSON record" in bad.stderr and "Traceback" not in bad.stderr


def test_prairielearn_export_keeps_hidden_cases_bare(engine: DockerEngine, tmp_path: Path) -> None:
    submissions = tmp_path / "class"
    submissions.mkdir()
    (submissions / "ok.py").write_text("print(input()[::-1])\n")
    (submissions / "leaky.py").write_text(
        "import sys\ns = input()\nprint('LEAK', s, file=sys.stderr)\nsys.exit(len(s))\n"
    )
    cases = tmp_path / "cases.json"
    cases.write_text(
        json.dumps(
            [
                {"name": "abc", "stdin": "abc\n", "expected": "cba"},
                {
                    "name": "secret",
                    "stdin": "HIDDENINPUT\n",
                    "expected": "TUPNINEDDIH",
                    "hidden": True,
                },
            ]
        )
    )
    out = tmp_path / "pl"
    done = codedock(
        "grade",
        str(submissions),
        "--cases",
        str(cases),
        "--out",
        str(out),
        "--format",
        "prairielearn",
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    ok = json.loads((out / "ok" / "results.json").read_text())
    assert ok["gradable"] is True and ok["score"] == 1.0
    text = (out / "leaky" / "results.json").read_text()
    leaky = json.loads(text)
    assert leaky["score"] == 0.0
    visible, hidden = leaky["tests"]
    assert "LEAK abc" in visible["output"] and visible["message"] == "error: exit 3"
    assert hidden == {"name": "secret", "points": 0.0, "max_points": 1, "message": "", "output": ""}
    assert "HIDDEN" not in text and "TUPNI" not in text and "exit 11" not in text


def test_similarity_ranks_the_planted_copies_first(tmp_path: Path) -> None:
    submissions = tmp_path / "class"
    shutil.copytree(SIMILAR, submissions)
    (submissions / "broken").mkdir()
    (submissions / "<b>odd<i>").mkdir()
    (submissions / "plain.py").write_text("print('<script>alert(1)</script>')\n")
    page = tmp_path / "similar.html"
    done = codedock("similarity", str(submissions), "--out", str(page))
    assert done.returncode == 0, done.stderr
    assert "compared 12 submissions, 66 pairs; 3 at or above 60%" in done.stdout
    flagged = [line.split(None, 1)[1] for line in done.stdout.splitlines()[1:]]
    assert sorted(flagged) == ["ada · ivy", "cy · jo", "eve · kit"]
    shown, refused, dialogs = _open(page, "similarity-report")
    assert refused == [] and dialogs == [] and shown["scripts"] == 0
    assert "broken: broken/ has no main.py" in shown["text"]
    assert "<b>odd<i>: <b>odd<i>/ has no main.py" in shown["text"] and shown["marked"] > 40

    starter = tmp_path / "starter.py"
    starter.write_text((SIMILAR / "cy.py").read_text())
    done = codedock("similarity", str(submissions), "--starter", str(starter), "--out", str(page))
    assert done.returncode == 0, done.stderr
    # cy and jo share nothing beyond what they were given.
    assert "cy · jo" not in done.stdout and "starter.py" in page.read_text()
