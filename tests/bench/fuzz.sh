#!/usr/bin/env bash
# Fuzzes vigil's text parsers with cargo-fuzz (libFuzzer): the pipeline file
# (fuzz/fuzz_targets/pipeline_config.rs) and a rule's `when`
# (fuzz/fuzz_targets/rule.rs), each for FUZZ_SECS seconds (default 60).
#
#   bash tests/bench/fuzz.sh           (make bench runs it)
#
# Seeds: every pipeline file of the repository (pipelines/, the built-in
# one, the benchmark's) and, for rules, every `when` in them plus
# fuzz/seeds/rule.txt (one rule a line). What libFuzzer finds goes to
# fuzz/corpus/ and crashes to fuzz/artifacts/ (both git-ignored).
#
# Prints one line per target: executions, corpus size, crash or not.
# Exit status: 0 when no target crashed, or when cargo-fuzz or a nightly
# toolchain is missing (it says why it skips); 1 when a target crashed.
set -euo pipefail

: "${HOME:=$(getent passwd "$(id -u)" | cut -d: -f6)}"
export HOME
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
secs="${FUZZ_SECS:-60}"

log() { printf 'fuzz: %s\n' "$*" >&2; }

if ! cargo +nightly --version >/dev/null 2>&1; then
  log "skipped: no nightly toolchain (rustup toolchain install nightly)"
  exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  log "skipped: cargo-fuzz is not installed (cargo install cargo-fuzz)"
  exit 0
fi

pipelines=(pipelines/*.toml src/config/default_pipeline.toml tests/bench/motion-loudness.toml)
mkdir -p fuzz/corpus/pipeline_config fuzz/corpus/rule
cp "${pipelines[@]}" fuzz/corpus/pipeline_config/
python3 - fuzz/corpus/rule fuzz/seeds/rule.txt "${pipelines[@]}" <<'PY'
import hashlib, pathlib, sys, tomllib
out, listed, files = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
rules = [l for l in pathlib.Path(listed).read_text().splitlines() if l.strip()]
for f in files:
    rules += [r["when"] for r in tomllib.loads(pathlib.Path(f).read_text()).get("rules", [])]
for r in rules:
    (out / ("seed-" + hashlib.sha1(r.encode()).hexdigest())).write_text(r)
PY

failed=0
for target in pipeline_config rule; do
  log "$target: building and running for $secs s"
  logfile="fuzz/$target.log"
  # -timeout: an input that takes over 10 s is a finding (a hang), too.
  if cargo +nightly fuzz run "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$secs" -timeout=10 -print_final_stats=1 >"$logfile" 2>&1; then
    crash="no crash"
  else
    crash="CRASH: $(grep -m1 -o 'Test unit written to .*' "$logfile" || echo "see $logfile")"
    failed=1
  fi
  execs="$(awk '/stat::number_of_executed_units:/ { print $2 }' "$logfile" | tail -n 1)"
  corpus="$(find "fuzz/corpus/$target" -type f | wc -l)"
  printf 'fuzz: %s: %s executions in %s s, corpus %s inputs, %s\n' \
    "$target" "${execs:-?}" "$secs" "$corpus" "$crash"
done
if ((failed)); then
  log "error: a target crashed (fuzz/artifacts/; logs in fuzz/*.log)"
  exit 1
fi
