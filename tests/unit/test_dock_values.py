"""The pycodedock API refuses bad codes before anything is created or deleted."""

from __future__ import annotations

from pathlib import Path

import pytest

from codedock_magic import InvalidValueError, dock


@pytest.mark.parametrize(
    "code",
    ["job\n", "", "../up", "a/b", ".hidden", "x" * 256, "é" * 200, None],
    ids=["trailing-newline", "empty", "parent", "slash", "dot", "too-long", "long-bytes", "none"],
)
def test_bad_unique_codes_are_refused_with_the_apis_own_error(tmp_path: Path, code: object) -> None:
    script = tmp_path / "s.py"
    script.write_text("print(1)")
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(InvalidValueError, match=r"^unique_code "):
        dock.Docker(code, str(script), None, 5, {"DOCKER_ROOT": str(root)})  # type: ignore[arg-type]
    assert list(root.iterdir()) == []


def test_a_long_but_legal_code_makes_its_folder(tmp_path: Path) -> None:
    script = tmp_path / "s.py"
    script.write_text("print(1)")
    job = dock.Docker("x" * 255, str(script), None, 5, {"DOCKER_ROOT": str(tmp_path)})
    try:
        assert Path(job.output_file).parent.name == "x" * 255
    finally:
        job.destroy()
