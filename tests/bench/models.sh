#!/usr/bin/env bash
# Model benchmarks for make bench: prints a Markdown section on stdout (run.sh
# puts it in BENCHMARKS.md); progress goes to stderr.
#
# - the detector (NanoDet, at 416 and 320) inside vigil against a bare ONNX Runtime loop
#   over the same model, input size and thread count (examples/ort_loop.rs),
#   at 1 and 2 threads; target: vigil >= 0.95 × the bare loop;
# - fusion: time per chunk, and the whole pipeline with a scene (line,
#   zone, rules, snapshots) against without (target >= 0.95 x real time);
# - the whole pipeline (motion, loudness, vad, faces, detector at 5 fps,
#   sound) on the demo clip (vtest.avi with a sound track), × real time;
# - Silero VAD per stream, one stream (batch 1) and 8 streams batched;
#   target >= 100 × real time per stream at batch 1;
# - YAMNet × real time on one core (one intra-op thread);
# - peak RSS of each run.
#
# Each vigil run is repeated BENCH_MODEL_REPEAT times (default 3); medians.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
: "${HOME:=$(getent passwd "$(id -u)" | cut -d: -f6)}"
export HOME
export VIGIL_CACHE="${VIGIL_CACHE:-$HOME/.cache/vigil}"
repeat="${BENCH_MODEL_REPEAT:-3}"
vigil="./target/release/vigil"
loop="./target/release/examples/ort_loop"
work="$repo/bench-out/models"
media="$repo/../shared/media"
mkdir -p "$work"

log() { printf 'bench-models: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
[[ -x "$vigil" && -x "$loop" && -x ./target/release/examples/asr_bench ]] ||
  die "build first: cargo build --release --examples"
[[ -s "$VIGIL_CACHE/media/demo.mkv" ]] || die "no demo clip: run make setup"

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# vigil_run NAME PIPELINE -> sets r_wall (median s), r_rss (max MiB), r_frames,
# r_media (s, of all streams), from `repeat` runs.
vigil_run() {
  local name="$1" pipeline="$2" i t0 t1
  rm -f "$work/$name.walls" "$work/$name.rss"
  for ((i = 1; i <= repeat; i++)); do
    rm -rf "$work/$name.out"
    t0="$(date +%s%N)"
    /usr/bin/time -v -o "$work/$name.time" "$vigil" run "$pipeline" --out "$work/$name.out" \
      >"$work/$name.log" 2>&1 || { tail -20 "$work/$name.log" >&2; die "$name failed"; }
    t1="$(date +%s%N)"
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", (b - a) / 1e9 }' >>"$work/$name.walls"
    awk -F': ' '/Maximum resident set size/ { printf "%.0f\n", $2 / 1024 }' "$work/$name.time" >>"$work/$name.rss"
  done
  r_wall="$(median <"$work/$name.walls")"
  r_rss="$(sort -g "$work/$name.rss" | tail -1)"
  # The summary line: "streams N (…) · chunks C · frames F · audio A s · media M s"
  r_frames="$(sed -n 's/.*· frames \([0-9]*\) ·.*/\1/p' "$work/$name.log" | tail -1)"
  r_media="$(sed -n 's/.*· media \([0-9.]*\) s.*/\1/p' "$work/$name.log" | tail -1)"
  # "stage time: encode S s (MS ms a chunk) · fuse S s (MS ms a chunk)"
  r_encode_ms="$(sed -n 's/.*encode [0-9.]* s (\([0-9.]*\) ms a chunk).*/\1/p' "$work/$name.log" | tail -1)"
  r_fuse_ms="$(sed -n 's/.*fuse [0-9.]* s (\([0-9.]*\) ms a chunk).*/\1/p' "$work/$name.log" | tail -1)"
  log "$name: median $r_wall s, peak RSS $r_rss MiB, frames $r_frames, media $r_media s"
}

# bare MODEL THREADS RUNS [spin] -> b_rate (runs per second, median)
bare() {
  local i
  rm -f "$work/bare.rates"
  for ((i = 1; i <= repeat; i++)); do
    "$loop" "$@" | awk '{ print $5 }' >>"$work/bare.rates"
  done
  b_rate="$(median <"$work/bare.rates")"
  log "bare $1 at $2 threads: $b_rate runs/s"
}

pipeline() { # NAME -> path; the TOML comes on stdin
  cat >"$work/$1.toml"
  printf '%s' "$work/$1.toml"
}

div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

# --- detector inside vigil against the bare loop ------------------------------
det_rows=""
for run in "1 f32 nanodet 416" "2 f32 nanodet 416" "1 int8 nanodet_int8 416" "2 int8 nanodet_int8 416" \
  "1 int8 nanodet_int8 320" "2 int8 nanodet_int8 320"; do
  read -r threads precision model side <<<"$run"
  name="detector-$precision-$side-t$threads"
  p="$(pipeline "$name" <<TOML
[[sources]]
name = "walk"
uri = "$media/vtest.avi"
fps = 5
[encoders.detector]
fps = 5
gating = "off"
precision = "$precision"
input = $side
[runtime]
threads = $threads
[sinks.jsonl]
path = "events.jsonl"
TOML
)"
  bare "$model@$side" "$threads" 200 spin
  spin_rate=$b_rate
  bare "$model@$side" "$threads" 200
  vigil_run "$name" "$p"
  fps="$(div "$r_frames" "$r_wall")"
  ratio="$(div "$fps" "$b_rate")"
  spin_ratio="$(div "$fps" "$spin_rate")"
  verdict="$(awk -v r="$ratio" 'BEGIN { print (r >= 0.95) ? "PASS" : "FAIL" }')"
  det_rows+="| $precision | $side | $threads | $b_rate | $spin_rate | $r_frames frames in $r_wall s = $fps | $ratio (**$verdict**) | $spin_ratio | $r_rss |"$'\n'
