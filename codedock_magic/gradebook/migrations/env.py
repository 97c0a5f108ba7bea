"""Alembic's entry point: migrates the connection the gradebook hands over."""

from __future__ import annotations

from alembic import context

from codedock_magic.gradebook.schema import VERSION_TABLE


def migrate() -> None:
    """Run the migrations on the connection in Alembic's config."""
    connection = context.config.attributes["connection"]
    context.configure(connection=connection, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()


# Alembic runs this file as a script of its own; imported as a module of the
# package (by a tool that walks it) it must do nothing.
if not __name__.startswith("codedock_magic."):
    migrate()
