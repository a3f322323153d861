#!/usr/bin/env bash
# Checks the fake Discord against the real discord.py (from PyPI): a throwaway
# venv, the fake's example binary, and discord_py.py --strict (unmodified
# discord.py must log in, receive, send, answer slash commands and buttons,
# resume and re-identify). Everything stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/../../.."
venv="${CHECK_VENV:-${TMPDIR:-/tmp}/switchboard-discord-py}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check "discord.py==2.7.1"
cargo build --quiet -p switchboard-fakes --example fake_discord
target="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
timeout 300 "$venv/bin/python" tests/fakes/clients/discord_py.py --strict --fake "$target/debug/examples/fake_discord"
