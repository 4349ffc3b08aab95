#!/usr/bin/env bash
# Removes from the runtime stage what its packages bring but vigil never
# loads, after packages.sh installed them (deploy/Dockerfile runs it; so
# does size.sh, in the root file system it measures):
#
# - Mesa's GL drivers and the LLVM and Z3 they need (about 160 MiB):
#   GStreamer's GL and GTK plugins link libGL, which loads a driver only
#   when a GL context is made; vigil makes none.
# - GTK's icons and themes (about 45 MiB): the GTK plugins link GTK, whose
#   data is read only when a window is shown.
#
# Every package removed is one nothing links: the script checks that each
# library and GStreamer plugin left still finds all of its libraries, and
# fails otherwise.
#
#   bash deploy/docker/slim.sh
set -euo pipefail
unused=(
  libgl1-mesa-dri
  libllvm15
  libz3-4
  adwaita-icon-theme
  libgtk-3-common
  hicolor-icon-theme
)
installed=()
for p in "${unused[@]}"; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    installed+=("$p")
  fi
done
if ((${#installed[@]})); then
  dpkg --purge --force-depends "${installed[@]}" >/dev/null
fi
# Nothing left may miss a library.
missing=0
while IFS= read -r -d '' f; do
  if ldd "$f" 2>/dev/null | grep -q "not found"; then
    echo "slim.sh: $f misses $(ldd "$f" | grep 'not found' | awk '{print $1}' | paste -sd' ' -)" >&2
    missing=1
  fi
done < <(find /usr/lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/gstreamer-1.0 -maxdepth 1 -name '*.so*' -type f -print0)
if ((missing)); then
  echo "slim.sh: a package removed is one something links: keep it" >&2
  exit 1
fi
echo "slim.sh: removed ${installed[*]:-nothing}" >&2