done

# --- the whole pipeline on the demo clip ----------------------------------------
p="$(pipeline whole <<TOML
[[sources]]
name = "walkway"
uri = "$VIGIL_CACHE/media/demo.mkv"
fps = 5
[encoders.motion]
[encoders.loudness]
[encoders.vad]
[encoders.faces]
[encoders.detector]
fps = 5
[encoders.sound]
[sinks.jsonl]
path = "events.jsonl"
TOML
)"
vigil_run whole "$p"
whole_xrt="$(div "$r_media" "$r_wall")"
whole_row="| demo.mkv (79.5 s, 768x576 at 10 fps, sound) | $r_wall | $whole_xrt | $r_rss |"
fuse_rows="| tracks and captions | $r_encode_ms | $r_fuse_ms | $whole_xrt | |"$'\n'

# --- the same with a scene: line, zone, rules, snapshots ------------------------
p="$(pipeline scene <<TOML
$(cat "$work/whole.toml")
[[lines]]
name = "across"
from = [0.45, 0.2]
to = [0.45, 0.75]
[[zones]]
name = "crossing"
polygon = [[0.55, 0.3], [1.0, 0.3], [1.0, 0.6], [0.55, 0.6]]
[[rules]]
name = "siren_near_people"
when = "sound(siren) and object(person)"
[[rules]]
name = "crowd_then_loud"
when = "object(person, zone=crossing, min_count=2) then loud()"
within = "10s"
[snapshots]
TOML
)"
vigil_run scene "$p"
scene_xrt="$(div "$r_media" "$r_wall")"
scene_ratio="$(div "$scene_xrt" "$whole_xrt")"
scene_verdict="$(awk -v r="$scene_ratio" 'BEGIN { print (r >= 0.95) ? "PASS" : "FAIL" }')"
fuse_rows+="| + a line, a zone, two rules, snapshots | $r_encode_ms | $r_fuse_ms | $scene_xrt | $scene_ratio (target ≥ 0.95: **$scene_verdict**) |"$'\n'

