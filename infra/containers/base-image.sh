#!/usr/bin/env bash
# The base image every image of docker-compose.yml builds FROM, made here from Debian's packages with debootstrap,
# for machines that reach no image registry (a Docker user pulls debian:bookworm-slim instead).
# Usage: base-image.sh TAG   (does nothing when TAG exists; needs root, debootstrap and podman)
set -euo pipefail
tag=${1:?usage: base-image.sh TAG}

if podman image exists "$tag"; then
  exit 0
fi
command -v debootstrap >/dev/null || { echo "ERROR: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }

rootfs=$(mktemp -d /var/tmp/kafka-sync-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "==> building the base image $tag with debootstrap (minbase bookworm; about a minute)"
# Debootstrap's default mirror; DEBIAN_MIRROR picks another.
debootstrap --variant=minbase bookworm "$rootfs" ${DEBIAN_MIRROR:+"$DEBIAN_MIRROR"} >/dev/null

# Apt sources as debian:bookworm-slim has them (the release, its updates and security), from the same mirror.
mirror=$(awk '$1 == "deb" { print $2; exit }' "$rootfs/etc/apt/sources.list")
rm -f "$rootfs/etc/apt/sources.list"
cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $mirror-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
# Like the slim image: no package lists or downloaded .debs in the base, no docs beyond copyright.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
tar -C "$rootfs" --numeric-owner -c . | podman import --change 'CMD ["/bin/bash"]' - "$tag" >/dev/null
echo "==> $tag: $(podman image inspect --format '{{.Size}}' "$tag" | awk '{ printf "%.0f MB", $1 / 1e6 }')"
