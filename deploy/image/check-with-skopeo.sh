#!/usr/bin/env bash
# Reads the OCI archive with an independent implementation: skopeo (Debian's
# package, unpacked beside the build, no install) inspects it and copies it out,
# which checks every digest and the manifest as a registry client would.
#
#   deploy/image/check-with-skopeo.sh [OUT.tar]
set -euo pipefail
cd "$(dirname "$0")/../.."
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
archive=${1:-$target/image/switchboard-oci.tar}
tools=$target/image/skopeo
if [ ! -x "$tools/root/usr/bin/skopeo" ]; then
    rm -rf "$tools" && mkdir -p "$tools"
    (cd "$tools" && apt-get download -o APT::Sandbox::User=root skopeo golang-github-containers-common \
        golang-github-containers-image libgpgme11 libassuan0 libdevmapper1.02.1 libsubid4 >/dev/null)
    for deb in "$tools"/*.deb; do dpkg-deb -x "$deb" "$tools/root"; done
fi
echo '{"default":[{"type":"insecureAcceptAnything"}]}' > "$tools/policy.json"
skopeo() {
    LD_LIBRARY_PATH="$tools/root/usr/lib/x86_64-linux-gnu:$tools/root/lib/x86_64-linux-gnu" \
        "$tools/root/usr/bin/skopeo" --policy "$tools/policy.json" "$@"
}
skopeo --version
config=$(skopeo inspect --config "oci-archive:$archive")
echo "$config" | python3 -c '
import json, sys
c = json.load(sys.stdin)["config"]
assert c["User"] == "65532:65532", c["User"]
assert c["Entrypoint"] == ["/usr/local/bin/switchboard"], c["Entrypoint"]
print("skopeo reads the config: user", c["User"], "entrypoint", c["Entrypoint"][0])
'
rm -rf "$tools/copy"
skopeo copy --quiet "oci-archive:$archive" "dir:$tools/copy"
echo "skopeo copied the image out (every blob digest checked): $(ls "$tools/copy" | wc -l) files"
