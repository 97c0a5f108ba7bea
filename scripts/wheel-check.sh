#!/usr/bin/env bash
# Prove that the wheel works on its own, as a user who only runs pip gets it:
#   - build the wheel and the sdist, and check their metadata (twine check);
#   - check that the wheel holds the image files and the hub fragment, and the sdist
#     what the README's two commands need;
#   - install the wheel (not editable) into a fresh virtualenv, and from a folder with
#     no checkout on the path: codedock image build, codedock doctor, codedock demo,
#     and one headless notebook with %%sandbox.
# Usage: bash scripts/wheel-check.sh [PYTHON]   (PYTHON has build and twine; see dev.sh)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
python=${1:-python3}
checkout=$(pwd)
work=$(mktemp -d)
# On a failure, keep what the user would see (the notebook, the logs) for a look.
trap 'status=$?; if [ $status != 0 ]; then mkdir -p "$checkout/test-artifacts"; rm -rf "$checkout/test-artifacts/wheel-check"; cp -r "$work/elsewhere" "$checkout/test-artifacts/wheel-check" 2>/dev/null || true; fi; rm -rf "$work"' EXIT
dist=$work/dist

echo "wheel: building the wheel and the sdist"
if ! "$python" -m build --outdir "$dist" . >"$work/build.log" 2>&1; then
    tail -n 30 "$work/build.log" >&2
    exit 1
fi
"$python" -m twine check --strict "$dist"/*
"$python" - "$dist" <<'EOF'
import sys, tarfile, zipfile
from pathlib import Path

dist = Path(sys.argv[1])
(wheel,) = dist.glob("*.whl")
(sdist,) = dist.glob("*.tar.gz")
in_wheel = set(zipfile.ZipFile(wheel).namelist())
with tarfile.open(sdist) as archive:
    in_sdist = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
wanted = {
    wheel: (in_wheel, [
        "codedock_magic/data/images/pybuntu/Dockerfile",
        "codedock_magic/data/images/pybuntu/Dockerfile.sci",
        "codedock_magic/data/images/pybuntu/codedock_mplcache.py",
        "codedock_magic/data/jupyterhub_config.py",
        "codedock_magic/supervisor/program.py",
        "codedock_magic/gradebook/migrations/env.py",
        "codedock_magic/gradebook/migrations/versions/r0001_attempts.py",
        "codedock_magic/py.typed",
    ]),
    sdist: (in_sdist, [
        "README.md",
        "pyproject.toml",
        "scripts/dev.sh",
        "scripts/engine.sh",
        "scripts/wheel-check.sh",
        "images/pybuntu/build.sh",
        "images/service/build.sh",
        "images/service/Dockerfile",
        "codedock_magic/data/images/pybuntu/Dockerfile",
        "codedock_magic/data/jupyterhub_config.py",
        "jupyter-config/ipython_kernel_config.json",
        "notebooks/demo.ipynb",
        "notebooks/teaching.ipynb",
        "deploy/kubernetes/kustomization.yaml",
        "deploy/z2jh/values.yaml",
        "tests/conftest.py",
        "benchmarks/bench.py",
        ".ci/run",
    ]),
}
missing = [f"{path.name}: {name}" for path, (names, needed) in wanted.items()
           for name in needed if name not in names]
if missing:
    sys.exit("wheel: missing from the archives:\n  " + "\n  ".join(missing))
print(f"wheel: {wheel.name} and {sdist.name} hold what they must")
EOF

echo "wheel: installing it into a fresh virtualenv"
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check "$dist"/*.whl
mkdir "$work/elsewhere"
cd "$work/elsewhere"
# Nothing of the checkout on the path: the package must come from the wheel.
export PATH="$work/venv/bin:$PATH"
unset PYTHONPATH VIRTUAL_ENV PYTHONSTARTUP JUPYTER_PATH JUPYTER_CONFIG_DIR JUPYTER_DATA_DIR IPYTHONDIR
where=$(python -c 'import codedock_magic, pathlib; print(pathlib.Path(codedock_magic.__file__).resolve().parent)')
case "$where" in
    "$work"/venv/*) echo "wheel: the package comes from $where" ;;
    *) echo "wheel: the package came from $where, not from the wheel" >&2; exit 1 ;;
esac
[ "$(codedock hub-config)" = "$where/data/jupyterhub_config.py" ]
codedock hub-config --print | grep -q 'access:services!service=codedock'

# --offline: build from the wheel's own files even when current images exist (the
# engine's layer cache keeps that quick), on the base made from the Debian mirror,
# with no registry asked.
codedock image build --sci --offline
version=$(python -c 'import codedock_magic; print(codedock_magic.__version__)')
codedock image list | tee image-list.txt
for image in codedock/pybuntu:latest codedock/pybuntu-sci:latest; do
    grep -Eq "^$image +.* built for $version +current\$" image-list.txt ||
        { echo "wheel: codedock image list does not show $image current for $version" >&2; exit 1; }
done
codedock doctor
codedock demo | tee demo.txt
for outcome in "^ok .*hello from the sandbox" "^ok .*hello, Ada" "^error \(exit 3\)" \
    "^timeout after 1s" "^memory limit \(100m\) exceeded" "dock.Docker.run\(\) -> 0 .* -> 10\$"; do
    grep -Eq "$outcome" demo.txt || { echo "wheel: the demo did not show /$outcome/" >&2; exit 1; }
done

python - <<'EOF'
import nbformat

notebook = nbformat.v4.new_notebook()
notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
notebook.cells = [
    nbformat.v4.new_code_cell("%load_ext codedock_magic"),
    nbformat.v4.new_code_cell("%%sandbox --timeout 10 --mem 100m\nprint(6 * 7)"),
    nbformat.v4.new_code_cell("import codedock_magic\nprint(codedock_magic.__file__)"),
]
nbformat.write(notebook, "wheel.ipynb")
EOF
python -m codedock_magic.jupyter.notebooks wheel.ipynb --save-to done
python - "$work/venv" <<'EOF'
import sys
import nbformat

notebook = nbformat.read("done/wheel.ipynb", as_version=4)
outputs = notebook.cells[1].outputs
runs = [o["metadata"]["codedock"] for o in outputs if "codedock" in o.get("metadata", {})]
assert [run["status"] for run in runs] == ["ok"], runs
shown = "".join(o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in outputs)
assert "42" in shown, outputs
where = "".join(o.get("text", "") for o in notebook.cells[2].outputs)
assert where.startswith(sys.argv[1]), where
print("wheel: the notebook's %%sandbox cell ran ok in a kernel of the wheel's virtualenv")
EOF
cd "$checkout"
echo "wheel: ok"
