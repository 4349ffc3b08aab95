#!/usr/bin/env bash
# Measures the image deploy/Dockerfile builds, where no container engine
# runs, and runs vigil in it. The runtime stage's root file system is made
# by Debian's mmdebstrap as debian:bookworm-slim is (minbase, merged /usr;
# no manuals, documentation or locales), with the runtime packages
# installed as packages.sh installs them (no recommends), then slim.sh;
# the build stage's layout (layout.sh) is laid in it, once per MODELS
# choice, and `vigil run` reads a picture clip (decoding, motion, objects,
# snapshots) and a speech clip (VAD, sounds, ASR; the full image only)
# inside it, chrooted. Prints a Markdown section. Needs root, mmdebstrap
# and the Debian archive; `make bench` runs it.
#
#   bash deploy/docker/size.sh [BINARY] [CACHE] [MEDIA]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
binary="${1:-target/release/vigil}"
cache="${2:-${VIGIL_CACHE:-$HOME/.cache/vigil}}"
media="${3:-$here/../../../shared/media}"
command -v mmdebstrap >/dev/null || {
  echo "size.sh: needs mmdebstrap (apt-get install mmdebstrap)" >&2
  exit 2
}
work="$(mktemp -d)"
root="$work/root"
cleanup() {
  umount "$root/proc" "$root/dev" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
packages="$(bash "$here/packages.sh" runtime | paste -sd, -)"
mmdebstrap --quiet --variant=minbase \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --aptopt='APT::Install-Recommends "false"' \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --include="$packages" \
  bookworm "$root" http://deb.debian.org/debian >"$work/mmdebstrap.log" 2>&1 || {
  cat "$work/mmdebstrap.log" >&2
  exit 1
}
mib() { du -sm --apparent-size --exclude=./proc --exclude=./dev "$1" | cut -f1; }
before=$(cd "$root" && mib .)
mount --bind /dev "$root/dev"
mount -t proc proc "$root/proc"
cp "$here/slim.sh" "$root/tmp/slim.sh"
chroot "$root" bash /tmp/slim.sh 2>"$work/slim.log"
rm "$root/tmp/slim.sh"
base=$(cd "$root" && mib .)
cp "$media/bikes.mp4" "$media/jfk.wav" "$root/tmp/"
printf '[encoders.motion]\n[encoders.detector]\nfps = 5\n[snapshots]\n[sinks.jsonl]\n' >"$root/tmp/picture.toml"
printf '[encoders.loudness]\n[encoders.vad]\n[encoders.sound]\n[encoders.asr]\n[sinks.jsonl]\n' >"$root/tmp/speech.toml"
run() { # PIPELINE SOURCE: the records line of the run's summary
  chroot "$root" env VIGIL_CACHE=/var/lib/vigil/cache HOME=/tmp \
    vigil run "/tmp/$1" --source "/tmp/$2" --out "/tmp/out-$1" 2>&1 | grep -m1 '^records' || echo "failed"
}
rows=""
for models in core all; do
  VIGIL_IMAGE_MODELS=$models bash "$here/layout.sh" "$work/layout-$models" "$binary" "$cache" 2>/dev/null
  layout=$(cd "$work/layout-$models" && mib .)
  cp -a "$work/layout-$models/." "$root/"
  picture="$(run picture.toml bikes.mp4)"
  if [[ $models == all ]]; then
    speech="$(run speech.toml jfk.wav)"
  else
    said="$(chroot "$root" env VIGIL_CACHE=/var/lib/vigil/cache HOME=/tmp \
      vigil run /tmp/speech.toml --source /tmp/jfk.wav --out /tmp/out-core 2>&1 || true)"
    if grep -q 'MODELS=all' <<<"$said"; then
      speech="refused at the start: the model was left out, build with MODELS=all"
    else
      speech="failed: $said"
    fi
  fi
  rows+="| \`MODELS=$models\` | $base | $layout | **$((base + layout))** | $picture | $speech |"$'\n'
  rm -rf "$root/var/lib/vigil" "$root/usr/local/bin/vigil" "$root/etc/vigil" "$root"/tmp/out-*
done
largest="$(dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Installed-Size}\t${Package}\n' |
  sort -rn | head -8 | awk '{printf "%s %.0f MiB, ", $2, $1/1024}' | sed 's/, $//')"
cat <<MD
## Container image

The image \`deploy/Dockerfile\` builds, measured without a container engine
(\`bash deploy/docker/size.sh\`): the runtime stage's root made by
\`mmdebstrap\` as \`debian:bookworm-slim\` is, with \`packages.sh runtime\`
and \`slim.sh\`; each layout laid in it, and vigil run inside it (chroot).
Sizes in MiB, uncompressed.

| image | root | vigil, ORT, models | total | bikes.mp4: motion, objects, snapshots | jfk.wav: VAD, sounds, ASR |
|---|---|---|---|---|---|
${rows}
The root is ${before} MiB before \`slim.sh\` ($(tail -1 "$work/slim.log" | sed 's/^slim.sh: //')).
Its largest packages now: ${largest}.
MD
