#!/usr/bin/env bash
# Make sure a Docker engine answers. When none does and we are root on Debian or
# Ubuntu, install Debian's docker.io if needed and start dockerd with no bridge and
# no NAT, so that no container can reach any network. An engine that already
# answers (a laptop's Docker, a DOCKER_HOST) is used as it is.
#
# As root on Debian or Ubuntu, with the engine on this machine, it also installs
# Debian's gVisor (runsc) and registers it with dockerd as the runtime "runsc"
# (ptrace platform, gVisor's own network off: kvm hangs on nested machines), and
# has a running dockerd reload its configuration (SIGHUP: running containers go
# on, nothing restarts). CODEDOCK_NO_RUNSC=1 skips that.
set -euo pipefail

log=${CODEDOCK_DOCKERD_LOG:-/var/log/codedock-dockerd.log}
daemon_json=${CODEDOCK_DAEMON_JSON:-/etc/docker/daemon.json}

answers() { docker version >/dev/null 2>&1; }
has_runsc() { docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"'; }
may_add_runsc() {
    [ "${CODEDOCK_NO_RUNSC:-0}" != 1 ] && [ -z "${DOCKER_HOST:-}" ] && [ "$(id -u)" = 0 ] &&
        command -v apt-get >/dev/null 2>&1
}

# Install runsc and add it to daemon.json, keeping every other setting there.
add_runsc() {
    if ! command -v runsc >/dev/null 2>&1; then
        echo "installing Debian's runsc (gVisor)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq runsc >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq runsc >/dev/null; }
    fi
    mkdir -p "$(dirname "$daemon_json")"
    python3 -c '
import json, os, sys

path, runsc = sys.argv[1], sys.argv[2]
config = {}
if os.path.exists(path):
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    config = json.loads(text) if text.strip() else {}
config.setdefault("runtimes", {})["runsc"] = {
    "path": runsc,
    "runtimeArgs": ["--platform=ptrace", "--network=none"],
}
with open(path + ".new", "w", encoding="utf-8") as handle:
    json.dump(config, handle, indent=2)
    handle.write("\n")
os.replace(path + ".new", path)
' "$daemon_json" "$(command -v runsc)"
}

if command -v docker >/dev/null 2>&1 && answers; then
    if ! has_runsc && may_add_runsc; then
        add_runsc
        pid=$(cat /var/run/docker.pid 2>/dev/null || true)
        if [ -n "$pid" ] && kill -HUP "$pid" 2>/dev/null; then
            for _ in $(seq 40); do
                has_runsc && break
                sleep 0.25
            done
        fi
        if has_runsc; then
            echo "registered runsc (gVisor) with dockerd"
        else
            echo "engine.sh: runsc is in $daemon_json but dockerd has not taken it up; reload it (kill -HUP its pid) to run sandboxes under gVisor" >&2
        fi
    fi
    exit 0
fi
if [ -n "${DOCKER_HOST:-}" ]; then
    echo "engine.sh: no Docker engine answered at DOCKER_HOST=$DOCKER_HOST; start it or unset DOCKER_HOST" >&2
    exit 1
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "engine.sh: no Docker engine answered at unix:///var/run/docker.sock; start Docker (e.g. sudo systemctl start docker) and add yourself to the docker group, or run this as root on Debian/Ubuntu to install and start one" >&2
    exit 1
fi
if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    echo "installing Debian's docker.io"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq docker.io >/dev/null
fi
if may_add_runsc; then
    add_runsc
fi
echo "starting dockerd (no bridge, no iptables), log in $log"
mkdir -p "$(dirname "$log")"
# The engine outlives this script, so it keeps none of the caller's other
# descriptors: a lock taken with flock(1) around it would be held for its life.
(
    for fd in $(ls "/proc/$BASHPID/fd"); do
        if [ "$fd" -gt 2 ]; then
            eval "exec $fd>&-"
        fi
    done
    exec setsid nohup dockerd --bridge=none --iptables=false --ip6tables=false >>"$log" 2>&1 < /dev/null
) &
for _ in $(seq 120); do
    if answers; then
        exit 0
    fi
    sleep 0.5
done
echo "engine.sh: dockerd did not answer within 60 s; its log $log ends with:" >&2
tail -n 20 "$log" >&2
exit 1
