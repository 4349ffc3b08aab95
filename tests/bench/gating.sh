#!/usr/bin/env bash
# Quiet-camera benchmark (issue 17): vigil's detector with motion gating and
# without, against the plain Python loop (OpenCV decode + the same NanoDet
# on onnxruntime, every analysed frame), paired in one run, on a clip made
# from vtest.avi (tests/bench/gating.py: the emptied walkway held still,
# with four 10 s visits; 190 s, 79 % still), then the peak RSS of 1, 4 and
# 16 streams of that clip at once. Prints a Markdown section on
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
model="$cache/models/nanodet.onnx"
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
# vigil's peers: gating on (motion) and off, with the default int8 model
# and with the float one (f32-…), the loop's.
peers="loop motion off f32-motion f32-off"
for round in 1 2 3; do
  for who in $peers; do
    t="$work/$who.time"
    if [[ "$who" == loop ]]; then
      /usr/bin/time -v -o "$t" "$py" "$repo/tests/bench/gating.py" loop "$clip" "$model" 2 >"$work/loop.frames"
    else
      gating=motion precision=int8
      [[ "$who" == *off ]] && gating=off
      [[ "$who" == f32-* ]] && precision=f32
      printf '[encoders.detector]\nfps = 5\ngating = "%s"\nprecision = "%s"\n[sinks.jsonl]\n' "$gating" "$precision" >"$work/$who.toml"
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
for who in $peers; do
  m="$(median "${walls[$who]}")"
  speed="$(awk -v l="$loop_wall" -v v="$m" 'BEGIN { printf "%.2f", l / v }')"
  declare "speed_${who//-/_}=$speed"
  rows+="| $who | $m | $speed | ${f1[$who]} | ${rss[$who]} |"$'\n'
done
frames="$(grep -c . "$work/loop.frames")"

# A busy camera: vtest.avi itself (people in view nearly all the time),
# gating on and off against the loop's presence on it (the same model,
# every analysed frame), and the person tracks each made.
"$py" "$repo/tests/bench/gating.py" loop "$vtest" "$model" 2 >"$work/vtest-loop.frames"
vtest_seconds="$(awk 'END { printf "%.1f", NR / 5 }' "$work/vtest-loop.frames")"
busy_rows=""
declare -A busy_f1 busy_tracks
for who in motion off; do
  rm -rf "$work/vtest-$who"
  "$vigil" run "$work/$who.toml" --source "$vtest" --out "$work/vtest-$who" >/dev/null 2>&1
  "$py" "$repo/tests/bench/gating.py" tracks "$work/vtest-$who/events.jsonl" "$vtest_seconds" >"$work/vtest-$who.frames"
  busy_f1[$who]="$("$py" "$repo/tests/bench/gating.py" agree "$work/vtest-loop.frames" "$work/vtest-$who.frames" | cut -d' ' -f1)"
  busy_tracks[$who]="$("$py" "$repo/tests/bench/gating.py" count "$work/vtest-$who/events.jsonl")"
  log "gating vtest.avi: $who F1 ${busy_f1[$who]}, ${busy_tracks[$who]} person tracks"
  busy_rows+="| $who | ${busy_f1[$who]} | ${busy_tracks[$who]} |"$'\n'
done
busy_verdict="$(awk -v fm="${busy_f1[motion]}" -v fo="${busy_f1[off]}" -v tm="${busy_tracks[motion]}" -v to="${busy_tracks[off]}" \
  'function abs(x) { return x < 0 ? -x : x } BEGIN { print (abs(fm - fo) <= 0.05 * fo && abs(tm - to) <= 0.05 * to) ? "**PASS**" : "**FAIL**" }')"

# Memory: N streams of the quiet clip at once (files: each as fast as the
# machine goes, so every queue is full), the detector's defaults (gating
# on), peak RSS for N = 1, 4, 16 and the line a + b·N through them.
abs_clip="$(realpath "$clip")"
mem_rows=""
points=""
for n in 1 4 16; do
  toml="$work/mem-$n.toml"
  : >"$toml"
  for i in $(seq 1 "$n"); do
    printf '[[sources]]\nname = "cam%d"\nuri = "file://%s"\n' "$i" "$abs_clip" >>"$toml"
  done
  printf '[encoders.detector]\nfps = 5\n[sinks.jsonl]\n' >>"$toml"
  rm -rf "$work/out-mem-$n"
  t="$work/mem-$n.time"
  /usr/bin/time -v -o "$t" "$vigil" run "$toml" --out "$work/out-mem-$n" >/dev/null 2>&1
  r="$(awk -F': ' '/Maximum resident set size/ { printf "%.0f", $2 / 1024 }' "$t")"
  w="$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$t")"
  log "gating memory: $n streams: $r MiB, $w s"
  mem_rows+="| $n | $r | $w |"$'\n'
  points+="$n $r"$'\n'
