"""Assignments the service holds, checked from real kernels against a real ``codedock serve``.

A student sees the visible cases' diffs, the hidden cases' verdicts and points
alone, and the attempts left; a hostile program, and the student who sends it,
learn nothing of a hidden case's input or expected output by any route they
have; attempt limits hold across kernels and a restart; a teacher sees it all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from jupyter_client.manager import KernelManager

from codedock_magic import DockerEngine

from .kernelhelp import execute
from .servicehelp import Service, auth

# What a student must never learn: a hidden case's input and its expected output.
SECRET_IN = "918273 645546"
SECRET_OUT = "1563819"
SUM = "print(sum(int(w) for w in input().split()))\n"
WRONG = "print(int(input().split()[0]))\n"

ASSIGNMENTS: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {
    "hw": (
        [
            {"name": "small", "stdin": "1 2\n", "expected": "3\n"},
            {
                "name": "secret",
                "stdin": SECRET_IN + "\n",
                "expected": SECRET_OUT + "\n",
                "hidden": True,
                "points": 2,
            },
        ],
        {"attempts": {"max": 20}, "reveal_to": ["teachers"], "limits": {"timeout": 2}},
    ),
    "attack": (
        [
            {"name": "seen", "stdin": "0 0\n", "expected": "0\n"},
            {
                "name": "secret",
                "stdin": f"{SECRET_IN} SLOW\n",
                "expected": SECRET_OUT + "\n",
                "hidden": True,
            },
        ],
        {"reveal_to": ["teachers"], "limits": {"timeout": 2}},
    ),
    "limited": (
        [{"name": "small", "stdin": "1 2\n", "expected": "3\n"}],
        {"attempts": {"max": 2, "window": 3600}, "reveal_to": ["teachers"]},
    ),
    "slow-down": (
        [{"name": "small", "stdin": "1 2\n", "expected": "3\n"}],
        {"cooldown": 3600, "reveal_to": ["teachers"]},
    ),
    # Its checker fails on what a program prints: a failure among hidden cases.
    "checked": (
        [
            {"name": "seen", "stdin": "0 0\n", "expected": "0\n"},
            {
                "name": "secret",
                "stdin": SECRET_IN + "\n",
                "hidden": True,
                "compare": "checker",
                "checker": "checkers.py:judge",
            },
        ],
        {"attempts": {"max": 3}, "reveal_to": ["teachers"], "limits": {"timeout": 2}},
    ),
    "later": (
        [{"name": "small", "stdin": "1 2\n", "expected": "3\n"}],
        {"opens": "2999-01-01T00:00:00Z"},
    ),
}


CHECKERS = """
def judge(output, case):
    if output.strip() == "x":
        raise ValueError("the checker cannot read x")
    return output.strip() == "ok"
