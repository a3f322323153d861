#!/usr/bin/env bash
# The unmodified Letta Code SDK (from npm) against switchboard: builds switchboard
# and the fake model, installs the SDK pinned in package-lock.json, runs the tests.
# Needs Node.js 18 or newer with npm; network only for the npm registry.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."

cargo build --quiet --bin switchboard
cargo build --quiet -p switchboard-fakes --example fake_llm
SB_TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
export SB_TARGET_DIR

cd "$here"
# No install scripts: the SDK's own CLI dependency is never run (LETTA_CLI_PATH
# points at switchboard's shim).
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
# The documentation's example, unchanged, compiled as its readers would.
npx tsc -p docs-example
node --test --test-concurrency=1 sdk.test.mjs