# --- VAD: one stream, and eight batched ---------------------------------------
# 5 minutes of a phone call (sample.wav ten times), so that starting up
# (about 0.1 s) does not weigh.
call="$work/call-300s.wav"
[[ -s "$call" ]] || sox "$media/sample.wav" "$media/sample.wav" "$media/sample.wav" "$media/sample.wav" \
  "$media/sample.wav" "$media/sample.wav" "$media/sample.wav" "$media/sample.wav" \
  "$media/sample.wav" "$media/sample.wav" "$call"
vad_pipeline() { # NAME STREAMS
  local k text=""
  for ((k = 1; k <= $2; k++)); do
    text+=$'[[sources]]\n'"name = \"call$k\""$'\n'"uri = \"$call\""$'\n'
  done
  text+=$'[encoders.vad]\nbatch = { max_batch = 8, max_wait = "0s" }\n[runtime]\nthreads = 1\n[sinks.jsonl]\npath = "events.jsonl"\n'
  printf '%s' "$text" | pipeline "$1"
}
bare silero_vad 1 2000
vad_bare="$(awk -v r="$b_rate" 'BEGIN { printf "%.0f", r * 0.032 }')"
vigil_run vad-1 "$(vad_pipeline vad-1 1)"
vad1="$(awk -v m="$r_media" -v w="$r_wall" 'BEGIN { printf "%.0f", m / w }')"
vad1_rss=$r_rss
vigil_run vad-8 "$(vad_pipeline vad-8 8)"
vad8="$(awk -v m="$r_media" -v w="$r_wall" 'BEGIN { printf "%.0f", m / w / 8 }')"
vad8_total="$(awk -v m="$r_media" -v w="$r_wall" 'BEGIN { printf "%.0f", m / w }')"
vad8_rss=$r_rss
vad_verdict="$(awk -v r="$vad1" 'BEGIN { print (r >= 100) ? "PASS" : "FAIL" }')"

# --- YAMNet on one core -------------------------------------------------------
bare yamnet 1 300
yam_bare="$(awk -v r="$b_rate" 'BEGIN { printf "%.0f", r * 0.48 }')"
p="$(pipeline sound-t1 <<TOML
[[sources]]
name = "call"
uri = "$call"
[encoders.sound]
[runtime]
threads = 1
[sinks.jsonl]
path = "events.jsonl"
TOML
)"
vigil_run sound-t1 "$p"
yam="$(div "$r_media" "$r_wall")"

# --- speech to text -------------------------------------------------------------
asr_out="$("./target/release/examples/asr_bench" "$media/sample.wav" 2)" || die "asr_bench failed"
log "$asr_out"
asr_speed="$(awk '/^speed/ { print $2 }' <<<"$asr_out")"
# "latency hop MS mean S worst S: TEXT"
asr_lat1="$(awk '/^latency hop 1000 / { print $5 }' <<<"$asr_out")"
asr_worst1="$(awk '/^latency hop 1000 / { sub(":", "", $7); print $7 }' <<<"$asr_out")"
asr_lat05="$(awk '/^latency hop 500 / { print $5 }' <<<"$asr_out")"
asr_worst05="$(awk '/^latency hop 500 / { sub(":", "", $7); print $7 }' <<<"$asr_out")"
asr_speed_verdict="$(awk -v r="$asr_speed" 'BEGIN { print (r >= 5) ? "PASS" : "FAIL" }')"
asr_lat1_verdict="$(awk -v r="$asr_lat1" 'BEGIN { print (r <= 1.5) ? "PASS" : "FAIL" }')"
asr_lat05_verdict="$(awk -v r="$asr_lat05" 'BEGIN { print (r <= 1.5) ? "PASS" : "FAIL" }')"

cat <<EOF
## Models

