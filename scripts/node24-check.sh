#!/usr/bin/env bash
# The supported Node.js lines are 22 and 24 (package.json `engines`); the development machines run
# Node 20. This check runs the unit tests (or, with --all, the whole suite) under Node 24, which it
# takes from the npm registry as the `node` package (it ships the official binaries), so no system
# Node is touched. Usage: bash scripts/node24-check.sh [--all] [vitest args...]
# `scripts/test.sh` runs it after the main run when LIVINGLAB_NODE24=1 (set it in CI): the unit tests
# alone took 114 s on 2 loaded cores (1:54 wall, load 25), too long to add to every local run.
set -euo pipefail
cd "$(dirname "$0")/.."
NODE_VERSION=${LIVINGLAB_NODE24_VERSION:-24}
NODE24=$(npx -y "node@$NODE_VERSION" -p process.execPath)
echo "node24-check: $("$NODE24" --version) from the npm package node@$NODE_VERSION ($NODE24)" >&2
targets=(test/unit)
if [ "${1:-}" = "--all" ]; then
  shift
  targets=()
fi
# Child processes the tests spawn (the CLI, tsx) use process.execPath, so they run on Node 24 too.
PATH="$(dirname "$NODE24"):$PATH" exec "$NODE24" node_modules/vitest/vitest.mjs run "${targets[@]}" "$@"
