#!/usr/bin/env python3
"""Packs a root filesystem as a one-layer OCI image archive (an OCI image layout in
a tar), with no container engine. Deterministic: every file is owned by root (the
data directory by the image's user), every time stamp is SOURCE_DATE_EPOCH (0 when
unset), entries are sorted, and the gzip header carries no time or name.

    oci.py ROOTFS OUT.tar --version 0.1.0 [--arch amd64]

Load it with `skopeo copy oci-archive:OUT.tar docker-daemon:switchboard:0.1.0`,
`podman load -i OUT.tar`, or push it with `skopeo copy oci-archive:OUT.tar docker://…`.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import stat
import tarfile

USER = 65532
# The image's configuration: who runs it, what it runs, where its data lives.
CONFIG = {
    "User": f"{USER}:{USER}",
    "Entrypoint": ["/usr/local/bin/switchboard"],
    "Cmd": ["serve"],
    "Env": [
        "PATH=/usr/local/bin:/usr/bin:/bin",
        "HOME=/data",
        "SWITCHBOARD_DATA_DIR=/data/data",
        "SWITCHBOARD_AGENT__WORKDIR=/data/workspace",
        # The operator's endpoints, for the orchestrator's probes and Prometheus.
        "SWITCHBOARD_SERVER__LISTEN=0.0.0.0:9464",
        "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
    ],
    "WorkingDir": "/data",
    "Volumes": {"/data": {}},
    "ExposedPorts": {"9464/tcp": {}},
    "StopSignal": "SIGTERM",
}


def epoch():
    return int(os.environ.get("SOURCE_DATE_EPOCH", "0"))


def layer_tar(rootfs):
    """The root filesystem as an uncompressed tar, in a fixed order and ownership."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        paths = []
        for directory, dirs, files in os.walk(rootfs):
            dirs.sort()
            for name in sorted(dirs + files):
                paths.append(os.path.join(directory, name))
        for path in sorted(paths):
            name = os.path.relpath(path, rootfs)
            info = tar.gettarinfo(path, arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = epoch()
            # Nothing in the image may raise privileges.
            info.mode &= ~(stat.S_ISUID | stat.S_ISGID)
            if name == "data":
                info.uid = info.gid = USER
                info.mode = 0o750
            if info.isreg():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return buffer.getvalue()


def blob(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type, data, **extra):
    return {"mediaType": media_type, "digest": blob(data), "size": len(data), **extra}


def dumps(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rootfs")
    parser.add_argument("out")
    parser.add_argument("--version", required=True)
    parser.add_argument("--arch", default="amd64", help="Debian's architecture name (amd64, arm64, …)")
    args = parser.parse_args()
    arch = {"armhf": "arm", "i386": "386"}.get(args.arch, args.arch)

    layer = layer_tar(args.rootfs)
    compressed = gzip.compress(layer, compresslevel=9, mtime=0)
    created = "1970-01-01T00:00:00Z" if epoch() == 0 else None
    config = {
        "architecture": arch,
        "os": "linux",
        "config": {
            **CONFIG,
            "Labels": {
                "org.opencontainers.image.title": "switchboard",
                "org.opencontainers.image.version": args.version,
                "org.opencontainers.image.description": "One persistent agent, reachable from many chat channels",
            },
        },
        "rootfs": {"type": "layers", "diff_ids": [blob(layer)]},
        "history": [{"created_by": "deploy/image/build.sh (Debian packages unpacked, no engine)"}],
    }
    if created:
        config["created"] = created
    config_bytes = dumps(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor("application/vnd.oci.image.config.v1+json", config_bytes),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", compressed)],
    }
    manifest_bytes = dumps(manifest)
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            descriptor(
                "application/vnd.oci.image.manifest.v1+json",
                manifest_bytes,
                annotations={"org.opencontainers.image.ref.name": args.version},
                platform={"architecture": arch, "os": "linux"},
            )
        ],
    }
    files = {
        "oci-layout": dumps({"imageLayoutVersion": "1.0.0"}),
        "index.json": dumps(index),
    }
    for data in (config_bytes, manifest_bytes, compressed):
        files["blobs/sha256/" + blob(data).split(":")[1]] = data
    with tarfile.open(args.out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, epoch()
            tar.addfile(info)
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o644, epoch()
            tar.addfile(info, io.BytesIO(files[name]))
    print(f"{args.out}: layer {len(compressed) / 1e6:.1f} MB compressed ({len(layer) / 1e6:.1f} MB unpacked), "
          f"manifest {blob(manifest_bytes)[:19]}…")


if __name__ == "__main__":
    main()
