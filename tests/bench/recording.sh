#!/usr/bin/env bash
# Recording's cost (issue 19): the same pipeline on the same H.264 + AAC
# file with and without [recording] (every moment in a clip: people walk
# the whole time, so the motion event, and its clip, lasts the file),
# paired in rounds. CPU seconds (user + system) and peak RSS from
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
base='[encoders.motion]
[encoders.loudness]
[sinks.jsonl]
'
printf '%s' "$base" >"$work/off.toml"
printf '%s[recording]\nkinds = ["motion"]\n' "$base" >"$work/on.toml"
declare -A cpu rss
diffs=""
for round in $(seq 1 "$rounds"); do
  for who in off on; do
    rm -rf "$work/out-$who"
    /usr/bin/time -f '%U %S %M' -o "$work/$who.time" \
      "$vigil" run "$work/$who.toml" --source "$src" --out "$work/out-$who" >/dev/null 2>&1
    read -r u s m <"$work/$who.time"
    cpu[$who]+="$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }') "
    rss[$who]="$(( ${rss[$who]:-0} > m / 1024 ? ${rss[$who]:-0} : m / 1024 ))"
    log "recording round $round: $who $(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }') s CPU, $((m / 1024)) MiB"
  done
  # This round's pair: on less off.
  diffs+="$(awk -v a="$(awk '{ print $NF }' <<<"${cpu[on]}")" -v b="$(awk '{ print $NF }' <<<"${cpu[off]}")" 'BEGIN { printf "%.2f", a - b }') "
done
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
off="$(median "${cpu[off]}")"
on="$(median "${cpu[on]}")"
# The median of the paired differences: the machine's drift touches both
# runs of a pair alike.
diff="$(median "$diffs")"
share="$(awk -v d="$diff" -v b="$off" 'BEGIN { printf "%.1f", 100 * d / b }')"
clips="$(find "$work/out-on/clips" -type f | wc -l)"
clip_mib="$(du -sm "$work/out-on/clips" | cut -f1)"
verdict="$(awk -v s="$share" 'BEGIN { print (s < 5) ? "**PASS**" : "**FAIL**" }')"
cat <<SECTION
## Recording: what clips cost

\`bash tests/bench/recording.sh VTEST.avi bench-out/recording\`, $(date -u '+%Y-%m-%d'), on the machine above.
vtest.avi made 1280x720 H.264 (x264 veryfast, a keyframe every 2 s) with
AAC sound, 79.5 s; \`vigil run\` with motion and loudness, without and with
\`[recording] kinds = ["motion"]\` (people walk the whole time: one event,
one clip of the whole file, $clips file(s), $clip_mib MiB), $rounds rounds,
the two in turn; medians of CPU seconds (user + system), highest peak RSS,
and the median of each round's difference (with less without: the drift
of the machine touches both runs of a round alike). Target: recording
under 5 % of the pipeline's CPU.

| run | CPU s (median) | peak RSS MiB |
|---|---|---|
| without recording | $off | ${rss[off]} |
| with recording | $on | ${rss[on]} |
| difference, median of the rounds' | $diff | |

Recording costs $share % of the pipeline's CPU: $verdict. A file's clips
come from a second reading of the file (demuxed and parsed, never
decoded); a live camera's from the packets its own parser gives, tapped
and copied by reference, so this is the dearer case.

SECTION
echo "summary: recording (every moment in a clip, 720p H.264 + AAC, motion and loudness): $share % more CPU than without (target < 5 %): $verdict; peak RSS ${rss[off]} → ${rss[on]} MiB"
