"""The gradebook's Alembic migrations, run by :class:`~codedock_magic.gradebook.Gradebook`."""