\`tests/bench/models.sh\`: vigil runs ($repeat each, median wall time,
highest peak RSS) on \`../shared/media\` files and the demo clip, against
\`examples/ort_loop.rs\`, a bare ONNX Runtime loop over the same model file,
input size and intra-op thread count. Pipelines as run are in
\`bench-out/models/*.toml\`.

### Detector (NanoDet) inside vigil against the bare loop

vtest.avi (79.5 s) at 5 frames/s, detector only, every frame whole
(\`gating = "off"\`), with the float model and the int8 one (\`precision\`),
at the model's own input side (416) and at 320 (\`input\`, what
\`detector_input = 320\` gives a near camera).
vigil's figure includes
decoding, letterboxing, decoding the boxes, events and the log, and model
loading at start.

The bare loop runs with vigil's session settings (intra-op threads that
do not spin) and, for reference, with ONNX Runtime's default (spinning);
the wall time of vigil includes starting up (about 0.2 s).

| model | input side | intra-op threads | bare loop frames/s | bare, spinning | vigil frames/s | vigil / bare (target ≥ 0.95) | vigil / bare spinning | vigil peak RSS MiB |
|---|---:|---:|---:|---:|---|---:|---:|---:|
${det_rows}
MODELS.md measured NanoDet alone at 16.7 frames/s (1 thread) and 18.7 (2).

### Whole pipeline

motion, loudness, VAD, faces, detector at 5 frames/s, sound events; all
threads of the machine.

| input | wall s | × real time | peak RSS MiB |
|---|---:|---:|---:|
${whole_row}

### Fusion

The whole pipeline above, and the same with a scene to watch. Time per
chunk (1 s of media) from the stage timers (\`stage time:\` in vigil's
summary); fusion runs on its own thread beside the encoders.

| fusion | encode ms a chunk | fuse ms a chunk | × real time | × real time against without |
|---|---:|---:|---:|---|
${fuse_rows}
### Voice activity (Silero VAD), one intra-op thread

| | × real time per stream | peak RSS MiB |
|---|---:|---:|
| bare loop, batch 1 (windows/s × 32 ms) | $vad_bare | |
| vigil, 1 stream (sample.wav ten times, 300 s) | $vad1 (target ≥ 100: **$vad_verdict**) | $vad1_rss |
| vigil, 8 streams batched (max_batch 8) | $vad8 ($vad8_total in all) | $vad8_rss |

MODELS.md: about 120–150 × at batch 1, 290 × at batch 8.

### Sound events (YAMNet), one core

| | × real time |
|---|---:|
| bare loop (patches/s × 0.48 s) | $yam_bare |
| vigil, sample.wav ten times (300 s): front end + model + events | $yam |

### Speech to text (Whisper tiny.en)

\`examples/asr_bench.rs\` (\`asr_bench sample.wav 2\`): speed on the six 5 s
segments of sample.wav, 2 intra-op threads (the encoder always runs 30 s
windows); latency for a 5.2 s utterance (sample.wav 12.0–18.0 s, then
silence) fed live, one chunk per hop of wall time, through vigil's VAD and
speech cutter (segment closed after 500 ms of silence) to the Whisper
worker: wall time from the end of the speech to its transcript. Where the
speech ends against chunk boundaries is chance, so it is played four times,
shifted by a quarter of a hop each time: the mean (judged) and the worst.

| | result | target |
|---|---:|---|
| speed, 5 s segments | $asr_speed × real time | ≥ 5: **$asr_speed_verdict** |
| latency, hop 1 s (the default): mean, worst | $asr_lat1 s, $asr_worst1 s | mean ≤ 1.5: **$asr_lat1_verdict** |
| latency, hop 500 ms: mean, worst | $asr_lat05 s, $asr_worst05 s | mean ≤ 1.5: **$asr_lat05_verdict** |

MODELS.md: tiny.en about 7 × real time on a 5 s clip.

EOF
