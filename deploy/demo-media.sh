#!/usr/bin/env bash
# Builds the demo clip that pipelines/demo.toml reads:
#
#   ${VIGIL_CACHE:-~/.cache/vigil}/media/demo.mkv       Matroska, 79.5 s
#   ${VIGIL_CACHE:-~/.cache/vigil}/media/demo.timings   what is in it, and when
#
# Picture: vtest.avi from Debian's opencv-doc (768x576, 10 fps, 79.5 s,
# pedestrians on a campus walkway seen from above), re-encoded to H.264.
# Sound (48 kHz mono FLAC): quiet brown noise, four phrases spoken by
# espeak-ng at fixed times, one loud 0.3 s noise burst (a clap) at 30.0 s,
# and at 52.0 s five seconds of a real street recording with a siren (and a
# car horn 3.0–3.69 s into it): 2.0–7.0 s of ../shared/media's scaper
# soundscape (BSD-3).
#
# demo.timings has one line per known item, `START END KIND TEXT`, seconds of
# stream time with millisecond precision; lines starting with # are comments.
# Speech is trimmed of espeak's leading and trailing silence, so START/END are
# the edges of the voice itself.
#
# Skips the work when both files exist; delete them (or set
# VIGIL_REBUILD_MEDIA=1) to rebuild. Everything is built in temporary files
# and moved into place at the end, so an interrupted run leaves nothing half
# made. The sound is reproducible (sox -R); the picture is x264's.
set -euo pipefail

# HOME can be missing in a bare CI environment; take it from the passwd entry.
: "${HOME:=$(getent passwd "$(id -u)" | cut -d: -f6)}"
export HOME

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cache="${VIGIL_CACHE:-$HOME/.cache/vigil}"
media="$cache/media"
out="$media/demo.mkv"
timings="$media/demo.timings"

log() { printf 'demo-media: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Bumped whenever the clip's content changes, so that caches rebuild it.
version=2
if [[ "${VIGIL_REBUILD_MEDIA:-0}" != 1 && -s "$out" && -s "$timings" ]] &&
  grep -q "^# vigil demo clip v$version:" "$timings"; then
  log "already built"
  printf '%s\n' "$out"
  exit 0
fi

for tool in gst-launch-1.0 gst-discoverer-1.0 espeak-ng sox soxi; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found; run deploy/setup.sh"
done

mkdir -p "$media"
work="$(mktemp -d "$media/.demo-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# --- picture -----------------------------------------------------------------
doc="/usr/share/doc/opencv-doc/examples/data"
video=""
for candidate in "$doc/vtest.avi" "$repo/../shared/media/vtest.avi"; do
  if [[ -s "$candidate" ]]; then video="$candidate"; break; fi
done
if [[ -z "$video" && -s "$doc/vtest.avi.gz" ]]; then
  gzip -dc "$doc/vtest.avi.gz" >"$work/vtest.avi"
  video="$work/vtest.avi"
fi
[[ -n "$video" ]] || die "vtest.avi not found in $doc (install opencv-doc: deploy/setup.sh)"
video="$(cd "$(dirname "$video")" && pwd)/$(basename "$video")"
log "picture: $video"

# --- sound -------------------------------------------------------------------
rate=48000
total=79.5
# Items placed on the sound track: START KIND TEXT (TEXT is spoken for speech).
items=(
  "4.0|speech|Camera one. Two people are walking across the square."
  "20.0|speech|Is anyone at the front gate?"
  "30.0|loud_sound|clap (0.3 s white-noise burst, peak -1 dBFS)"
  "45.0|speech|Please close the door."
  "52.0|siren|siren, street and a car horn (soundscape_20200501_22050.wav 2.0-7.0 s)"
  "65.0|speech|All clear, end of patrol."
)

soundscape="$repo/../shared/media/soundscape_20200501_22050.wav"

# Background: brown noise, peak -45 dBFS, RMS about -50 dBFS.
sox -R -n -r "$rate" -c 1 -b 16 "$work/bg.wav" synth "$total" brownnoise gain -n -45

mix_inputs=(-v 1 "$work/bg.wav")
lines=()
n=0
for item in "${items[@]}"; do
  IFS='|' read -r start kind text <<<"$item"
  n=$((n + 1))
  clip="$work/item$n.wav"
  case "$kind" in
    speech)
      espeak-ng -v en -s 150 -w "$work/raw$n.wav" "$text"
      # Resample, trim silence at both ends, peak at -6 dBFS.
      sox -R "$work/raw$n.wav" -r "$rate" -c 1 -b 16 "$clip" \
        silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse gain -n -6
      ;;
    loud_sound)
      sox -R -n -r "$rate" -c 1 -b 16 "$clip" synth 0.3 whitenoise gain -n -1
      ;;
    siren)
      [[ -s "$soundscape" ]] || die "$soundscape not found (the shared media folder)"
      sox -R "$soundscape" -r "$rate" -c 1 -b 16 "$clip" trim 2.0 5.0
      ;;
    *) die "unknown item kind $kind" ;;
  esac
  dur="$(soxi -D "$clip")"
  sox -R "$clip" "$work/placed$n.wav" pad "$start"
  mix_inputs+=(-v 1 "$work/placed$n.wav")
  lines+=("$(awk -v s="$start" -v d="$dur" -v k="$kind" -v t="$text" \
    'BEGIN { printf "%.3f %.3f %s %s", s, s + d, k, t }')")
