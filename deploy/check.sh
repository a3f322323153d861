#!/usr/bin/env bash
# Builds the container image and checks every deploy file (run by .ci/run):
# the manifests' promises (check-manifests.py, PyYAML in a throwaway venv), the
# image built without an engine and verified (build.sh, check.py), and read back
# by an independent OCI implementation (skopeo).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${CHECK_VENV:-${TMPDIR:-/tmp}/switchboard-deploy-check}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check "PyYAML==6.0.2"
"$venv/bin/python" deploy/check-manifests.py
bash deploy/image/build.sh
bash deploy/image/check-with-skopeo.sh
