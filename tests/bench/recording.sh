#!/usr/bin/env bash
# Recording's cost (issue 19): the same pipeline on four H.264 + AAC
# cameras at once (four names of one file) with and without [recording]
# (every moment in a clip: people walk the whole time, so each camera's
# motion event, and its clip, lasts the file), paired in rounds. CPU seconds (user + system) and peak RSS from
# /usr/bin/time. Target: recording costs under 5 % of the pipeline's CPU.
# Prints a Markdown section on stdout, the summary line last (prefixed
# `summary: `).
#
#   bash tests/bench/recording.sh VTEST.avi WORKDIR
#
# A file's clips are read again from the file (a second demuxer, no
# decoder); a live camera's come from its packets, tapped after the
# parser it has anyway, so this is the dearer of the two.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
vtest="$1"
work="$2"
vigil="$repo/target/release/vigil"
rounds="${BENCH_REPEAT:-9}"
log() { printf 'bench: %s\n' "$*" >&2; }
mkdir -p "$work"
src="$work/walkway-720p.mp4"
if [[ ! -s "$src" ]]; then
  log "recording: making $src (vtest.avi at 1280x720, H.264 + AAC)"
  gst-launch-1.0 -q -e mp4mux name=m ! filesink location="$src.tmp" \
    filesrc location="$vtest" ! decodebin ! videoconvert ! videoscale ! \
      video/x-raw,width=1280,height=720 ! x264enc speed-preset=veryfast key-int-max=20 ! \
      h264parse ! queue ! m. \
    audiotestsrc num-buffers=3726 samplesperbuffer=1024 wave=pink-noise volume=0.1 ! \
      audio/x-raw,rate=48000,channels=1 ! avenc_aac ! queue ! m. >&2
  mv "$src.tmp" "$src"
fi
cams=()
for n in 1 2 3 4; do
  ln -f "$src" "$work/cam$n.mp4"
  cams+=(--source "$work/cam$n.mp4")
done
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
rows=""
summary=""
# Measures pipeline NAME (its encoders in ENCODERS) over ROUNDS paired
# rounds: a table row each for without and with, and the verdict.
measure() { # NAME ROUNDS ENCODERS
  local name="$1" n="$2" base="$3 
[sinks.jsonl]
"
  printf '%s' "$base" >"$work/$name-off.toml"
  printf '%s[recording]\nkinds = ["motion"]\n' "$base" >"$work/$name-on.toml"
  local -A cpu=() rss=()
  local diffs="" round who u s m
  for round in $(seq 1 "$n"); do
    for who in off on; do
      rm -rf "$work/out-$who"
      /usr/bin/time -f '%U %S %M' -o "$work/$who.time" \
        "$vigil" run "$work/$name-$who.toml" "${cams[@]}" --out "$work/out-$who" >/dev/null 2>&1
      read -r u s m <"$work/$who.time"
      cpu[$who]+="$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }') "
      rss[$who]="$(( ${rss[$who]:-0} > m / 1024 ? ${rss[$who]:-0} : m / 1024 ))"
      log "recording, $name, round $round: $who $(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }') s CPU, $((m / 1024)) MiB"
    done
    # This round's pair: with less without.
    diffs+="$(awk -v a="$(awk '{ print $NF }' <<<"${cpu[on]}")" -v b="$(awk '{ print $NF }' <<<"${cpu[off]}")" 'BEGIN { printf "%.2f", a - b }') "
  done
  local off on diff share verdict
  off="$(median "${cpu[off]}")"
  on="$(median "${cpu[on]}")"
  # The median of the paired differences: the machine's drift touches
  # both runs of a pair alike.
  diff="$(median "$diffs")"
  share="$(awk -v d="$diff" -v b="$off" 'BEGIN { printf "%.1f", 100 * d / b }')"
  verdict="$(awk -v s="$share" 'BEGIN { print (s < 5) ? "**PASS**" : "**FAIL**" }')"
  rows+="| $name | $n | $off | $on | $diff | $share % $verdict | ${rss[off]} → ${rss[on]} |"$'\n'
  summary+="$name $share % ($verdict), "
}
measure "motion and loudness" "$rounds" '[encoders.motion]
[encoders.loudness]'
measure "motion, loudness and the detector (5 fps)" "${BENCH_DETECTOR_REPEAT:-3}" '[encoders.motion]
[encoders.loudness]
[encoders.detector]
fps = 5'
clips="$(find "$work/out-on/clips" -type f | wc -l)"
clip_mib="$(du -sm "$work/out-on/clips" | cut -f1)"
cat <<SECTION
## Recording: what clips cost

\`bash tests/bench/recording.sh VTEST.avi bench-out/recording\`, $(date -u '+%Y-%m-%d'), on the machine above.
vtest.avi made 1280x720 H.264 (x264 veryfast, a keyframe every 2 s) with
AAC sound, 79.5 s, as four cameras at once (four names of one file);
\`vigil run\` without and with \`[recording] kinds = ["motion"]\` (people
walk the whole time: one event and one clip of the whole file a camera,
$clips files, $clip_mib MiB), the two in turn in each round; medians of
CPU seconds (user + system), the median of each round's difference (with
less without: the drift of the machine touches both runs of a round
alike), highest peak RSS. Target: recording under 5 % of the pipeline's
CPU.

| pipeline | rounds | CPU s without | CPU s with | difference (median of rounds) | share | peak RSS MiB |
|---|---|---|---|---|---|---|
$rows
A file's clips come from a second reading of the file (demuxed and
parsed, never decoded) and a muxer writing each clip; a live camera's
come from the packets its own parser gives, tapped and copied by
reference (no second demuxer), so a file is the dearer case.

SECTION
echo "summary: recording (4 cameras of 720p H.264 + AAC, every moment in a clip): ${summary%, } of the pipeline's CPU (target < 5 %)"
