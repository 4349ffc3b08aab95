# vigil — common tasks. `make help` lists them.
#
#   make setup   install Debian packages and build the demo clip (idempotent)
#   make build   release build
#   make demo    run pipelines/demo.toml on the demo clip and sum up what it found
#   make test    fmt check, clippy (warnings are errors), all tests; what CI runs
#   make bench   throughput benchmark, writes BENCHMARKS.md; fuzzes the parsers
#   make clean   remove build output and run output (not the media cache)

CARGO ?= cargo
PYTHON ?= python3

# HOME can be missing in a bare CI environment; take it from passwd.
HOME ?= $(shell getent passwd $$(id -u) | cut -d: -f6)
export HOME

# rustup installs into ~/.cargo/bin, which non-login shells (CI) may lack.
PATH := $(HOME)/.cargo/bin:$(PATH)
export PATH

VIGIL_CACHE ?= $(HOME)/.cache/vigil
export VIGIL_CACHE

VIGIL := ./target/release/vigil
DEMO_OUT := out/demo

# Counts the records of an events.jsonl: by type, and events by kind and phase.
define DEMO_DIGEST
import collections, json, sys
counts = collections.Counter()
total = 0
with open(sys.argv[1]) as f:
    for line in f:
        if not line.strip():
            continue
        r = json.loads(line)
        total += 1
        key = r.get("type", "?")
        if key == "event":
            key += " %s %s" % (r.get("kind"), r.get("phase"))
        counts[key] += 1
for key, n in sorted(counts.items()):
    print("%6d  %s" % (n, key))
print("%6d  records in all" % total)
endef
export DEMO_DIGEST

.DEFAULT_GOAL := help
.PHONY: help setup build demo test bench clean

help:
	@sed -n 's/^#   make /make /p' $(firstword $(MAKEFILE_LIST))

setup:
	bash deploy/setup.sh

build: setup
	$(CARGO) build --release

demo: build
	rm -rf $(DEMO_OUT)
	$(VIGIL) run --out $(DEMO_OUT)
	@echo
	@echo "== records in $(DEMO_OUT)/events.jsonl"
	@$(PYTHON) -c "$$DEMO_DIGEST" $(DEMO_OUT)/events.jsonl
	@echo
	@echo "== first lines of $(DEMO_OUT)/captions.vtt"
	@head -n 15 $(DEMO_OUT)/captions.vtt
	@echo
	@echo "== vigil ask --db $(DEMO_OUT)/events.db --top 1 \"people at the junction while a siren was heard\""
	@$(VIGIL) ask --db $(DEMO_OUT)/events.db --top 1 "people at the junction while a siren was heard"
	@echo
	@echo "== the alerts spoken, in $(DEMO_OUT)/alerts/walkway/"
	@cat $(DEMO_OUT)/alerts/walkway/*.txt

# Release profile throughout: the media tests decode real clips and are much
# faster optimised, and clippy/test then share one profile's dependencies.
# The media fuzz suite (tests/it/fuzz.rs) runs on its own, its output shown,
# for its summary line.
test: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --release -- -D warnings
	$(CARGO) test --release -- --skip fuzz::
	$(CARGO) test --release --test it fuzz:: -- --nocapture

bench: build
	$(CARGO) build --release --examples
	bash tests/bench/run.sh
	bash tests/bench/fuzz.sh

clean:
	$(CARGO) clean
	rm -rf out bench-out fuzz/target
