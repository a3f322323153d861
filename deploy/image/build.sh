#!/usr/bin/env bash
# Builds switchboard's container image as an OCI archive, without a container
# engine: a small root filesystem unpacked from Debian's packages (`dpkg -x`: no
# maintainer scripts, no chroot), the release binary, a non-root user (65532) and
# the CA bundle; `oci.py` packs it as one layer. `check.py` then verifies it.
#
#   deploy/image/build.sh [OUT.tar]     (default: <cargo target dir>/image/switchboard-oci.tar)
#
# Needs apt (Debian 12, as the machine the binary is built on: the image's glibc must
# be at least the one it was linked against), python3, and root only for the smoke
# test that runs the binary inside the root filesystem (skipped otherwise).
# SWITCHBOARD_BIN=path uses an existing binary instead of `cargo build --release`.
set -euo pipefail
cd "$(dirname "$0")/../.."
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
out=${1:-$target/image/switchboard-oci.tar}
work=$target/image/work
rm -rf "$work" && mkdir -p "$work/debs" "$work/rootfs" "$(dirname "$out")"

# What the agent's commands need: a shell (bash; dash as /bin/sh), the core tools,
# and the libraries those link against. Nothing else: add tools in an image of
# your own FROM this one.
packages=(base-files libc6 libgcc-s1 bash dash coreutils grep sed findutils
          libacl1 libattr1 libgmp10 libpcre2-8-0 libselinux1 libtinfo6 ca-certificates)

if [ -n "${SWITCHBOARD_BIN:-}" ]; then
    binary=$SWITCHBOARD_BIN
else
    cargo build --release --locked --bin switchboard
    binary=$target/release/switchboard
fi

# apt's sandbox user cannot write into the build directory; download as we are.
download() { (cd "$work/debs" && apt-get download -o APT::Sandbox::User=root "${packages[@]}" >/dev/null); }
if ! download; then
    # A fresh machine's package lists may be missing or stale.
    [ "$(id -u)" = 0 ] && apt-get update -qq && download
fi
for deb in "$work"/debs/*.deb; do
    dpkg-deb -x "$deb" "$work/rootfs"
done

root=$work/rootfs
rm -rf "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/info" "$root/usr/share/locale"
install -D -m 0755 "$binary" "$root/usr/local/bin/switchboard"
# /bin/sh is dash, as on Debian (its package leaves that link to a maintainer script).
ln -sf dash "$root/bin/sh"
# The CA bundle update-ca-certificates would have made.
mkdir -p "$root/etc/ssl/certs"
cat "$root"/usr/share/ca-certificates/mozilla/*.crt > "$root/etc/ssl/certs/ca-certificates.crt"
cat > "$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/usr/sbin/nologin
switchboard:x:65532:65532:switchboard:/data:/usr/sbin/nologin
PASSWD
cat > "$root/etc/group" <<'GROUP'
root:x:0:
switchboard:x:65532:
GROUP
mkdir -p "$root/tmp" "$root/data" "$root/root" "$root/proc" "$root/dev"
chmod 1777 "$root/tmp"

# Every library a program in the image links against is in the image.
missing=0
while IFS= read -r -d '' file; do
    head -c 4 "$file" 2>/dev/null | grep -q 'ELF' || continue
    for lib in $(readelf -d "$file" 2>/dev/null | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p'); do
        if ! find "$root/lib" "$root/usr/lib" -name "$lib" 2>/dev/null | grep -q .; then
            echo "missing in the image: $lib (needed by ${file#"$root"})" >&2
            missing=1
        fi
    done
done < <(find "$root/bin" "$root/usr/bin" "$root/usr/local/bin" -type f -print0)
[ "$missing" = 0 ] || exit 1

# Smoke test: the binary and the shell run inside the root filesystem as the image's user.
if [ "$(id -u)" = 0 ] && command -v chroot >/dev/null; then
    chroot --userspec=65532:65532 "$root" /usr/local/bin/switchboard --version
    chroot --userspec=65532:65532 "$root" /bin/bash -c 'echo "bash $BASH_VERSION runs; sh is $(readlink /bin/sh)"'
else
    echo "not root: the smoke test inside the root filesystem is skipped" >&2
fi

# The image's platform is the machine's (its packages and binary are this architecture).
python3 deploy/image/oci.py "$root" "$out" --version "$("$binary" --version | awk '{print $2}')" \
    --arch "$(dpkg --print-architecture)"
python3 deploy/image/check.py "$out"
