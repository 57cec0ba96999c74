#!/usr/bin/env bash
# The whole test suite: system packages, typecheck, lint, unit and integration tests against a real
# influxd and real MQTT clients. `npm it` installs the npm dependencies first and then runs this.
# LIVINGLAB_NODE24=1 also runs the unit tests on Node 24 (scripts/node24-check.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-system.sh influxdb:influxd mosquitto:mosquitto mosquitto-clients:mosquitto_pub victoria-metrics:victoria-metrics \
  python3-pandas:/usr/lib/python3/dist-packages/pandas/__init__.py r-base-core:Rscript
[ -d node_modules ] || npm ci
npm run --silent typecheck
npm run --silent lint
# Tests that start `livinglab` as a user would run the built CLI (bin/ → dist/): never a stale one.
npm run --silent build
mkdir -p .tmp
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json=.tmp/vitest.json "$@" || status=$?
node -e '
  const r = JSON.parse(require("fs").readFileSync(".tmp/vitest.json", "utf8"));
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
' || true
# Node 24 (the newest supported line) beside this machine's Node: the unit tests, when asked (CI).
if [ "${LIVINGLAB_NODE24:-0}" = "1" ] && [ $# -eq 0 ]; then
  bash scripts/node24-check.sh || status=$?
fi
exit $status
