"""The pycodedock API through our package, and proof that its defects are gone."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from codedock_magic import DockerEngine, InvalidValueError, dock

from ..conftest import wait_until_gone


def _job(
    root: Path, code: str, stdin: str | None = None, name: str = "job", **kw: object
) -> dock.Docker:
    script = root / f"{name}.py"
    script.write_text(code)
    data = None
    if stdin is not None:
        data = root / f"{name}.in"
        data.write_text(stdin)
    settings = {"DOCKER_ROOT": str(root / "residue"), **kw.pop("settings", {})}  # type: ignore[dict-item]
    (root / "residue").mkdir(exist_ok=True)
    return dock.Docker(
        name, str(script), str(data) if data else None, kw.pop("time_limit", 10), settings
    )  # type: ignore[arg-type]


def test_run_returns_zero_and_writes_output_files(engine: DockerEngine, tmp_path: Path) -> None:
    job = _job(tmp_path, "print(sum(map(int, input().split())))", "1 2 3\n")
    assert job.run() == 0
    assert Path(job.output_file).read_text() == "6\n"
    assert Path(job.error_file).read_text() == ""
    assert Path(job.output_file).parent == tmp_path / "residue" / "job"
    job.destroy()
    assert not (tmp_path / "residue" / "job").exists()
    assert (tmp_path / "residue").is_dir() and (tmp_path / "job.py").is_file()


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("import sys\nsys.exit(3)", -1),
        ("raise ValueError('bad')", -1),
        ("import sys\nprint('just a warning', file=sys.stderr)", 0),
        ("import time\ntime.sleep(30)", 124),
        ("hog = bytearray(400 * 1024 * 1024)", -1),
    ],
    ids=["exit-3", "exception", "stderr-warning", "timeout", "memory"],
)
def test_status_codes_are_honest(
    engine: DockerEngine, tmp_path: Path, code: str, status: int
) -> None:
    job = _job(tmp_path, code, time_limit=1, settings={"DOCKER_MEM_LIMIT": "100m"})
    start = time.monotonic()
    try:
        assert job.run() == status
    finally:
        job.destroy()
    assert time.monotonic() - start < 5, "no 10 s docker stop"


def test_defaults_match_pycodedock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    script = tmp_path / "s.py"
    script.write_text("print(1)")
    job = dock.Docker("defaults", str(script), None)
    try:
        assert job.folder == tmp_path / "defaults"
        assert job.limits.timeout == 1000
        assert job.limits.memory == 1024**3
        assert job.limits.cpus == pytest.approx(0.9)
        assert job.image == "pybuntu"
    finally:
        job.destroy()


@pytest.mark.parametrize("code", ["", "../etc", "a/b", ".", "..", ".hidden", "a b", None])
def test_bad_unique_codes_are_refused_and_nothing_is_deleted(tmp_path: Path, code: object) -> None:
    keep = tmp_path / "keep.txt"
    keep.write_text("precious")
    script = tmp_path / "s.py"
    script.write_text("print(1)")
    with pytest.raises(InvalidValueError, match="unique_code"):
        dock.Docker(code, str(script), None, 5, {"DOCKER_ROOT": str(tmp_path)})  # type: ignore[arg-type]
    assert keep.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt", "s.py"]


def test_a_code_in_use_is_refused_and_its_folder_kept(tmp_path: Path) -> None:
    script = tmp_path / "s.py"
    script.write_text("print(1)")
    settings = {"DOCKER_ROOT": str(tmp_path)}
    first = dock.Docker("same", str(script), None, 5, settings)
    with pytest.raises(InvalidValueError, match="not in use"):
        dock.Docker("same", str(script), None, 5, settings)
    assert (tmp_path / "same" / "code.py").is_file()
    first.destroy()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("user data")
    with pytest.raises(InvalidValueError, match="taken"):
        dock.Docker("taken", str(script), None, 5, settings)
    assert (tmp_path / "taken" / "mine.txt").read_text() == "user data"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"DOCKER_MEMORY": "1g"}, "custom_settings key 'DOCKER_MEMORY' is not one of DOCKER_ROOT"),
        ({"DOCKER_MEM_LIMIT": "lots"}, "DOCKER_MEM_LIMIT 'lots' is not a size such as 100m or 1g"),
        (
            {"DOCKER_CPU_QUOTA_LIMIT": "ninety"},
            "DOCKER_CPU_QUOTA_LIMIT 'ninety' is not a whole number",
        ),
        (
            {"DOCKER_ROOT": "/nonexistent/place"},
            "DOCKER_ROOT '/nonexistent/place' is not an existing folder",
        ),
        ({"DOCKER_IMAGE_NAME": " "}, "DOCKER_IMAGE_NAME '' is not an image name"),
    ],
)
def test_bad_settings_get_clear_errors(
    tmp_path: Path, settings: dict[str, str], message: str
) -> None:
    script = tmp_path / "s.py"
    script.write_text("print(1)")
    with pytest.raises(InvalidValueError) as info:
        dock.Docker("x", str(script), None, 5, settings)
    assert str(info.value).startswith(message)
    assert not (tmp_path / "x").exists()


def test_parallel_threads_with_distinct_codes(engine: DockerEngine, tmp_path: Path) -> None:
    results: dict[int, tuple[int, str]] = {}

    def work(i: int) -> None:
        job = _job(tmp_path, "n = int(input())\nprint(n * n)", f"{i}\n", name=f"job{i}")
        try:
            results[i] = (job.run(), Path(job.output_file).read_text())
        finally:
            job.destroy()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: (0, f"{i * i}\n") for i in range(8)}
    assert list((tmp_path / "residue").iterdir()) == []


def test_no_host_folder_inside_the_container(engine: DockerEngine, tmp_path: Path) -> None:
    # pycodedock's container could plant a symlink in its writable host folder and
    # have the host write through it. Here the residue folder never reaches it.
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    code = textwrap.dedent(
        f"""
        import os
        print([l.split()[4] for l in open('/proc/self/mountinfo')])
        for path in ['output.txt', 'error.txt']:
            try:
                os.symlink({str(victim)!r}, path)
            except OSError as e:
                print('no', e)
        print('pwned')
        """
    )
    job = _job(tmp_path, code)
    try:
        assert job.run() == 0
        out = Path(job.output_file).read_text()
    finally:
        job.destroy()
    assert str(tmp_path) not in out.splitlines()[0]
    assert victim.read_text() == "untouched"


def test_sigterm_during_run_removes_container_and_residue(
    engine: DockerEngine, tmp_path: Path
) -> None:
    script = tmp_path / "s.py"
    script.write_text("print('up', flush=True)\nimport time\ntime.sleep(120)\n")
    host = textwrap.dedent(
        f"""
        from codedock_magic import dock
        from codedock_magic.labels import SESSION_ID
        print(SESSION_ID, flush=True)
        job = dock.Docker('term', {str(script)!r}, None, 300, {{'DOCKER_ROOT': {str(tmp_path)!r}}})
        job.run()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", host], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    session = proc.stdout.readline().strip()
    deadline = time.monotonic() + 10
    while not engine.list({"io.codedock.session": session}) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.list({"io.codedock.session": session}), "the run never started"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == -signal.SIGTERM
    assert not (tmp_path / "term").exists()
    assert wait_until_gone(engine, session, within=0.5) == []
