#!/usr/bin/env bash
# The dashboard over a real run, without Grafana: vigil serve on the demo
# pipeline (plus vtest.avi attached as a second stream), a Prometheus
# (Debian's) scraping it every second with deploy/prometheus/alerts.yml,
# then deploy/grafana/render.py draws every panel's query over the run into
# docs/dashboard.png.
#
#   bash deploy/grafana/demo-dashboard.sh     (after make demo's set-up)
set -euo pipefail
cd "$(dirname "$0")/../.."
cache="${VIGIL_CACHE:-$HOME/.cache/vigil}"
work="$(mktemp -d)"
vport=9555
pport=9556
cleanup() { kill "${vpid:-}" "${ppid_:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

./target/release/vigil serve pipelines/demo.toml --listen "127.0.0.1:$vport" --out "$work/out" \
  >"$work/vigil.log" 2>&1 &
vpid=$!
cat >"$work/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $PWD/deploy/prometheus/alerts.yml
scrape_configs:
  - job_name: vigil
    static_configs:
      - targets: ["127.0.0.1:$vport"]
YML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$pport" >"$work/prometheus.log" 2>&1 &
ppid_=$!
for _ in $(seq 100); do curl -sf "127.0.0.1:$vport/healthz" >/dev/null && break; sleep 0.3; done
start=$(date +%s)
vtest="${VIGIL_SHARED:-../shared}/media/vtest.avi"
[[ -f "$vtest" ]] || vtest="/tmp/shared/media/vtest.avi"
curl -sf -X POST -H 'Content-Type: application/json' \
  -d "{\"name\": \"street\", \"uri\": \"$(realpath "$vtest")\"}" "127.0.0.1:$vport/streams" >/dev/null
# Until both files are done, then a little more.
for _ in $(seq 600); do
  states="$(curl -sf "127.0.0.1:$vport/streams" || true)"
  if [[ -n "$states" ]] && ! grep -q '"state":"\(running\|connecting\)"' <<<"$states"; then break; fi
  sleep 1
done
sleep 15
end=$(date +%s)
python3 deploy/grafana/render.py --prometheus "http://127.0.0.1:$pport" \
  --start "$start" --end "$end" --out "$work/dashboard.html" --png docs/dashboard.png
