#!/usr/bin/env python3
"""Verifies an OCI image archive built by build.sh, as far as can be done without a
container runtime: the layout and every blob's digest and size, the configuration
(non-root user, entrypoint, volume, no secret in the environment), and the layer's
contents (the binary, the user, the CA bundle, a shell, nothing setuid, nothing
world-writable but sticky directories such as /tmp). Exits non-zero naming every problem.

    check.py OUT.tar
"""

import gzip
import hashlib
import io
import json
import stat
import sys
import tarfile

SECRET_WORDS = ("TOKEN", "API_KEY", "SECRET", "PASSWORD")


def main():
    path = sys.argv[1]
    problems = []

    def expect(ok, what):
        if not ok:
            problems.append(what)

    with tarfile.open(path) as archive:
        files = {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}

    def read_blob(desc):
        name = "blobs/sha256/" + desc["digest"].split(":", 1)[1]
        data = files.get(name)
        if data is None:
            problems.append(f"blob {desc['digest']} is missing")
            return b""
        expect("sha256:" + hashlib.sha256(data).hexdigest() == desc["digest"], f"{name}: digest mismatch")
        expect(len(data) == desc["size"], f"{name}: size mismatch")
        return data

    expect(json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}, "oci-layout")
    index = json.loads(files["index.json"])
    expect(len(index["manifests"]) == 1, "one manifest in index.json")
    manifest = json.loads(read_blob(index["manifests"][0]))
    expect(manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json", "manifest media type")
    config = json.loads(read_blob(manifest["config"]))
    settings = config["config"]
    platform = index["manifests"][0].get("platform", {})
    expect(config["os"] == "linux", "os linux")
    expect(config["architecture"] == platform.get("architecture"), "the config's and the index's platform agree")
    expect(settings["User"] == "65532:65532", f"non-root numeric user, not {settings.get('User')!r}")
    expect(settings["Entrypoint"] == ["/usr/local/bin/switchboard"], "entrypoint")
    expect(settings["Cmd"] == ["serve"], "command")
    expect("/data" in settings.get("Volumes", {}), "a /data volume")
    for variable in settings["Env"]:
        name = variable.split("=", 1)[0]
        expect(not any(word in name for word in SECRET_WORDS), f"no secret in the image's environment: {name}")

    layers = manifest["layers"]
    expect(len(layers) == 1 and layers[0]["mediaType"].endswith("tar+gzip"), "one gzip layer")
    compressed = read_blob(layers[0])
    layer = gzip.decompress(compressed)
    expect("sha256:" + hashlib.sha256(layer).hexdigest() == config["rootfs"]["diff_ids"][0], "diff_id")
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        binary = members.get("usr/local/bin/switchboard")
        expect(binary is not None and binary.isreg() and binary.mode & 0o111, "an executable switchboard")
        passwd = tar.extractfile(members["etc/passwd"]).read().decode()
        expect("switchboard:x:65532:65532:" in passwd, "user 65532 in /etc/passwd")
        bundle = tar.extractfile(members["etc/ssl/certs/ca-certificates.crt"]).read()
        expect(bundle.count(b"BEGIN CERTIFICATE") > 100, "a CA bundle")
        expect(members.get("bin/sh") is not None and members["bin/sh"].linkname == "dash", "/bin/sh")
        expect("bin/bash" in members, "bash for the agent's commands")
        expect(members.get("data") is not None and members["data"].uid == 65532, "/data owned by the user")
        for name, member in members.items():
            expect(not member.mode & (stat.S_ISUID | stat.S_ISGID), f"{name} is setuid or setgid")
            if member.isreg() or member.isdir():
                writable = member.mode & 0o002
                sticky_dir = member.isdir() and member.mode & stat.S_ISVTX
                expect(not writable or sticky_dir, f"{name} is world-writable")

    if problems:
        print(f"{path}: {len(problems)} problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        sys.exit(1)
    print(f"{path}: OCI layout, digests, config (user {settings['User']}, "
          f"entrypoint {settings['Entrypoint'][0]}) and layer ({len(members)} entries) check out")


if __name__ == "__main__":
    main()
