"""``python -m codedock_magic``: the ``codedock`` command."""

from .cli import main

raise SystemExit(main())