"""


def _write(root: Path) -> Path:
    for name, (cases, rules) in ASSIGNMENTS.items():
        folder = root / name
        folder.mkdir(parents=True)
        (folder / "cases.json").write_text(json.dumps({"cases": cases}))
        (folder / "assignment.json").write_text(json.dumps(rules))
        (folder / "checkers.py").write_text(CHECKERS)
    return root


def _service(folder: Path) -> Service:
    return Service(
        folder,
        assignments_dir=str(_write(folder / "assignments")),
        user_groups={"bob": ["teachers"]},
        pool_size=0,
    )


@pytest.fixture(scope="module")
def service(engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    started = _service(tmp_path_factory.mktemp("assignments")).start()
    yield started
    started.stop()


def _kernel(url: str, token: str) -> tuple[KernelManager, Any]:
    env = {
        **os.environ,
        "CODEDOCK_SERVICE_URL": url,
        "CODEDOCK_SERVICE_TOKEN": token,
        "DOCKER_HOST": "unix:///nonexistent/docker.sock",
    }
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=env)
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    reply = client.execute_interactive("%load_ext codedock_magic", timeout=60)
    assert reply["content"]["status"] == "ok"
    return manager, client


def _stop(kernel: tuple[KernelManager, Any]) -> None:
    manager, client = kernel
    client.stop_channels()
    manager.shutdown_kernel(now=True)


@pytest.fixture
def alice(service: Service) -> Iterator[Any]:
    kernel = _kernel(service.url, "tok-alice")
    yield kernel[1]
    _stop(kernel)


def _check(service: Service, name: str, code: str, token: str = "tok-alice") -> Any:
    return requests.post(
        f"{service.url}/api/assignments/{name}/check",
        json={"code": code},
        headers=auth(token),
        timeout=120,
    )


def test_a_student_sees_visible_diffs_hidden_verdicts_and_attempts_left(
    service: Service, alice: Any
) -> None:
    cell = f"%%sandbox --assignment hw --no-raise-error --result graded\n{WRONG}"
    content, shown = execute(alice, cell, timeout=120)
    assert content["status"] == "ok", shown
    # The visible case's diff: expected 3, got 1.
    assert "wrong answer" in shown and "3" in shown
    assert "0/2 passed · 0/3 points" in shown and "attempts left" in shown
    assert SECRET_IN.split()[0] not in shown and SECRET_OUT not in shown
    content, shown = execute(
        alice,
        "print([(c.name, c.verdict.value, c.withheld, c.stdout, c.diff) for c in graded.cases],"
        " graded.attempts_left)",
    )
    assert "('small', 'wrong answer', False, '1\\n'" in shown
    assert "('secret', 'wrong answer', True, '', '')" in shown
    left = int(shown.strip().rsplit(" ", 1)[1])
    assert 0 < left < 20

    content, shown = execute(alice, f"%%sandbox --assignment hw --result graded\n{SUM}", 120)
    assert content["status"] == "ok", shown
    assert "2/2 passed · 3/3 points" in shown and f"{left - 1} attempts left" in shown

    # From Python too, as a grading cell would.
    content, shown = execute(
        alice,
        "from codedock_magic import check\n"
        f"r = check({SUM!r}, assignment='hw')\n"
        "print(r.summary(), r.cases[1].withheld, r.cases[1].stdout == '')",
        120,
    )
    assert f"2/2 passed · 3/3 points · {left - 2} attempts left True True" in shown, shown

    content, shown = execute(alice, "%sandbox_assignments")
    assert "hw: open" in shown and "later: not open yet" in shown, shown
    assert "slow-down: open" in shown and "attempts: no limit" in shown
    content, shown = execute(alice, "%sandbox_info")
    assert "user:      alice" in shown and "hw: open" in shown, shown


def test_refusals_say_when_the_next_attempt_is_allowed(service: Service, alice: Any) -> None:
    first = _check(service, "slow-down", SUM)
    assert first.status_code == 200 and first.json()["next_at"] is not None
    content, shown = execute(alice, f"%%sandbox --assignment slow-down\n{SUM}", 60)
    assert content["status"] == "error"
    assert "the cooldown is 3600 s; the next attempt is allowed at 2" in shown, shown
    assert "refused:" in shown  # the badge says it too
    later = _check(service, "later", SUM)
    assert later.status_code == 403 and "not open yet" in later.json()["message"]
    missing = _check(service, "nope", SUM)
    assert missing.status_code == 404


def test_without_a_service_assignment_says_it_needs_one(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEDOCK_SERVICE")}
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=env)
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        execute(client, "%load_ext codedock_magic")
        content, shown = execute(client, f"%%sandbox --assignment hw\n{SUM}")
        assert content["status"] == "error"
        assert "assignments are held by the sandbox service" in shown, shown
        assert "Traceback" not in shown and shown.count("\n") <= 2
    finally:
        _stop((manager, client))


def _hostile(sleep_when: str) -> str:
    """A program that tries every channel to send its input out."""
    return f"""
import os, sys, time, zlib, struct
data = sys.stdin.read()
print(data)
print(data, file=sys.stderr)
os.makedirs("/sandbox/out", exist_ok=True)
open("/sandbox/out/leak.txt", "w").write(data)
def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
png = (b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
       + chunk(b"tEXt", b"leak\\x00" + data.encode()) + chunk(b"IDAT", zlib.compress(b"\\x00\\x00"))
       + chunk(b"IEND", b""))
try:
    display(png)
except Exception:
    pass
bytes(int(data.split()[0]) % 50 * 1024 * 1024)   # memory that tells the input
if {sleep_when!r} in data:
    time.sleep(1.5)                                # time that tells the input
