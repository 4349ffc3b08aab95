#!/usr/bin/env bash
# Quiet-camera benchmark (issue 17): vigil's detector with motion gating and
# without, against the plain Python loop (OpenCV decode + the same NanoDet
# on onnxruntime, every analysed frame), paired in one run, on a clip made
# from vtest.avi (tests/bench/gating.py: the emptied walkway held still,
# with four 10 s visits; 190 s, 79 % still). Prints a Markdown section on
# stdout, the summary line last (prefixed `summary: `).
#
#   bash tests/bench/gating.sh VTEST.avi WORKDIR
#
# The loop's Python environment (opencv-python-headless, onnxruntime,
# numpy, from PyPI) is made once in $VIGIL_CACHE/bench-venv.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
vtest="$1"
work="$2"
cache="${VIGIL_CACHE:-$HOME/.cache/vigil}"
vigil="$repo/target/release/vigil"
model="$cache/models/nanodet_416.onnx"
venv="$cache/bench-venv"
log() { printf 'bench: %s\n' "$*" >&2; }

if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import cv2, onnxruntime' 2>/dev/null; then
  log "gating: making $venv (opencv-python-headless, onnxruntime, numpy from PyPI)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q opencv-python-headless==5.1.0.95 onnxruntime==1.31.1 numpy==2.4.6 >&2
fi
py="$venv/bin/python"
mkdir -p "$work"
clip="$work/quiet.avi"
[[ -s "$clip" ]] || "$py" "$repo/tests/bench/gating.py" clip "$vtest" "$clip"
truth="$work/quiet.truth.txt"
seconds="$(wc -l <"$truth")"

rows=""
declare -A walls rss f1
for round in 1 2 3; do
  for who in loop motion off; do
    t="$work/$who.time"
    if [[ "$who" == loop ]]; then
      /usr/bin/time -v -o "$t" "$py" "$repo/tests/bench/gating.py" loop "$clip" "$model" 2 >"$work/loop.frames"
    else
      printf '[encoders.detector]\nfps = 5\ngating = "%s"\n[sinks.jsonl]\n' "$who" >"$work/$who.toml"
      rm -rf "$work/out-$who"
      /usr/bin/time -v -o "$t" "$vigil" run "$work/$who.toml" --source "$clip" --out "$work/out-$who" >/dev/null 2>&1
      "$py" "$repo/tests/bench/gating.py" tracks "$work/out-$who/events.jsonl" "$seconds" >"$work/$who.frames"
    fi
    w="$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$t")"
    r="$(awk -F': ' '/Maximum resident set size/ { printf "%.0f", $2 / 1024 }' "$t")"
    walls[$who]+="$w "
    rss[$who]="$(( ${rss[$who]:-0} > r ? ${rss[$who]:-0} : r ))"
    f1[$who]="$("$py" "$repo/tests/bench/gating.py" score "$truth" "$work/$who.frames" | cut -d' ' -f1)"
    log "gating round $round: $who $w s, $r MiB, F1 ${f1[$who]}"
  done
done
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
loop_wall="$(median "${walls[loop]}")"
for who in loop motion off; do
  m="$(median "${walls[$who]}")"
  speed="$(awk -v l="$loop_wall" -v v="$m" 'BEGIN { printf "%.2f", l / v }')"
  declare "speed_$who=$speed"
  rows+="| $who | $m | $speed | ${f1[$who]} | ${rss[$who]} |"$'\n'
done
frames="$(grep -c . "$work/loop.frames")"
verdict="$(awk -v m="$speed_motion" -v o="$speed_off" -v fm="${f1[motion]}" -v fl="${f1[loop]}" \
  'BEGIN { print (m >= 3 && o >= 1.2 && fm >= fl - 0.01) ? "**PASS**" : "**FAIL**" }')"
cat <<EOF
## Quiet camera: motion-gated detection

\`tests/bench/gating.sh\`: a ${seconds} s clip made from vtest.avi by \`tests/bench/gating.py\` (the walkway emptied by a per-pixel median of its frames, held still for 30 s, then 10 s of the real footage, four times, ending still: 79 % still; MJPEG, 768x576, 10 fps), ${frames} frames analysed at 5 fps. Peers, paired in one run, three rounds (median wall, highest RSS): the plain Python loop (OpenCV decodes every frame, every second one letterboxed into the same \`nanodet_416.onnx\` on onnxruntime, 2 threads; a person present when a cell's person score reaches 0.4), and \`vigil run\` with only \`[encoders.detector] fps = 5\` and \`gating = "motion"\` or \`"off"\`. Presence F1: per analysed frame, a person present (the loop: that frame's scores; vigil: a person track's \`object\` event covers it) against the clip's truth (people in view exactly during the visits). Targets: gating ≥ 3 × the loop's speed at F1 no more than 0.01 below the loop's; gating off ≥ 1.2 ×.

| who | wall s | × the loop's speed | presence F1 | peak RSS MiB |
|---|---:|---:|---:|---:|
${rows}
EOF
echo "summary: quiet camera (gating ${speed_motion} x the Python loop's speed, off ${speed_off} x; presence F1 ${f1[motion]} / ${f1[off]} / loop ${f1[loop]}): $verdict"
