#!/usr/bin/env python3
"""Checks the deploy files for what the daemon relies on, without a cluster or a
container engine: they parse, and they keep the promises deploy/README.md makes
(non-root, read-only root filesystem, no capabilities, probes on the right
endpoints, a stop grace above the daemon's, systemd's notify and watchdog).
Needs PyYAML.

    python3 deploy/check-manifests.py
"""

import configparser
import os
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
# [gateway] stop_grace_secs by default: every stop timeout must leave room for it.
STOP_GRACE = 10
problems = []


def expect(ok, what):
    if not ok:
        problems.append(what)


def compose():
    with open(os.path.join(HERE, "compose.yaml")) as f:
        service = yaml.safe_load(f)["services"]["switchboard"]
    expect(service.get("user") == "65532:65532", "compose: runs as 65532")
    expect(service.get("read_only") is True, "compose: read-only root filesystem")
    expect(service.get("cap_drop") == ["ALL"], "compose: drops every capability")
    expect("no-new-privileges:true" in service.get("security_opt", []), "compose: no new privileges")
    expect(any("/readyz" in part for part in service["healthcheck"]["test"]), "compose: health from /readyz")
    expect(all(p.startswith("127.0.0.1:") for p in service.get("ports", [])), "compose: endpoints on loopback")
    grace = service.get("stop_grace_period", "10s")
    expect(int(grace.rstrip("s")) > STOP_GRACE, "compose: stop grace above the daemon's")


def kubernetes():
    with open(os.path.join(HERE, "k8s", "switchboard.yaml")) as f:
        docs = {d["kind"]: d for d in yaml.safe_load_all(f)}
    sts = docs["StatefulSet"]
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    expect(spec["replicas"] == 1, "k8s: one replica owns the sled store")
    expect(pod["securityContext"].get("runAsNonRoot") is True, "k8s: runAsNonRoot")
    expect(pod["securityContext"].get("runAsUser") == 65532, "k8s: runAsUser 65532")
    expect(pod.get("terminationGracePeriodSeconds", 30) > STOP_GRACE, "k8s: grace above the daemon's")
    (container,) = pod["containers"]
    security = container["securityContext"]
    expect(security.get("readOnlyRootFilesystem") is True, "k8s: read-only root filesystem")
    expect(security.get("allowPrivilegeEscalation") is False, "k8s: no privilege escalation")
    expect(security.get("capabilities", {}).get("drop") == ["ALL"], "k8s: drops every capability")
    probes = {kind: container[kind]["httpGet"]["path"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    expect(probes == {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"},
           f"k8s: probes {probes}")
    env = {e["name"]: e.get("value") for e in container["env"]}
    port = container["ports"][0]["containerPort"]
    expect(env.get("SWITCHBOARD_SERVER__LISTEN", "").endswith(f":{port}"), "k8s: listens on the probed port")
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    expect({"/data", "/tmp"} <= mounts, "k8s: writable /data and /tmp")
    expect(docs["Service"]["spec"]["ports"][0]["port"] == port, "k8s: the service exposes the operator port")


def systemd():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(os.path.join(HERE, "switchboard.service"))
    service = unit["Service"]
    expect(service.get("Type") == "notify", "systemd: Type=notify")
    expect(service.get("NotifyAccess") == "main", "systemd: NotifyAccess=main")
    expect(int(service.get("WatchdogSec", "0")) >= 20, "systemd: a watchdog")
    expect(service.get("WatchdogSignal") == "SIGTERM", "systemd: the watchdog stops it gracefully")
    expect(int(service.get("TimeoutStartSec", "90")) >= 120, "systemd: room for slow platforms at start")
    expect(service.get("UMask") == "0077", "systemd: UMask=0077")
    expect(int(service.get("TimeoutStopSec", "90")) > STOP_GRACE, "systemd: stop timeout above the daemon's grace")
    expect("RestrictNamespaces" not in service, "systemd: namespaces stay allowed for the agent's sandbox")


compose()
kubernetes()
systemd()
if problems:
    print("deploy files: " + "; ".join(problems), file=sys.stderr)
    sys.exit(1)
print("deploy files check out: compose.yaml, k8s/switchboard.yaml, switchboard.service")
