#!/usr/bin/env bash
# One entry point for developers and CI:
#   bash scripts/dev.sh demo    set everything up, then run the demo snippets and demo.ipynb
#   bash scripts/dev.sh test    set everything up, then lint, type-check and test (then the
#                               kernel tests on ipykernel 6, and the gVisor tier)
#   bash scripts/dev.sh setup   only set up: virtualenv, Docker engine, sandbox image
#   bash scripts/dev.sh bench   set everything up, then print the benchmark table
#   bash scripts/dev.sh wheel   build the wheel and sdist, then prove the wheel alone works
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv=${CODEDOCK_VENV:-.venv}
# The suite runs on the ipykernel users get from pip (7); the tests that meet a
# kernel also run on ipykernel 6, in a virtualenv of their own.
venv6=${CODEDOCK_VENV6:-.venv-ipykernel6}
python=${PYTHON:-python3}
KERNEL_TESTS=(
    tests/integration/test_magic.py
    tests/integration/test_kernel_lifecycle.py
    tests/integration/test_notebooks.py
    tests/integration/test_autoload_kernel.py
    tests/integration/test_service_kernel.py
)
# The hardening and adversarial tests, again under gVisor (runsc), as a tier of
# their own: each states what holds under either runtime.
GVISOR_TESTS=(
    tests/integration/test_hardening.py
    tests/integration/test_limits_enforced.py
    tests/integration/test_isolation.py
    tests/integration/test_warm_fresh.py
)

# make_venv DIR [EXTRA PIP REQUIREMENTS...]: the package and its test tools in DIR.
make_venv() {
    local dir=$1
    shift
    local stamp="$dir/.installed"
    if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then
        return 0
    fi
    if ! "$python" -m venv "$dir" >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
            "$python" -m venv "$dir"
        else
            echo "dev.sh: '$python -m venv' failed; install python3-venv" >&2
            exit 1
        fi
    fi
    "$dir/bin/python" -m pip install -q --disable-pip-version-check -U pip
    "$dir/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]' "$@"
    touch "$stamp"
}

setup_venv() {
    make_venv "$venv" 'ipykernel>=7'
}

setup_browser() {
    # The browser tests drive Debian's Chromium; Playwright never downloads one.
    if [ -x /usr/bin/chromium ] || [ -n "${CODEDOCK_CHROMIUM:-}" ]; then
        return 0
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing Debian's chromium for the browser tests"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
    else
        echo "dev.sh: no /usr/bin/chromium; the browser tests will skip (install chromium to run them)" >&2
    fi
}

# The hub tests: a real JupyterHub with configurable-http-proxy from npm, system
# users made here, and their servers in a world-readable virtualenv built from
# Debian's python3 (the default python3 may live under /root, which they cannot
# enter). All of it under $hub_dir, outside the checkout, which may be unreadable
# to them too.
hub_dir=${CODEDOCK_HUB_DIR:-/opt/codedock-test}
HUB_USERS=(cdk-alice cdk-bob cdk-teach)

setup_hub() {
    if [ "$(id -u)" != 0 ]; then
        echo "dev.sh: the hub tests need root (system users); they will skip" >&2
        return 0
    fi
    mkdir -p "$hub_dir"
    if ! command -v npm >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null 2>&1 ||
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
    fi
    if [ ! -x "$hub_dir/node_modules/.bin/configurable-http-proxy" ]; then
        echo "installing configurable-http-proxy from npm into $hub_dir"
        npm install --prefix "$hub_dir" --no-audit --no-fund --loglevel=error configurable-http-proxy@5 >/dev/null
    fi
    local users_venv="$hub_dir/user-venv" hub_version
    hub_version=$("$venv/bin/python" -c 'import jupyterhub; print(jupyterhub.__version__)')
    if [ ! -f "$users_venv/.installed-$hub_version" ]; then
        rm -rf "$users_venv"
        /usr/bin/python3 -m venv "$users_venv"
        "$users_venv/bin/python" -m pip install -q --disable-pip-version-check -U pip
        "$users_venv/bin/python" -m pip install -q --disable-pip-version-check \
            "jupyterhub==$hub_version" jupyter_server 'ipykernel>=7' .
        touch "$users_venv/.installed-$hub_version"
    else
        # The package itself, as this checkout has it now.
        "$users_venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --force-reinstall .
    fi
    chmod -R a+rX "$hub_dir"
    for user in "${HUB_USERS[@]}"; do
        id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"
    done
}

# The gradebook's tests against a real PostgreSQL server: Debian's postgresql, a
# cluster of our own under $pg_dir (outside $hub_dir, which is made world-readable,
# and a data folder must not be) listening on 127.0.0.1 only, a role that may
# create databases (each test makes its own) and its URL in $pg_dir/url (0600).
pg_dir=${CODEDOCK_PG_DIR:-/opt/codedock-postgres}
pg_port=${CODEDOCK_PG_PORT:-55432}