raise SystemExit("leak: " + data)                  # an error, a message, an exit code
"""


def _everything_said(service: Service, response: requests.Response) -> str:
    said = [response.text, json.dumps(dict(response.headers))]
    said.append(requests.get(f"{service.url}/api/runs", headers=auth("tok-alice"), timeout=10).text)
    said.append(
        requests.get(f"{service.url}/api/assignments", headers=auth("tok-alice"), timeout=10).text
    )
    said.append(requests.get(f"{service.url}/api/info", headers=auth("tok-alice"), timeout=10).text)
    said.append(
        requests.get(f"{service.url}/metrics", headers=auth("tok-metrics"), timeout=10).text
    )
    said.append(service.audit.read_text())
    said.append(service.output())
    return "\n".join(said)


def test_a_hostile_student_learns_nothing_of_a_hidden_case(service: Service, alice: Any) -> None:
    timings = {}
    for when in ("SLOW", "NEVER"):
        started = time.monotonic()
        response = _check(service, "attack", _hostile(when))
        timings[when] = time.monotonic() - started
        assert response.status_code == 200, response.text
        body = response.json()
        secret = body["cases"][1]
        assert secret == {
            "name": "secret",
            "verdict": "error",
            "points": 0.0,
            "max_points": 1.0,
            "hidden": True,
            "withheld": True,
        }
        # The visible case shows its own output in full: the program's channels work.
        assert "leak: 0 0" in body["cases"][0]["stderr"]
        said = _everything_said(service, response)
        for secret_text in (SECRET_IN, SECRET_IN.split()[0], SECRET_IN.split()[1], SECRET_OUT):
            assert secret_text not in said
        assert "SLOW" not in response.text
    # The hidden verdict comes after a fixed time, whatever the program did with its input.
    assert abs(timings["SLOW"] - timings["NEVER"]) < 1.0, timings

    # From the kernel: the rendering, the error, %sandbox_info and %sandbox_assignments.
    cell = "%%sandbox --assignment attack --result r\n" + _hostile("SLOW")
    content, shown = execute(alice, cell, timeout=120)
    assert content["status"] == "error" and "CheckFailedError" in shown
    content, more = execute(alice, "%sandbox_info\n%sandbox_assignments\nprint(r.to_json())")
    assert content["status"] == "ok", more
    for text in (shown, more):
        assert SECRET_IN.split()[0] not in text and SECRET_OUT not in text


def test_a_teacher_sees_everything(service: Service) -> None:
    response = _check(service, "hw", WRONG, token="tok-bob")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["revealed"] is True
    secret = body["cases"][1]
    assert secret["stdout"] == SECRET_IN.split()[0] + "\n"
    assert SECRET_OUT in secret["diff"] and "withheld" not in secret


def test_a_teacher_has_no_limit_nor_cooldown_and_counts_for_no_student(
    service: Service, tmp_path: Path
) -> None:
    # Past the limit of 2, and past a cooldown of an hour, a teacher still checks.
    for name, times in (("limited", 3), ("slow-down", 2)):
        for _ in range(times):
            response = _check(service, name, SUM, token="tok-bob")
            assert response.status_code == 200, response.text
            assert response.json()["attempts_left"] is None
            assert response.json()["next_at"] is None
    # A student is still held back, and the teacher's attempts are not theirs.
    student = _check(service, "limited", SUM)
    assert student.status_code == 200 and student.json()["attempts_left"] == 1
    listed = requests.get(f"{service.url}/api/assignments", headers=auth("tok-alice"), timeout=10)
    (limited,) = [a for a in listed.json()["assignments"] if a["name"] == "limited"]
    assert limited["attempts_left"] == 1
    # Recorded, marked as a teacher's: kept out of the export.
    out = tmp_path / "limited.json"
    export = ["gradebook", "export", "--assignment", "limited", "--out", str(out)]
    subprocess.run(
        [sys.executable, "-m", "codedock_magic", *export, "--config", str(service.config)],
        check=True,
        timeout=60,
    )
    students = json.loads(out.read_text())["students"]
    assert [(s["student"], s["attempts"]) for s in students] == [("alice", 1)]
    from codedock_magic.gradebook import Gradebook

    with Gradebook(f"sqlite:///{service.folder / 'gradebook.sqlite'}") as book:
        kept = book.attempts("bob", "limited")
    assert len(kept) == 3 and all(a.teacher for a in kept)


def test_the_attempt_limit_holds_across_kernels_and_a_restart(
    engine: DockerEngine, tmp_path: Path
) -> None:
    own = _service(tmp_path).start()
    kernels = [_kernel(own.url, "tok-alice"), _kernel(own.url, "tok-alice")]
    try:
        cell = f"%%sandbox --assignment limited\n{SUM}"
        content, shown = execute(kernels[0][1], cell, 60)
        assert content["status"] == "ok" and "1 attempt left" in shown, shown
        content, shown = execute(kernels[1][1], cell, 60)
        assert content["status"] == "ok" and "0 attempts left" in shown, shown
        port = own.port
        own.stop()
        own.start(port=port)
        for _, client in kernels:
            content, shown = execute(client, cell, 60)
            assert content["status"] == "error"
            assert (
                "no attempts left (the limit is 2 in 3600 s); the next attempt is allowed at"
                in (shown)
            ), shown
        # Another user is not held back by alice's attempts.
        assert _check(own, "limited", SUM, token="tok-bob").status_code == 200
    finally:
        for kernel in kernels:
            _stop(kernel)
        own.stop()


def test_a_failure_among_hidden_cases_answers_late_says_nothing_and_counts(
    service: Service,
) -> None:
    # The program makes the checker fail only when the hidden input is what it
    # guesses: an oracle, were the answer quicker, different or not counted.
    oracle = f"s = input()\nprint('x' if s.startswith('{SECRET_IN[:6]}') else 'ok')\n"
    started = time.monotonic()
    answer = _check(service, "checked", oracle, token="tok-alice")
    took = time.monotonic() - started
    assert answer.status_code == 200, answer.text
    body = answer.json()
    secret = next(case for case in body["cases"] if case["name"] == "secret")
    assert secret["verdict"] == "error" and secret["points"] == 0
    assert SECRET_IN not in answer.text and "checker" not in answer.text
    # The fixed time: its timeout (2 s) and the start allowance (2 s).
    assert took >= 4.0, took
    assert body["attempts_left"] == 2


def test_code_with_a_nul_is_refused_before_it_runs(service: Service) -> None:
    # A check that ran but could not be recorded would go uncounted.
    answer = _check(service, "hw", "print(1)\0\n")
    assert answer.status_code == 400 and "NUL" in answer.json()["message"], answer.text
