#!/usr/bin/env bash
# Build the sandbox service's image, codedock/service:latest, from a checkout.
#
# The wheels it installs are gathered here first, with this machine's pip and its
# package index or mirror: the package's own, built from the checkout, and its
# dependencies' for the image's Python (CPython 3.11 on this machine's architecture).
# The Docker build then reaches no index and no registry when its base is local:
#   CODEDOCK_BASE=IMAGE   build on that image (it must have python3.11);
#   otherwise codedock/debian-python:bookworm when the engine has it (the offline
#   base `codedock image build --offline` makes), else python:3.11-slim-bookworm.
# CODEDOCK_SERVICE_IMAGE=NAME:TAG names the image differently.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
python=${CODEDOCK_PYTHON:-}
if [ -z "$python" ]; then
    if [ -x "$root/.venv/bin/python" ]; then
        python=$root/.venv/bin/python
    else
        python=python3
    fi
fi
image=${CODEDOCK_SERVICE_IMAGE:-codedock/service:latest}
base=${CODEDOCK_BASE:-}
if [ -z "$base" ]; then
    if docker image inspect codedock/debian-python:bookworm > /dev/null 2>&1; then
        base=codedock/debian-python:bookworm
    else
        base=python:3.11-slim-bookworm
    fi
fi
arch=$(uname -m)

context=$(mktemp -d "${TMPDIR:-/var/tmp}/codedock-service-image.XXXXXX")
trap 'rm -rf "$context"' EXIT
mkdir "$context/wheels"
cp "$root/images/service/Dockerfile" "$context/"

echo "build.sh: building the codedock-magic wheel from $root"
"$python" -m pip wheel -qq --no-deps --wheel-dir "$context/wheels" "$root"
wheel=$(ls "$context"/wheels/codedock_magic-*.whl)
echo "build.sh: gathering its dependencies for CPython 3.11 on $arch"
"$python" -m pip download -qq --dest "$context/wheels" --find-links "$context/wheels" \
    --only-binary=:all: --implementation cp --python-version 3.11 \
    --platform "manylinux_2_36_$arch" --platform "manylinux2014_$arch" \
    "$wheel[service,kubernetes]" pip

echo "build.sh: building $image on $base"
docker build --pull=false --build-arg "BASE=$base" \
    --label "io.codedock.image=service" \
    --label "io.codedock.version=$(basename "$wheel" | cut -d- -f2)" \
    --tag "$image" "$context"
echo "build.sh: built $image"
