"""The house: no import circle in the package, and the public paths keep working.

``lint-imports`` (run by ``scripts/dev.sh test``) checks that the wings import only
downwards. The circle check here walks the source itself, so that it holds even
where only pytest runs; like the contract, it counts every import, those under
``if TYPE_CHECKING`` and inside functions too.
"""

from __future__ import annotations

import ast
import importlib
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import codedock_magic

PACKAGE = Path(codedock_magic.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    where = ".".join([*base, node.module] if node.module else base)
                else:
                    where = node.module or ""
                # "from . import x": x may be a module of its own.
                targets = [
                    f"{where}.{alias.name}" if f"{where}.{alias.name}" in files else where
                    for alias in node.names
                ]
            graph[name].update(t for t in targets if t in files and t != name)
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    # Tarjan's strongly connected components; a component of two or more is a circle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_walk_sees_type_only_imports() -> None:
    graph = _import_graph()
    assert "codedock_magic.core.result" in graph["codedock_magic.core.request"]  # TYPE_CHECKING
    assert "codedock_magic.engines.cleanup" in graph["codedock_magic.engines.watchdog"]  # in a def
    assert len(graph) > 50


def test_the_package_has_no_import_circle() -> None:
    assert _circles(_import_graph()) == []


def test_a_circle_would_be_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _circles(graph) == [["a", "b", "c"]]


def test_core_imports_nothing_else_of_the_package() -> None:
    graph = _import_graph()
    for name, imported in graph.items():
        if name.startswith("codedock_magic.core"):
            outside = {m for m in imported if not m.startswith("codedock_magic.core")}
            assert outside == set(), name


@pytest.mark.parametrize(
    ("public", "home"),
    [
        ("codedock_magic.errors", "codedock_magic.core.errors"),
        ("codedock_magic.result", "codedock_magic.core.result"),
        ("codedock_magic.limits", "codedock_magic.core.limits"),
        ("codedock_magic.labels", "codedock_magic.engines.labels"),
    ],
)
def test_the_old_public_paths_forward_to_the_same_objects(public: str, home: str) -> None:
    old, new = importlib.import_module(public), importlib.import_module(home)
    for name in new.__all__:
        assert getattr(old, name) is getattr(new, name), name
    assert set(new.__all__) <= set(old.__all__)


def test_every_error_is_found_at_codedock_magic_errors_and_pickles() -> None:
    from codedock_magic import errors
    from codedock_magic.core.result import RunFailedError
    from codedock_magic.grading.check import CheckFailedError

    assert errors.RunFailedError is RunFailedError
    assert errors.CheckFailedError is CheckFailedError
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.CodedockError)
    error = errors.ImageNotFoundError("some/image")
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is errors.ImageNotFoundError and str(again) == str(error)


def test_the_package_face_and_entry_points_import() -> None:
    probe = (
        "import codedock_magic\n"
        "for name in codedock_magic.__all__: getattr(codedock_magic, name)\n"
        "from codedock_magic import check, dock, grade, run\n"
        "import codedock_magic.cli, codedock_magic.service, codedock_magic.jupyter.notebooks\n"
        "print(codedock_magic.__version__)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == codedock_magic.__version__


def test_every_codedock_command_parses_without_the_service_extra() -> None:
    # A plain `pip install codedock-magic` has no SQLAlchemy, Alembic or tornado:
    # the command and each subcommand's help must still work.
    probe = (
        "import sys\n"
        "for name in ('sqlalchemy', 'alembic', 'tornado', 'psycopg'):\n"
        "    sys.modules[name] = None\n"
        "from codedock_magic.cli import main\n"
        "for argv in (['--help'], ['grade', '--help'], ['gradebook', 'export', '--help'],\n"
        "             ['gradebook', 'regrade', '--help'], ['gradebook', 'history', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code == 0, (argv, exc.code)\n"
        "print('parsed')\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.rstrip().endswith("parsed"), out.stderr[-2000:]
