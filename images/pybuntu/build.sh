#!/usr/bin/env bash
# Build the sandbox image and tag it as the runner's default and as `pybuntu`,
# then codedock/pybuntu-sci: the same with numpy, matplotlib and pandas from
# Debian's packages (CODEDOCK_SCI=0 skips it).
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

sci_image=${CODEDOCK_SCI_IMAGE:-codedock/pybuntu-sci:latest}
offline_sci_base=codedock/debian-python-sci:$suite
sci_packages=python3,python3-numpy,python3-matplotlib,python3-pandas

inputs=$(cat "$here/Dockerfile" "$here/build.sh" | sha256sum | cut -c1-16)
sci_inputs=$(cat "$here/Dockerfile.sci" "$here/codedock_mplcache.py" "$here/build.sh" | sha256sum | cut -c1-16)

have_image() {
    [ "$(docker image inspect -f '{{ index .Config.Labels "io.codedock.inputs" }}' "$1" 2>/dev/null)" = "${2:-$inputs}" ]
}

apt_mirror() {
    # The first Debian archive the machine's own apt sources name (not security).
    local uri
    uri=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
        | grep -v security | grep -oE 'https?://[^ ]+' | head -n1 || true)
    echo "${CODEDOCK_MIRROR:-${uri:-http://deb.debian.org/debian}}"
}

build_offline_base() {
    # build_offline_base IMAGE PACKAGES: a Debian root file system with PACKAGES,
    # made by debootstrap from the machine's apt mirror, imported as IMAGE.
    local base=$1 packages=$2
    if docker image inspect "$base" >/dev/null 2>&1; then
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
    echo "building the base $base offline with debootstrap from $mirror"
    debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
        || { tail -n 20 "$rootfs.log" >&2; exit 1; }
    rm -f "$rootfs.log"
    # Drop what a sandbox never needs: package caches and docs keep the image small.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc "$rootfs"/usr/share/man
    tar -C "$rootfs" -c . | docker import - "$base" >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
}

build() {
    # build IMAGE INPUTS DOCKERFILE [BUILD ARGS...]
    local target=$1 label=$2 file=$3
    shift 3
    docker build -q --label "io.codedock.inputs=$label" -t "$target" -f "$here/$file" "$@" "$here" >/dev/null
}

if have_image "$image"; then
    echo "image $image is up to date (inputs $inputs)"
elif [ -n "${CODEDOCK_BASE:-}" ]; then
    build "$image" "$inputs" Dockerfile --build-arg "BASE=$CODEDOCK_BASE"
elif [ "${CODEDOCK_OFFLINE:-}" != 1 ] && build "$image" "$inputs" Dockerfile 2>/dev/null; then
    echo "built $image"
else
    build_offline_base "$offline_base" python3
    build "$image" "$inputs" Dockerfile --build-arg "BASE=$offline_base"
    echo "built $image"
fi
docker tag "$image" "$legacy"
echo "tagged $image as $legacy"

if [ "${CODEDOCK_SCI:-1}" = 0 ]; then
    exit 0
fi
if have_image "$sci_image" "$sci_inputs"; then
    echo "image $sci_image is up to date (inputs $sci_inputs)"
elif [ "${CODEDOCK_OFFLINE:-}" != 1 ] && build "$sci_image" "$sci_inputs" Dockerfile.sci 2>/dev/null; then
    echo "built $sci_image"
else
    build_offline_base "$offline_sci_base" "$sci_packages"
    build "$sci_image" "$sci_inputs" Dockerfile.sci --build-arg "BASE=$offline_sci_base" --build-arg INSTALL=
    echo "built $sci_image"
fi