setup_postgres() {
    if [ "$(id -u)" != 0 ]; then
        echo "dev.sh: the PostgreSQL tests need root (a cluster run as postgres); they will skip" >&2
        return 0
    fi
    local bin
    bin=$(find /usr/lib/postgresql -maxdepth 2 -name bin 2>/dev/null | sort -V | tail -1)
    if [ -z "$bin" ]; then
        echo "installing Debian's postgresql for the gradebook tests"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq postgresql >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; }
        bin=$(find /usr/lib/postgresql -maxdepth 2 -name bin | sort -V | tail -1)
    fi
    local data="$pg_dir/data" run="$pg_dir/run" pg=(runuser -u postgres --)
    mkdir -p "$pg_dir" "$data" "$run"
    chmod 755 "$pg_dir"
    chown postgres: "$data" "$run"
    chmod 700 "$data"
    if [ ! -f "$data/PG_VERSION" ]; then
        "${pg[@]}" "$bin/initdb" -D "$data" -U postgres --auth-local=peer --auth-host=scram-sha-256 >/dev/null
    fi
    if ! "${pg[@]}" "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        # The server outlives this script, so it must not keep the caller's
        # descriptors: a lock taken with flock(1) around this script would be
        # held for as long as the server runs.
        (
            for fd in $(ls "/proc/$BASHPID/fd"); do
                if [ "$fd" -gt 2 ]; then
                    eval "exec $fd>&-"
                fi
            done
            exec "${pg[@]}" "$bin/pg_ctl" -D "$data" -l "$run/server.log" -w \
                -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $run" start >/dev/null
        )
    fi
    if [ ! -s "$pg_dir/url" ]; then
        local password verb=CREATE
        password=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
        local psql=("${pg[@]}" "$bin/psql" -h "$run" -p "$pg_port" -q -v ON_ERROR_STOP=1 -d postgres)
        if [ "$("${psql[@]}" -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'codedock'")" = 1 ]; then
            verb=ALTER
        fi
        "${psql[@]}" -c "$verb ROLE codedock LOGIN CREATEDB PASSWORD '$password'"
        if [ "$("${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = 'codedock_test'")" != 1 ]; then
            "${psql[@]}" -c "CREATE DATABASE codedock_test OWNER codedock"
        fi
        (umask 077 && echo "postgresql://codedock:$password@127.0.0.1:$pg_port/codedock_test" >"$pg_dir/url")
    fi
}

gvisor_tier() {
    if ! docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"'; then
        if [ "${CI:-}" = true ]; then
            echo "dev.sh: CI=true and dockerd has no runsc runtime for the gVisor tier (scripts/engine.sh registers it as root)" >&2
            exit 1
        fi
        echo "dev.sh: dockerd has no runsc runtime; the gVisor tier does not run (run scripts/engine.sh as root to register it)" >&2
        return 0
    fi
    echo "the hardening and adversarial tests, again under gVisor (runsc)"
    CODEDOCK_ENGINE_OPTIONS='{"runtime": "runsc"}' "$venv/bin/python" -m pytest "${GVISOR_TESTS[@]}"
}

setup() {
    setup_venv
    bash scripts/engine.sh
    # The base from the machine's own Debian mirror, never a registry: these
    # scripts send nothing anywhere else (CODEDOCK_OFFLINE=0 tries Docker Hub first).
    CODEDOCK_OFFLINE=${CODEDOCK_OFFLINE:-1} bash images/pybuntu/build.sh
}

case "${1:-}" in
    setup)
        setup
        ;;
    demo)
        setup
        "$venv/bin/codedock" demo
        "$venv/bin/python" -m codedock_magic.jupyter.notebooks notebooks/demo.ipynb
        ;;
    test)
        setup
        setup_browser
        setup_hub
        setup_postgres
        shift
        "$venv/bin/ruff" check .
        "$venv/bin/ruff" format --check .
        "$venv/bin/mypy"
        # The wings import only downwards (the contracts in pyproject.toml).
        "$venv/bin/lint-imports"
        "$venv/bin/python" -m pytest "$@"
        if [ $# -eq 0 ]; then
            make_venv "$venv6" 'ipykernel>=6.29,<7'
            echo "the tests that meet a kernel, again on $("$venv6/bin/python" -c 'import ipykernel; print("ipykernel", ipykernel.__version__)')"
            "$venv6/bin/python" -m pytest "${KERNEL_TESTS[@]}"
            gvisor_tier
        fi
        ;;
    wheel)
        setup_venv
        bash scripts/engine.sh
        bash scripts/wheel-check.sh "$venv/bin/python"
        ;;
    bench)
        setup
        "$venv/bin/python" benchmarks/bench.py
        "$venv/bin/python" benchmarks/service_bench.py
        "$venv/bin/python" benchmarks/grading_bench.py
        "$venv/bin/python" benchmarks/runtime_bench.py
        ;;
    *)
        echo "usage: bash scripts/dev.sh setup|demo|test [pytest args]|bench|wheel" >&2
        exit 2
        ;;
esac
