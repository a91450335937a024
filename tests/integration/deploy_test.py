#!/usr/bin/env python3
"""Checks deploy/ (Kubernetes manifests) and systemd/ against each other and the binaries.

Usage: deploy_test.py REPO BUILD_DIR
- every manifest parses; objects are namespaced in `driftwatch`;
- the sensor DaemonSet runs with hostPID and hostNetwork, drops ALL capabilities and adds
  exactly the ones systemd/driftwatch-sensor.service keeps (same reasons, one list);
- every volumeMount names a volume; every ConfigMap/Secret/PVC a pod uses is defined;
  Service target ports exist on the selected pods; selectors match the pod labels;
- the embedded config files are accepted by the daemons (`--check-config`), and so are the
  config files shipped in systemd/;
- `systemd-analyze verify` accepts the units (with ExecStart pointing at the build).
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

repo, build = sys.argv[1], sys.argv[2]
failures = []


def fail(msg):
    failures.append(msg)


objs = []
for path in sorted(glob.glob(os.path.join(repo, "deploy", "*.yaml"))):
    try:
        for doc in yaml.safe_load_all(open(path)):
            if doc:
                objs.append((os.path.basename(path), doc))
    except yaml.YAMLError as e:
        fail(f"{path}: {e}")

by_kind = {}
for f, o in objs:
    for k in ("apiVersion", "kind", "metadata"):
        if k not in o:
            fail(f"{f}: object without {k}")
    by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
    if o["kind"] != "Namespace" and o["metadata"].get("namespace") != "driftwatch":
        fail(f"{f}: {o['kind']}/{o['metadata']['name']} not in namespace driftwatch")

for kind in ("Namespace", "DaemonSet", "Deployment", "Service", "ConfigMap", "Secret",
             "PersistentVolumeClaim"):
    if kind not in by_kind:
        fail(f"no {kind} in deploy/")

# The rules ConfigMap is the shipped rules, as deploy/render-rules.sh writes it.
rules_cm = by_kind.get("ConfigMap", {}).get("driftwatch-rules")
shipped = {os.path.basename(p): open(p).read() for p in glob.glob(os.path.join(repo, "rules", "*.yaml"))}
if not rules_cm or rules_cm.get("data") != shipped:
    fail("deploy/rules-configmap.yaml differs from rules/*.yaml: run deploy/render-rules.sh")

# Capabilities: the DaemonSet's and the unit's lists are the same.
unit = open(os.path.join(repo, "systemd", "driftwatch-sensor.service")).read()
m = re.search(r"^CapabilityBoundingSet=(.*)$", unit, re.M)
unit_caps = sorted(c.removeprefix("CAP_") for c in m.group(1).split()) if m else []
ds = by_kind.get("DaemonSet", {}).get("driftwatch-sensor")
if ds:
    spec = ds["spec"]["template"]["spec"]
    if not spec.get("hostPID") or not spec.get("hostNetwork"):
        fail("sensor DaemonSet needs hostPID and hostNetwork")
    c = spec["containers"][0]
    caps = c["securityContext"]["capabilities"]
    if caps.get("drop") != ["ALL"]:
        fail(f"sensor capabilities drop {caps.get('drop')}, want [ALL]")
    if sorted(caps.get("add", [])) != unit_caps:
        fail(f"sensor capabilities {sorted(caps.get('add', []))} != unit's {unit_caps}")
    if c["securityContext"].get("privileged"):
        fail("sensor must not be privileged: capabilities only")
else:
    fail("no DaemonSet driftwatch-sensor")


def pod_specs():
    for kind in ("DaemonSet", "Deployment"):
        for name, o in by_kind.get(kind, {}).items():
            yield f"{kind}/{name}", o["spec"]["template"], o["spec"]["selector"]["matchLabels"]


for what, tmpl, selector in pod_specs():
    spec = tmpl["spec"]
    labels = tmpl["metadata"]["labels"]
    if any(labels.get(k) != v for k, v in selector.items()):
        fail(f"{what}: selector {selector} does not match pod labels {labels}")
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    for c in spec["containers"]:
        for vm in c.get("volumeMounts", []):
            if vm["name"] not in vols:
                fail(f"{what}: mount of undefined volume {vm['name']}")
    for v in vols.values():
        if "configMap" in v and v["configMap"]["name"] not in by_kind.get("ConfigMap", {}):
            fail(f"{what}: ConfigMap {v['configMap']['name']} not defined")
        if "secret" in v and v["secret"]["secretName"] not in by_kind.get("Secret", {}):
            fail(f"{what}: Secret {v['secret']['secretName']} not defined")
        if "persistentVolumeClaim" in v and v["persistentVolumeClaim"]["claimName"] not in by_kind.get("PersistentVolumeClaim", {}):
            fail(f"{what}: PVC {v['persistentVolumeClaim']['claimName']} not defined")

for name, svc in by_kind.get("Service", {}).items():
    sel = svc["spec"]["selector"]
    pods = [(w, t) for w, t, _ in pod_specs() if all(t["metadata"]["labels"].get(k) == v for k, v in sel.items())]
    if not pods:
        fail(f"Service/{name}: selects no pod")
    for p in svc["spec"]["ports"]:
        names = {cp.get("name") for _, t in pods for c in t["spec"]["containers"] for cp in c.get("ports", [])}
        if isinstance(p["targetPort"], str) and p["targetPort"] not in names:
            fail(f"Service/{name}: targetPort {p['targetPort']} not a container port name")

# The config files the daemons get are accepted by them.
tmp = tempfile.mkdtemp()
try:
    checks = []
    for cm in by_kind.get("ConfigMap", {}).values():
        for key, text in cm.get("data", {}).items():
            if key == "sensor.yaml":
                checks.append(("sensor", key, text))
            if key == "collector.yaml":
                checks.append(("collector", key, text))
    for daemon in ("sensor", "collector"):
        shipped = os.path.join(repo, "systemd", f"{daemon}.yaml")
        if os.path.exists(shipped):
            checks.append((daemon, "systemd/" + os.path.basename(shipped), open(shipped).read()))
    binaries = {"sensor": os.path.join(build, "sensor", "driftwatch-sensor"),
                "collector": os.path.join(build, "collector", "driftwatch-collector")}
    for daemon, what, text in checks:
        f = os.path.join(tmp, "c.yaml")
        open(f, "w").write(text)
        r = subprocess.run([binaries[daemon], "--config", f, "--check-config"], capture_output=True, text=True)
        if r.returncode != 0:
            fail(f"{daemon} refuses {what}: {r.stderr.strip() or r.stdout.strip()}")
    # systemd-analyze verify, with ExecStart pointing at the built binaries.
    if shutil.which("systemd-analyze"):
        for unit_path in glob.glob(os.path.join(repo, "systemd", "*.service")):
            text = open(unit_path).read()
            for daemon, b in binaries.items():
                text = text.replace(f"/usr/bin/driftwatch-{daemon}", b)
            u = os.path.join(tmp, os.path.basename(unit_path))
            open(u, "w").write(text)
            r = subprocess.run(["systemd-analyze", "verify", u], capture_output=True, text=True)
            out = (r.stdout + r.stderr).strip()
            if r.returncode != 0 or out:
                fail(f"systemd-analyze verify {os.path.basename(unit_path)}: {out}")
finally:
    shutil.rmtree(tmp)

for f in failures:
    print("FAIL:", f)
if failures:
    sys.exit(1)
print(f"ok: {len(objs)} manifests, capabilities {unit_caps}")
