"""Point matplotlib at the font cache built into codedock/pybuntu-sci.

Loaded by a .pth file at every Python start in the image. matplotlib wants a
writable cache folder and rebuilds the font cache in a fresh one (seconds); the
sandbox's home is fresh on every run. So, unless MPLCONFIGDIR is set already,
make a writable folder outside the work dir and link the prebuilt cache into it.
"""

import os

BUILT = "/usr/share/codedock/matplotlib"


def _point() -> None:
    if "MPLCONFIGDIR" in os.environ or not os.path.isdir(BUILT):
        return
    for base in ("/dev/shm", os.environ.get("TMPDIR", ""), "/tmp"):
        if not base or not os.access(base, os.W_OK):
            continue
        target = os.path.join(base, f"matplotlib-{os.getuid()}")
        try:
            os.makedirs(target, mode=0o700, exist_ok=True)
            for name in os.listdir(BUILT):
                link = os.path.join(target, name)
                if not os.path.lexists(link):
                    os.symlink(os.path.join(BUILT, name), link)
        except OSError:
            continue
        os.environ["MPLCONFIGDIR"] = target
        return


_point()
