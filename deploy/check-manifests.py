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
import tomllib

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
# [gateway] stop_grace_secs by default: every stop timeout must leave room for it.
STOP_GRACE = 10
problems = []


def expect(ok, what):
    if not ok:
        problems.append(what)


def compose_service(service, where):
    expect(service.get("user") == "65532:65532", f"{where}: runs as 65532")
    expect(service.get("read_only") is True, f"{where}: read-only root filesystem")
    expect(service.get("cap_drop") == ["ALL"], f"{where}: drops every capability")
    expect("no-new-privileges:true" in service.get("security_opt", []), f"{where}: no new privileges")
    expect(any("/readyz" in part for part in service["healthcheck"]["test"]), f"{where}: health from /readyz")
    expect(all(p.startswith("127.0.0.1:") for p in service.get("ports", [])), f"{where}: endpoints on loopback")
    grace = service.get("stop_grace_period", "10s")
    expect(int(grace.rstrip("s")) > STOP_GRACE, f"{where}: stop grace above the daemon's")


def compose():
    with open(os.path.join(HERE, "compose.yaml")) as f:
        compose_service(yaml.safe_load(f)["services"]["switchboard"], "compose")


def compose_replicas():
    with open(os.path.join(HERE, "compose.replicas.yaml")) as f:
        services = yaml.safe_load(f)["services"]
    replicas = {name: s for name, s in services.items() if s.get("image", "").startswith("switchboard:")}
    expect(len(replicas) >= 2, "compose replicas: at least two switchboard services")
    for name, service in replicas.items():
        where = f"compose replicas {name}"
        compose_service(service, where)
        env = service.get("environment", {})
        expect(env.get("SWITCHBOARD_STORE__KIND") == "postgres", f"{where}: store.kind postgres")
        expect(env.get("SWITCHBOARD_STORE__POSTGRES__REPLICAS") == "true", f"{where}: replicas on")
        expect("SWITCHBOARD_STORE__POSTGRES__URL" not in env, f"{where}: the database URL (a secret) only in the env file")
        expect(service.get("depends_on", {}).get("postgres", {}).get("condition") == "service_healthy",
               f"{where}: waits for a healthy database")
        mounts = {v.split(":")[1] for v in service.get("volumes", [])}
        expect({"/data", "/workspace"} <= mounts, f"{where}: its own /data and the shared /workspace")
    data = [next(v.split(":")[0] for v in s["volumes"] if v.split(":")[1] == "/data") for s in replicas.values()]
    expect(len(set(data)) == len(data), "compose replicas: each replica has its own data volume")
    ports = [p for s in replicas.values() for p in s.get("ports", [])]
    expect(len({p.rsplit(":", 1)[0] for p in ports}) == len(ports), "compose replicas: distinct host ports")
    expect("postgres" in services and "healthcheck" in services["postgres"], "compose replicas: a checked database")


def kubernetes():
    with open(os.path.join(HERE, "k8s", "switchboard.yaml")) as f:
        docs = {d["kind"]: d for d in yaml.safe_load_all(f)}
    spec = docs["StatefulSet"]["spec"]
    expect(spec["replicas"] == 1, "k8s: one replica owns the data directory store")
    kubernetes_pod(docs, spec["template"]["spec"], "k8s")


def kubernetes_replicas():
    with open(os.path.join(HERE, "k8s", "switchboard-replicas.yaml")) as f:
        docs = {d["kind"]: d for d in yaml.safe_load_all(f)}
    where = "k8s replicas"
    spec = docs["Deployment"]["spec"]
    expect(spec["replicas"] >= 2, f"{where}: at least two replicas")
    expect(spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, f"{where}: a rollout keeps one serving")
    expect(docs["PodDisruptionBudget"]["spec"]["minAvailable"] >= 1, f"{where}: a disruption budget")
    settings = tomllib.loads(docs["ConfigMap"]["data"]["switchboard.toml"])
    store = settings.get("store", {})
    expect(store.get("kind") == "postgres", f"{where}: store.kind postgres")
    expect(store.get("postgres", {}).get("replicas") is True, f"{where}: store.postgres.replicas on")
    expect("url" not in store.get("postgres", {}), f"{where}: the database URL (a secret) not in the ConfigMap")
    kubernetes_pod(docs, spec["template"]["spec"], where)


def kubernetes_pod(docs, pod, where):
    expect(pod["securityContext"].get("runAsNonRoot") is True, f"{where}: runAsNonRoot")
    expect(pod["securityContext"].get("runAsUser") == 65532, f"{where}: runAsUser 65532")
    expect(pod.get("terminationGracePeriodSeconds", 30) > STOP_GRACE, f"{where}: grace above the daemon's")
    (container,) = pod["containers"]
    security = container["securityContext"]
    expect(security.get("readOnlyRootFilesystem") is True, f"{where}: read-only root filesystem")
    expect(security.get("allowPrivilegeEscalation") is False, f"{where}: no privilege escalation")
    expect(security.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: drops every capability")
    probes = {kind: container[kind]["httpGet"]["path"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    expect(probes == {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"},
           f"{where}: probes {probes}")
    env = {e["name"]: e.get("value") for e in container["env"]}
    port = container["ports"][0]["containerPort"]
    expect(env.get("SWITCHBOARD_SERVER__LISTEN", "").endswith(f":{port}"), f"{where}: listens on the probed port")
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    expect({"/data", "/tmp"} <= mounts, f"{where}: writable /data and /tmp")
    expect(docs["Service"]["spec"]["ports"][0]["port"] == port, f"{where}: the service exposes the operator port")


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
compose_replicas()
kubernetes()
kubernetes_replicas()
systemd()
if problems:
    print("deploy files: " + "; ".join(problems), file=sys.stderr)
    sys.exit(1)
print("deploy files check out: compose.yaml, compose.replicas.yaml, k8s/switchboard.yaml, "
      "k8s/switchboard-replicas.yaml, switchboard.service")
