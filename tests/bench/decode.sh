#!/usr/bin/env bash
# Decoding 1080p cameras (issue 17, "decode less"): what each way of
# decoding less costs and gains, measured on GStreamer's own pipeline
# (demuxer, parser, avdec_h264, fakesink) so that only the decoder differs.
# Two clips are made from vtest.avi (upscaled to 1920x1080, 25 fps by
# repeating frames, x264 veryfast at 4 Mb/s, a keyframe every 2 s): I and P
# frames only, as most cameras send, and with two B-frames between them.
# Prints a Markdown section on stdout, the summary line last (prefixed
# `summary: `).
#
#   bash tests/bench/decode.sh VTEST.avi WORKDIR
set -euo pipefail
vtest="$1"
work="$2"
log() { printf 'bench: %s\n' "$*" >&2; }
mkdir -p "$work"

make_clip() { # NAME X264-OPTIONS PROFILE
  local out="$work/$1.mkv"
  [[ -s "$out" ]] && return 0
  gst-launch-1.0 -q -e filesrc location="$vtest" ! decodebin ! videoconvert ! videoscale ! videorate \
    ! video/x-raw,width=1920,height=1080,framerate=25/1,pixel-aspect-ratio=1/1 \
    ! x264enc speed-preset=veryfast bitrate=4000 key-int-max=50 $2 ! "video/x-h264,profile=$3" \
    ! h264parse ! matroskamux ! filesink location="$out.tmp" >&2
  mv "$out.tmp" "$out"
}
make_clip ipp "bframes=0" constrained-baseline
make_clip ibp "bframes=2 b-adapt=false" high

# decode CLIP DECODER-OPTIONS [BEFORE]: "cpu_s wall_s frames" of one decode.
decode() {
  local t="$work/decode.time"
  local frames
  frames="$(/usr/bin/time -o "$t" -f '%U %S %e' gst-launch-1.0 -v filesrc location="$work/$1.mkv" \
    ! matroskademux ! h264parse ${3:-} ! avdec_h264 $2 ! fakesink silent=false 2>&1 |
    grep -c 'fakesink0: last-message = chain' || true)"
  awk -v f="$frames" '{ printf "%.2f %.2f %d\n", $1 + $2, $3, f }' "$t"
}

rows=""
declare -A cpu
for clip in ipp ibp; do
  for way in auto one skip_b keyframes; do
    case "$way" in
      auto) opts="max-threads=0"; before="" ;;
      one) opts="max-threads=1"; before="" ;;
      skip_b) opts="max-threads=1 skip-frame=1"; before="" ;;
      keyframes) opts="max-threads=1"; before="! identity drop-buffer-flags=delta-unit" ;;
    esac
    best=""
    for round in 1 2 3; do
      r="$(decode "$clip" "$opts" "$before")"
      # The least CPU of three (the others were disturbed).
      if [[ -z "$best" ]] || awk -v a="${r%% *}" -v b="${best%% *}" 'BEGIN { exit !(a < b) }'; then
        best="$r"
      fi
    done
    read -r c w f <<<"$best"
    cpu[$clip.$way]="$c"
    # Every frame comes out of the decoder's own way: the clip's length.
    [[ "$way" == auto ]] && secs="$(awk -v f="$f" 'BEGIN { printf "%.1f", f / 25 }')"
    ms="$(awk -v c="$c" -v f="$f" 'BEGIN { printf "%.2f", (f > 0 ? 1000 * c / f : 0) }')"
    per_cam="$(awk -v c="$c" -v s="$secs" 'BEGIN { printf "%.1f", (s > 0 ? 100 * c / s : 0) }')"
    log "decode $clip $way: $c s CPU, $w s, $f frames"
    rows+="| $clip | $way | $f | $c | $w | $ms | $per_cam |"$'\n'
  done
done
one_gain="$(awk -v a="${cpu[ipp.auto]}" -v o="${cpu[ipp.one]}" 'BEGIN { printf "%.0f", 100 * (a - o) / a }')"
skip_gain="$(awk -v o="${cpu[ibp.one]}" -v s="${cpu[ibp.skip_b]}" 'BEGIN { printf "%.0f", 100 * (o - s) / o }')"
key_gain="$(awk -v o="${cpu[ipp.one]}" -v k="${cpu[ipp.keyframes]}" 'BEGIN { printf "%.0f", 100 * (o - k) / o }')"
cat <<EOF
## Decoding 1080p cameras

\`tests/bench/decode.sh\`: two ${secs} s clips of vtest.avi at 1920x1080, 25 fps (frames repeated to reach 25 fps, so the P-frames are cheaper than a real camera's), H.264 by x264 veryfast at 4 Mb/s with a keyframe every 2 s: \`ipp\` (Constrained Baseline, I and P frames, as most cameras send) and \`ibp\` (High, two B-frames between the others). Each decoded by \`gst-launch-1.0 filesrc ! matroskademux ! h264parse ! avdec_h264 ! fakesink\`, the least CPU (user + system) of three runs. Ways: \`auto\` (the decoder's threads, one a core: vigil's default for files), \`one\` (\`max-threads=1\`: vigil's default for cameras, \`decode_threads\`), \`skip_b\` (one thread and \`skip-frame=1\`, GStreamer 1.22's only frame-skipping choice short of skipping everything), \`keyframes\` (one thread, every delta unit dropped before the decoder: keyframes only). "a camera %" is that CPU over the clip's length: what one such camera costs, in % of one core.

| clip | way | frames out | CPU s | wall s | CPU ms a frame | a camera % |
|---|---|---:|---:|---:|---:|---:|
${rows}
One thread instead of the decoder's choice: ${one_gain} % less CPU (I/P clip). \`skip-frame=1\` on the B-frame clip: ${skip_gain} % less CPU, and every frame still comes out: nothing to gain (on I/P streams there is nothing it may skip). Keyframes only: ${key_gain} % less, but one frame in 50: only for an analysis rate at or under the keyframe rate. libav's H.264 decoder has no lower-resolution decoding (\`lowres\` is for MPEG-2 and JPEG).
EOF
echo "summary: decoding 1080p: one thread ${one_gain} % less CPU than the decoder's choice (cameras' default), B-frame skipping ${skip_gain} %, keyframes only ${key_gain} % (one frame in 50)"
