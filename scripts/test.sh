#!/usr/bin/env bash
# The whole test suite: system packages, typecheck, lint, unit and integration tests against a real
# influxd and real MQTT clients. `npm it` installs the npm dependencies first and then runs this.
# Then the Node 24 and npm 10 check (scripts/node24-check.sh; LIVINGLAB_NODE24=0 leaves it out):
# its tools download in the background meanwhile; its tests run after the main run, never beside
# it, as the two cores are busy with it (measured: 51 s with the download on a warm npm cache).
set -euo pipefail
cd "$(dirname "$0")/.."
node24=0
if [ "${LIVINGLAB_NODE24:-1}" != "0" ] && [ $# -eq 0 ]; then
  node24=1
  bash scripts/node24-check.sh --fetch-only &
  fetch_pid=$!
fi
bash scripts/ensure-system.sh influxdb:influxd mosquitto:mosquitto mosquitto-clients:mosquitto_pub victoria-metrics:victoria-metrics \
  python3-pandas:/usr/lib/python3/dist-packages/pandas/__init__.py r-base-core:Rscript
[ -d node_modules ] || npm ci
npm run --silent typecheck
npm run --silent lint
# Tests that start `livinglab` as a user would run the built CLI (bin/ → dist/): never a stale one.
npm run --silent build
# ...and the tests' own `livinglab` commands and gateway processes run that build (test/helpers/cli.ts).
export LIVINGLAB_TEST_BUILT=1
mkdir -p .tmp
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json=.tmp/vitest.json "$@" || status=$?
node -e '
  const r = JSON.parse(require("fs").readFileSync(".tmp/vitest.json", "utf8"));
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
' || true
# Node 24 (the newest supported line) beside this machine's Node, and the lockfile on npm 10.
if [ $node24 -eq 1 ]; then
  wait "$fetch_pid" || true
  bash scripts/node24-check.sh --built || status=$?
fi
exit $status