done
# -m mixes; -v 1 on each input keeps levels (sox would otherwise divide by n).
# Items do not overlap, so nothing clips. The background is exactly $total s
# long and the longest input, so the mix is too; trim makes sure.
sox -R -m "${mix_inputs[@]}" -b 16 "$work/sound.wav" trim 0 "$total"
got="$(soxi -D "$work/sound.wav")"
awk -v g="$got" -v t="$total" 'BEGIN { exit !(g - t < 0.001 && t - g < 0.001) }' ||
  die "sound track is $got s, expected $total s"

# --- mux ---------------------------------------------------------------------
log "encoding (H.264 + FLAC into Matroska)"
# blocksize=4000 divides the 3,816,000 samples exactly; with the default 4608
# Matroska's duration comes out as 79.584 s (the last block counted whole).
gst-launch-1.0 -q -e \
  matroskamux name=mux writing-app=vigil-demo-media ! filesink location="$work/demo.mkv" \
  filesrc location="$video" ! decodebin ! queue ! videoconvert ! video/x-raw,format=I420 ! \
    x264enc speed-preset=veryfast pass=quant quantizer=23 key-int-max=50 ! h264parse ! queue ! mux. \
  filesrc location="$work/sound.wav" ! wavparse ! audioconvert ! flacenc blocksize=4000 ! flacparse ! queue ! mux. \
  >"$work/gst.log" 2>&1 || { cat "$work/gst.log" >&2; die "gst-launch-1.0 failed"; }

# --- check -------------------------------------------------------------------
gst-discoverer-1.0 "$work/demo.mkv" >"$work/discover.txt" 2>&1 ||
  { cat "$work/discover.txt" >&2; die "gst-discoverer-1.0 cannot read the clip"; }
grep -q 'video #' "$work/discover.txt" || die "no video stream in the clip"
grep -q 'audio #' "$work/discover.txt" || die "no audio stream in the clip"
duration="$(awk '/Duration:/ { split($2, a, ":"); print a[1] * 3600 + a[2] * 60 + a[3]; exit }' \
  "$work/discover.txt")"
awk -v d="$duration" -v t="$total" 'BEGIN { exit !(d > t - 0.05 && d < t + 0.05) }' ||
  die "clip lasts ${duration:-?} s, expected about $total s"
log "checked: video + audio, ${duration} s"

{
  printf '# vigil demo clip v%s: START END KIND TEXT (seconds of stream time)\n' "$version"
  printf '0.000 %.3f motion pedestrians walking across the campus walkway the whole time (vtest.avi)\n' "$total"
  printf '%s\n' "${lines[@]}"
} >"$work/demo.timings"

mv -f "$work/demo.mkv" "$out"
mv -f "$work/demo.timings" "$timings"
log "timings: $timings"
printf '%s\n' "$out"
