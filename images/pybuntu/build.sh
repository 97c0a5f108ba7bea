#!/usr/bin/env bash
# Build the sandbox images from a checkout: codedock/pybuntu (also tagged
# `pybuntu`), then codedock/pybuntu-sci (CODEDOCK_SCI=0 skips it).
#
# A thin caller of `codedock image build`, which builds them from the files the
# package ships (codedock_magic/data/images/pybuntu), so there is one way to build.
# CODEDOCK_OFFLINE=1 skips the registry; CODEDOCK_BASE=IMAGE builds on that base;
# CODEDOCK_MIRROR=URL is the Debian mirror of an offline base.
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
args=(image build)
if [ "${CODEDOCK_SCI:-1}" != 0 ]; then
    args+=(--sci)
fi
if [ "${CODEDOCK_OFFLINE:-}" = 1 ]; then
    args+=(--offline)
fi
if [ -n "${CODEDOCK_BASE:-}" ]; then
    args+=(--base "$CODEDOCK_BASE")
fi
if ! PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" "$python" -c 'import docker' 2>/dev/null; then
    echo "build.sh: $python cannot import docker-py; install the package first (pip install -e .)" >&2
    exit 1
fi
PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" exec "$python" -m codedock_magic "${args[@]}"
