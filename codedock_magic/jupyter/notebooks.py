"""Execute notebooks headless and report each sandboxed cell's outcome.

``python -m codedock_magic.jupyter.notebooks notebooks/demo.ipynb`` runs the notebook in
a real kernel (nbclient) and prints one line per ``%%sandbox`` run, read from the
static result each run leaves in the notebook.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CellOutcome", "execute", "main", "outcomes"]


@dataclass(frozen=True)
class CellOutcome:
    """The sandbox runs of one code cell: their statuses and summaries, in order."""

    index: int
    source: str
    statuses: list[str]
    summaries: list[str]


def _sliced(get_msg: Any) -> Any:
    """Wrap a channel's ``get_msg`` so that it polls in one-second slices.

    Now and then the asyncio wake-up for a message that has already arrived is
    lost, and a single long poll then sits out its whole timeout (minutes) before
    it looks again; short slices look again every second.
    """
    from queue import Empty

    async def get(timeout: float | None = None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            step = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
            try:
                return await get_msg(timeout=step)
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    return get


def _client_class() -> Any:
    from nbclient import NotebookClient

    class SlicedPollClient(NotebookClient):
        async def async_start_new_kernel_client(self) -> Any:
            client = await super().async_start_new_kernel_client()
            for channel in (client.shell_channel, client.iopub_channel):
                channel.get_msg = _sliced(channel.get_msg)
            return client

    return SlicedPollClient


def execute(path: Path, *, timeout: int = 300, save: Path | None = None) -> Any:
    """Run every cell of the notebook at ``path`` in a fresh kernel; return the notebook."""
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    _client_class()(
        notebook,
        kernel_name="python3",
        # The kernel warns on every start that local TCP is unencrypted; it listens
        # on 127.0.0.1 only, so keep just its errors.
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
        timeout=timeout,
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    if save is not None:
        nbformat.write(notebook, save)
    return notebook


def outcomes(notebook: Any) -> list[CellOutcome]:
    """The outcome of each code cell that ran something in a sandbox."""
    found = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        runs = [
            output["metadata"]["codedock"]
            for output in cell.get("outputs", [])
            if "codedock" in output.get("metadata", {})
        ]
        if runs:
            statuses = [run["status"] for run in runs]
            summaries = [run.get("summary", run["status"]) for run in runs]
            found.append(CellOutcome(index, cell.source, statuses, summaries))
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Execute the notebooks named on the command line and print their outcomes."""
    parser = argparse.ArgumentParser(
        prog="python -m codedock_magic.jupyter.notebooks", description=__doc__.splitlines()[0]
    )
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--save-to", type=Path, help="folder to write the executed notebooks to")
    args = parser.parse_args(argv)
    for path in args.notebooks:
        save = args.save_to / path.name if args.save_to else None
        if save is not None:
            save.parent.mkdir(parents=True, exist_ok=True)
        print(f"{path}:")
        for outcome in outcomes(execute(path, save=save)):
            head = next((line for line in outcome.source.splitlines() if line.strip()), "")
            print(f"  cell {outcome.index:>2}: {', '.join(outcome.summaries):<32} {head}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
