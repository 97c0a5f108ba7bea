"""Images, files and values in and out of the sandbox, against the real engine."""

from __future__ import annotations

import base64
import re
import time

import pytest

from codedock_magic import DockerEngine, ImageNotFoundError, InvalidValueError, Limits, run

SCI = "codedock/pybuntu-sci:latest"
LIMITS = Limits(timeout=20)
# The smallest valid PNG: 1x1, one grey pixel.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg=="
)
SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4">'
    b'<rect width="4" height="4"/></svg>'
)


@pytest.fixture(scope="module")
def sci(engine: DockerEngine) -> str:
    if not engine.image_exists(SCI):
        raise ImageNotFoundError(SCI)
    return SCI


def test_display_sends_images_in_order_with_the_text(engine: DockerEngine) -> None:
    code = (
        "import base64, sys\n"
        "print('before')\n"
        f"display(base64.b64decode({base64.b64encode(PNG)!r}))\n"
        "print('between')\n"
        "from IPython.display import SVG, Image\n"
        f"display(SVG({SVG!r}), Image(base64.b64decode({base64.b64encode(PNG)!r})))\n"
        "display({'not': 'an image'})\n"
        "print('after')\n"
    )
    live: list[tuple[str, int]] = []
    result = run(code, limits=LIMITS, on_image=lambda mime, data: live.append((mime, len(data))))
    assert result.ok, result.stderr
    assert [mime for mime, _ in result.images] == ["image/png", "image/svg+xml", "image/png"]
    assert result.images[0][1] == PNG and result.images[1][1] == SVG
    assert live == [(mime, len(data)) for mime, data in result.images]
    assert result.stdout == "before\nbetween\n{'not': 'an image'}\nafter\n"
    assert result.image_positions == (7, 15, 15)
    assert result.notes == ()


def test_images_past_the_caps_or_not_what_they_claim_become_notes(engine: DockerEngine) -> None:
    code = (
        "import base64, os, struct\n"
        f"png = base64.b64decode({base64.b64encode(PNG)!r})\n"
        "def frame(kind, body):\n    os.write(3, struct.pack('>cI', kind, len(body)) + body)\n"
        "frame(b'i', b'image/png\\0not a png')\n"
        "frame(b'i', b'text/html\\0<script>alert(1)</script>')\n"
        "frame(b'i', b'image/png\\0' + png + b'x' * (6 * 1024 * 1024))\n"
        "for _ in range(22):\n    display(png)\n"
        "os.write(3, struct.pack('>cI', b'i', 2**31))\n"
        "print('still running')\n"
    )
    result = run(code, limits=LIMITS)
    assert result.ok and result.stdout == "still running\n"
    assert len(result.images) == 20
    assert "says PNG but is not one" in result.notes[0]
    assert "of type 'text/html'" in result.notes[1]
    assert "over 5m" in result.notes[2]
    assert result.notes[3:5] == ("not shown: an image past the first 20",) * 2
    assert "broke its framing" in result.notes[5] and len(result.notes) == 6


def test_files_come_back_from_out_and_go_in_before_the_run(engine: DockerEngine) -> None:
    code = (
        "import os\n"
        "print(open('data.csv').read(), open('deep/er.bin', 'rb').read())\n"
        "os.makedirs('out/sub')\n"
        "open('out/result.txt', 'w').write('42')\n"
        "open('out/sub/raw.bin', 'wb').write(bytes(range(256)))\n"
        "open('out/big.bin', 'wb').write(b'x' * (9 * 1024 * 1024))\n"
        "os.symlink('/etc/passwd', 'out/passwd')\n"
        "os.mkfifo('out/pipe')\n"
    )
    files = {"data.csv": "a,b\n1,2", "deep/er.bin": b"\x00\xff"}
    result = run(code, limits=LIMITS, files=files)
    assert result.ok, result.stderr
    assert result.stdout == "a,b\n1,2 b'\\x00\\xff'\n"
    assert result.files == {"result.txt": b"42", "sub/raw.bin": bytes(range(256))}
    assert sorted(result.notes) == [
        "out/big.bin (9437184 bytes) is past the size caps",
        "out/passwd is a symlink; not followed",
        "out/pipe is not a regular file; skipped",
    ]
    for name in ("../x", "/etc/x", "main.py", "a//b", ""):
        with pytest.raises(InvalidValueError, match="file name"):
            run("", files={name: b""})


def test_values_go_in_as_json_and_one_comes_back(engine: DockerEngine) -> None:
    values = {"numbers": [1, 2.5, None], "table": {"a": "b"}, "flag": True}
    result = run(
        "total = sum(n for n in numbers if n) + len(table) + flag",
        values=values,
        returns="total",
        limits=LIMITS,
    )
    assert result.ok and result.value == 5.5 and result.returned and result.notes == ()
    with pytest.raises(InvalidValueError, match="numbers"):
        run("", values={"numbers": {1, 2}})
    with pytest.raises(InvalidValueError, match="variable name"):
        run("", values={"not a name": 1})
    assert run("s = {1}", returns="s").notes == (
        "--return s: s holds a set, not a JSON value (Object of type set is not JSON serializable)",
    )
    missing = run("x = 1", returns="y")
    assert missing.notes == ("--return y: the program has no variable y",)
    assert not missing.returned
    cut = run("import os\nx = 1\nos._exit(0)", returns="x")
    assert cut.value is None and not cut.returned and "nothing came back" in cut.notes[0]
    # A returned value that is JSON null is a value.
    null = run("x = None", returns="x")
    assert null.notes == () and null.returned and null.value is None


def test_matplotlib_plots_come_back_without_rebuilding_the_font_cache(sci: str) -> None:
    code = (
        "import matplotlib.pyplot as plt, numpy as np, pandas as pd\n"
        "frame = pd.DataFrame({'x': np.arange(5), 'y': np.arange(5) ** 2})\n"
        "plt.plot(frame.x, frame.y)\n"
        "plt.show()\n"
        "plt.figure()\n"
        "plt.bar(['a', 'b'], [1, 2])\n"
        "print(frame.y.sum())\n"
    )
    started = time.monotonic()
    result = run(code, image=sci, limits=LIMITS)
    took = time.monotonic() - started
    assert result.ok, result.stderr
    assert result.stdout == "30\n"
    # One from show(), one left open at the end.
    assert [mime for mime, _ in result.images] == ["image/png", "image/png"]
    assert all(data.startswith(b"\x89PNG") and len(data) > 2000 for _, data in result.images)
    assert "Matplotlib" not in result.stderr
    assert took < 10, took
    # The font cache was built into the image: matplotlib reads it through links in
    # a writable folder outside the work dir, and builds nothing of its own.
    probe = (
        "import os, matplotlib.pyplot as plt\n"
        "plt.plot([1])\n"
        "cache = plt.matplotlib.get_cachedir()\n"
        "links = [(n, os.path.islink(os.path.join(cache, n))) for n in os.listdir(cache)]\n"
        "print(cache, sorted(links))\n"
        "print(os.listdir('.'))\n"
    )
    listing = run(probe, image=sci, limits=LIMITS)
    cache, files = listing.stdout.splitlines()
    assert re.match(r"/dev/shm/matplotlib-\d+ \[\('fontlist-v", cache) and "True)]" in cache
    assert "False" not in cache and files == "['main.py']"
