"""``python -m codedock_magic.service``: the same as ``codedock serve``."""

import sys

from . import main

sys.exit(main(sys.argv[1:]))
