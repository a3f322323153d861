#!/usr/bin/env bash
# Checks the fake Slack against the real slack_sdk and slack_bolt (from PyPI): a
# throwaway venv, the fake's example binary, and slack_sdk_check.py in strict
# mode (the libraries unmodified: Web API calls, Bolt handlers in Socket Mode,
# acknowledgements, response URLs, reconnects). Everything stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/../../.."
venv="${CHECK_VENV:-${TMPDIR:-/tmp}/switchboard-slack-sdk}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check "slack_sdk==3.48.0" "slack_bolt==1.30.0" "aiohttp==3.14.5"
cargo build --quiet -p switchboard-fakes --example fake_slack
target="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
FAKE_SLACK="$target/debug/examples/fake_slack" timeout 600 "$venv/bin/python" tests/fakes/clients/slack_sdk_check.py --strict
