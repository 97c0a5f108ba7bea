#!/usr/bin/env bash
# Build the sandbox image and tag it as the runner's default and as `pybuntu`.
#
# With a registry: `docker build` from the official slim Python base.
# Without one (air-gapped servers, CI here): a Debian root file system made by
# debootstrap from the machine's own apt mirror, imported as the base.
# Nothing is rebuilt when an image built from the same inputs already exists.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
image=${CODEDOCK_IMAGE:-codedock/pybuntu:latest}
legacy=pybuntu:latest
suite=${CODEDOCK_SUITE:-bookworm}
offline_base=codedock/debian-python:$suite

inputs=$(cat "$here/Dockerfile" "$here/build.sh" | sha256sum | cut -c1-16)

have_image() {
    [ "$(docker image inspect -f '{{ index .Config.Labels "io.codedock.inputs" }}' "$1" 2>/dev/null)" = "$inputs" ]
}

if have_image "$image"; then
    docker tag "$image" "$legacy"
    echo "image $image is up to date (inputs $inputs)"
    exit 0
fi

apt_mirror() {
    # The first Debian archive the machine's own apt sources name (not security).
    local uri
    uri=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
        | grep -v security | grep -oE 'https?://[^ ]+' | head -n1 || true)
    echo "${CODEDOCK_MIRROR:-${uri:-http://deb.debian.org/debian}}"
}

build_offline_base() {
    if docker image inspect "$offline_base" >/dev/null 2>&1; then
        return 0
    fi
    if ! command -v debootstrap >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            apt-get install -y -qq debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
        else
            echo "build.sh: the base image cannot be pulled and debootstrap is missing; install it (apt-get install debootstrap) and run this again" >&2
            exit 1
        fi
    fi
    local rootfs mirror
    rootfs=$(mktemp -d)
    trap 'rm -rf "$rootfs"' EXIT
    mirror=$(apt_mirror)
    echo "building the base $offline_base offline with debootstrap from $mirror"
    debootstrap --variant=minbase --include=python3 "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
        || { tail -n 20 "$rootfs.log" >&2; exit 1; }
    rm -f "$rootfs.log"
    # Drop what a sandbox never needs: package caches and docs keep the image small.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc "$rootfs"/usr/share/man
    tar -C "$rootfs" -c . | docker import - "$offline_base" >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
}

build() {
    docker build -q --label "io.codedock.inputs=$inputs" -t "$image" "$@" "$here" >/dev/null
}

if [ -n "${CODEDOCK_BASE:-}" ]; then
    build --build-arg "BASE=$CODEDOCK_BASE"
elif [ "${CODEDOCK_OFFLINE:-}" != 1 ] && build 2>/dev/null; then
    :
else
    build_offline_base
    build --build-arg "BASE=$offline_base"
fi
docker tag "$image" "$legacy"
echo "built $image (also tagged $legacy)"
