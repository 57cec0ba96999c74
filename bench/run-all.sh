#!/usr/bin/env bash
# `npm run bench`: every measurement of issue #7 in one go, tables to stdout and to
# bench/results/latest.md, raw JSON per script under bench/results/. Takes one to two hours on a
# 2-core machine with the defaults (60-s rungs, 3 runs). BENCH_QUICK=1 shortens rungs to 30 s (5-s warm-up).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-system.sh influxdb:influxd mosquitto:mosquitto
npm run -s build
npm install --prefix bench --no-audit --no-fund --loglevel=error >/dev/null
rung=60s
warmup=10s
if [ "${BENCH_QUICK:-}" = 1 ]; then rung=30s; warmup=5s; fi
out=bench/results/latest.md
mkdir -p bench/results
{
  echo "# Benchmark run $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(. /etc/os-release && echo "$PRETTY_NAME"), Node $(node -v), $(influxd version 2>/dev/null | head -1), mosquitto $(mosquitto -h 2>/dev/null | head -1 | awk '{print $3}' || true)"
  echo
} >"$out"
run() {
  echo "\$ npx tsx $*" | tee -a "$out" >&2
  npx tsx "$@" | tee -a "$out"
  echo | tee -a "$out"
}
run bench/stages.ts
run bench/broker.ts
run bench/connections.ts
run bench/e2e.ts --mode single --systems gateway,node-red,plain --rates 500,1000,2000,2500,5000,7500,10000,12500,15000,20000,25000,30000 --duration "$rung" --warmup "$warmup" --half-for gateway
run bench/e2e.ts --mode batch --systems gateway,plain --rates 25000,50000,75000,100000,125000,150000,200000 --duration "$rung" --warmup "$warmup" --half-for gateway
# TLS against plain TCP (issue 16): the ratio of sustained rates, set-up cost, memory over TLS.
run bench/e2e.ts --mode single --systems gateway,gateway-tls --rates 4000,8000,10000,12000,14000,16000,18000,20000 --duration "$rung" --warmup "$warmup" --no-half
run bench/tls.ts
run bench/connections.ts --tls
# Research exports (issue 18): rows/s per format and the gateway's peak RSS at two export sizes.
run bench/export.ts
# Past one machine (issue 19): the embedded gateway, Mosquitto + one gateway, Mosquitto + two
# gateways (external mode), side by side; then devices connected through Mosquitto: as many as one
# broker's open-file limit allows, and 100,000 over several brokers (each with its gateway) where
# that limit (ulimit -n, raised only with CAP_SYS_RESOURCE) keeps one broker below it.
run bench/e2e.ts --mode single --systems gateway,mosquitto-gw1,mosquitto-gw2 --rates 500,1000,1500,2000,3000,4500,6000,9000,12000,15000,20000 --duration "$rung" --warmup "$warmup" --runs 1
run bench/front-connections.ts --devices 19000 --shards 1 --processes 4 --sources 8
run bench/front-connections.ts --devices 100000 --shards 6 --processes 8 --sources 8
# The minute-long InfluxDB outage under load (the test suite runs a 5-s one by default).
echo "\$ LIVINGLAB_SOAK=1 npx vitest run test/integration/outage.test.ts" | tee -a "$out" >&2
LIVINGLAB_SOAK=1 npx vitest run test/integration/outage.test.ts 2>&1 | grep -E '\[fault\]|Tests ' | tee -a "$out"
echo "tables: $out" >&2
