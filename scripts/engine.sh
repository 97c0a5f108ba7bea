#!/usr/bin/env bash
# Make sure a Docker engine answers. When none does and we are root on Debian or
# Ubuntu, install Debian's docker.io if needed and start dockerd with no bridge and
# no NAT, so that no container can reach any network. An engine that already
# answers (a laptop's Docker, a DOCKER_HOST) is used as it is.
set -euo pipefail

log=${CODEDOCK_DOCKERD_LOG:-/var/log/codedock-dockerd.log}

answers() { docker version >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && answers; then
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
echo "starting dockerd (no bridge, no iptables), log in $log"
mkdir -p "$(dirname "$log")"
setsid nohup dockerd --bridge=none --iptables=false --ip6tables=false >>"$log" 2>&1 < /dev/null &
for _ in $(seq 120); do
    if answers; then
        exit 0
    fi
    sleep 0.5
done
echo "engine.sh: dockerd did not answer within 60 s; its log $log ends with:" >&2
tail -n 20 "$log" >&2
exit 1