done
read -r mem_a mem_b < <(awk 'NF == 2 { n++; sx += $1; sy += $2; sxx += $1 * $1; sxy += $1 * $2 }
  END { b = (n * sxy - sx * sy) / (n * sxx - sx * sx); printf "%.0f %.1f\n", (sy - b * sx) / n, b }' <<<"$points")
verdict="$(awk -v m="$speed_motion" -v o="$speed_off" -v fm="${f1[motion]}" -v fl="${f1[loop]}" \
  'BEGIN { print (m >= 3 && o >= 1.2 && fm >= fl - 0.01) ? "**PASS**" : "**FAIL**" }')"
f32_verdict="$(awk -v m="$speed_f32_motion" -v o="$speed_f32_off" -v fm="${f1[f32-motion]}" -v fl="${f1[loop]}" \
  'BEGIN { print (m >= 3 && o >= 1.2 && fm >= fl - 0.01) ? "**PASS**" : "**FAIL**" }')"
int8_ratio="$(awk -v f="$speed_f32_off" -v i="$speed_off" 'BEGIN { printf "%.2f", i / f }')"
mem_verdict="$(awk -v one="${rss[motion]}" -v loop="${rss[loop]}" -v b="$mem_b" \
  'BEGIN { print (one <= loop && b <= 40) ? "**PASS**" : "**FAIL**" }')"
cat <<EOF
## Quiet camera: motion-gated detection

\`tests/bench/gating.sh\`: a ${seconds} s clip made from vtest.avi by \`tests/bench/gating.py\` (the walkway emptied by a per-pixel median of its frames, held still for 30 s, then 10 s of the real footage, four times, ending still: 79 % still; MJPEG, 768x576, 10 fps), ${frames} frames analysed at 5 fps. Peers, paired in one run, three rounds (median wall, highest RSS): the plain Python loop (OpenCV decodes every frame, every second one letterboxed into the same \`nanodet.onnx\` on onnxruntime, 2 threads; a person present when a cell's person score reaches 0.4), and \`vigil run\` with only \`[encoders.detector] fps = 5\`, \`gating = "motion"\` or \`"off"\`, and \`precision = "int8"\` (the default) or \`"f32"\` (\`f32-…\`: the loop's model). Presence F1: per analysed frame, a person present (the loop: that frame's scores; vigil: a person track's \`object\` event covers it) against the clip's truth (people in view exactly during the visits). Targets: gating ≥ 3 × the loop's speed at F1 no more than 0.01 below the loop's; gating off ≥ 1.2 ×.

| who | wall s | × the loop's speed | presence F1 | peak RSS MiB |
|---|---:|---:|---:|---:|
${rows}
With the defaults (int8): ${verdict}. With \`precision = "f32"\`: ${f32_verdict}. Gating off, int8 makes the whole run (decoding included) ${int8_ratio} × as fast as f32.

The busy walkway, vtest.avi itself (${vtest_seconds} s, people in view nearly all the time): person presence per analysed frame against the loop's on the same file (the same model looking at every analysed frame), and the person tracks vigil made. Target: gating's F1 and track count within 5 % of gating off's: ${busy_verdict}.

| vigil | presence F1 against the loop | person tracks |
|---|---:|---:|
${busy_rows}
Memory: N streams of the clip at once (\`[[sources]]\` cam1 … camN on the same file, \`[encoders.detector] fps = 5\`, every other setting the default), peak RSS (\`/usr/bin/time -v\`). Targets: one detector stream (\`motion\` above: ${rss[motion]} MiB) at or under the loop's (${rss[loop]} MiB); RSS = a + b·N with b ≤ 40 MiB. Least squares through the three: a = ${mem_a} MiB, b = ${mem_b} MiB a stream: ${mem_verdict}.

| streams | peak RSS MiB | wall s |
|---:|---:|---:|
${mem_rows}
EOF
echo "summary: quiet camera (gating ${speed_motion} x the Python loop's speed, off ${speed_off} x; presence F1 ${f1[motion]} / ${f1[off]} / loop ${f1[loop]}): $verdict; with f32 (gating ${speed_f32_motion} x, off ${speed_f32_off} x; F1 ${f1[f32-motion]} / ${f1[f32-off]}): $f32_verdict; busy walkway (F1 ${busy_f1[motion]} gated / ${busy_f1[off]} off, person tracks ${busy_tracks[motion]} / ${busy_tracks[off]}): $busy_verdict; memory (one stream ${rss[motion]} MiB against the loop's ${rss[loop]}, ${mem_b} MiB a further stream): $mem_verdict"
