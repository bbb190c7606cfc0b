#!/usr/bin/env bash
# Makes (or reuses) a local Debian 12 minbase root filesystem tarball that the
# container test imports as debian:bookworm-slim, so that the Dockerfile builds
# without any container registry (see /work/shared/docs/containers.md).
#
# Usage: container_base.sh  -> prints the path of the cached tarball.
#
# The Debian mirror is read at run time from the host's apt sources; it is
# never written into a file of this repository. The tarball is cached under
# $NNSERVE_CONTAINER_CACHE (default /var/tmp/nnserve-container-cache), keyed
# by the host's apt sources, and rebuilt when older than 7 days. Needs root.
set -euo pipefail

log() { echo "[container_base] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap needs it); uid is $(id -u)"
command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"

cache_dir=${NNSERVE_CONTAINER_CACHE:-/var/tmp/nnserve-container-cache}
sources=/etc/apt/sources.list.d/debian.sources

# The host's Debian mirror: the first URIs: line of the deb822 sources file,
# or the first "deb URL bookworm" line of a classic sources.list.
mirror=""
if [ -f "$sources" ]; then
  mirror=$(awk '/^URIs:/ {print $2; exit}' "$sources")
elif [ -f /etc/apt/sources.list ]; then
  mirror=$(awk '$1 == "deb" && $3 ~ /^bookworm/ {print $2; exit}' /etc/apt/sources.list)
fi
[ -n "$mirror" ] || die "no Debian mirror found in $sources (URIs: line) or /etc/apt/sources.list"

key=$( { cat "$sources" /etc/apt/sources.list 2>/dev/null || true; } | sha256sum | cut -c1-12)
tarball="$cache_dir/bookworm-minbase-$key.tar"

if [ -f "$tarball" ] && [ -n "$(find "$tarball" -mtime -7 2>/dev/null)" ]; then
  log "reusing cached base $tarball"
  echo "$tarball"
  exit 0
fi

mkdir -p "$cache_dir"
work=$(mktemp -d "$cache_dir/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"

log "debootstrap --variant=minbase bookworm from the host's mirror (1-2 min)"
start=$(date +%s)
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed (log above)"; }

# Make it behave like the official slim image: the host's apt sources (with
# their security suite), no package lists, no cached .debs, and no docs, man
# pages or locales installed by later apt-get runs.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
if [ -f "$sources" ]; then
  cp "$sources" "$rootfs/etc/apt/sources.list.d/debian.sources"
  rm -f "$rootfs/etc/apt/sources.list"
else
  cp /etc/apt/sources.list "$rootfs/etc/apt/sources.list"
fi
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
CFG
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
find "$rootfs/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/*

tar -C "$rootfs" --numeric-owner -cf "$work/base.tar" .
mv "$work/base.tar" "$tarball"
# Older cache generations (other mirrors) are stale.
find "$cache_dir" -maxdepth 1 -name 'bookworm-minbase-*.tar' ! -path "$tarball" -delete
log "base ready in $(( $(date +%s) - start ))s: $tarball ($(du -h "$tarball" | cut -f1))"
echo "$tarball"
