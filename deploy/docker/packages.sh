#!/usr/bin/env bash
# The Debian packages of each stage of deploy/Dockerfile, one list each, so
# that the image and the check outside a container (tests/it/deploy.rs)
# read the same lists.
#
#   bash deploy/docker/packages.sh build|runtime          print the list
#   bash deploy/docker/packages.sh install build|runtime  apt-get install it
#   bash deploy/docker/packages.sh check runtime          fail unless installed
set -euo pipefail

build=(
  ca-certificates
  pkg-config
  build-essential
  libgstreamer1.0-dev
  libgstreamer-plugins-base1.0-dev
  python3
  python3-venv
  python3-pip
)
# GStreamer's runtime plugins only (no -dev, no tools): decoding,
# RTSP/HTTP/SRT sources, TLS for them; curl for the HEALTHCHECK.
runtime=(
  ca-certificates
  curl
  libgstreamer1.0-0
  libgstreamer-plugins-base1.0-0
  gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly
  gstreamer1.0-libav
  glib-networking
)

list() {
  case "$1" in
    build) printf '%s\n' "${build[@]}" ;;
    runtime) printf '%s\n' "${runtime[@]}" ;;
    *) echo "packages.sh: build or runtime, not $1" >&2; exit 2 ;;
  esac
}

case "${1:-}" in
  build|runtime) list "$1" ;;
  install)
    mapfile -t wanted < <(list "${2:?build or runtime}")
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${wanted[@]}"
    rm -rf /var/lib/apt/lists/*
    ;;
  check)
    mapfile -t wanted < <(list "${2:?build or runtime}")
    missing=()
    for p in "${wanted[@]}"; do
      dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
      echo "packages.sh: not installed: ${missing[*]}" >&2
      exit 1
    fi
    echo "packages.sh: all ${#wanted[@]} $2 packages installed"
    ;;
  *) echo "usage: packages.sh build|runtime | install build|runtime | check build|runtime" >&2; exit 2 ;;
esac
