#!/usr/bin/env python3
"""Checks deploy/ (Kubernetes manifests) and systemd/ against each other and the binaries.

Usage: deploy_test.py REPO BUILD_DIR
- every manifest parses; objects are namespaced in `driftwatch`;
- the sensor DaemonSet runs with hostPID and hostNetwork, drops ALL capabilities and adds
  exactly the ones systemd/driftwatch-sensor.service keeps (same reasons, one list);
- every volumeMount names a volume; every ConfigMap/Secret/PVC a pod uses is defined;
  Service target ports exist on the selected pods; selectors match the pod labels;
- env values from Secrets and ConfigMaps name keys they define, `$(VAR)` in args names an env
  var of the container, config files mounted by subPath are keys of their ConfigMap;
- every flag a container passes is in its daemon's --help, and the daemon takes its args with
  the mounted config file (`--check-config`);
- probes name container ports; an HTTP probe of a pod off the host network reaches a metrics
  address that is not loopback;
- the sensors' `collector:` (and the commented alternatives) name a Service port in deploy/;
- a collector Deployment of several replicas shares PostgreSQL: its --db a postgresql:// URI
  from a Secret with no password in it, PGPASSWORD from a Secret, --lease-owner from the pod
  name, none of the SQLite-only settings, no volume for a database, a headless Service and a
  PodDisruptionBudget; started against a closed port, it fails to connect, not on a setting;
- the embedded config files are accepted by the daemons (`--check-config`), and so are the
  config files shipped in systemd/;
- `systemd-analyze verify` accepts the units (with ExecStart pointing at the build), also with
  each example drop-in of systemd/UNIT.d/ applied; the drop-in's collector, with the shipped
  collector.yaml and a postgresql:// db, fails to connect, not on a setting.
"""
import base64
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

binaries = {"sensor": os.path.join(build, "sensor", "driftwatch-sensor"),
            "collector": os.path.join(build, "collector", "driftwatch-collector")}
SQLITE_ONLY = ("retention-max-events", "retention-max-alerts", "sync-full")
# A closed port: libpq's connect is refused at once.
CLOSED_PG = "postgresql://driftwatch@127.0.0.1:1/driftwatch"


def run_briefly(argv):
    """Runs a daemon expected to exit at once; one still running after 10 s is killed."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
        return subprocess.CompletedProcess(argv, 0, "", "still running after 10 s: " + err)


def help_flags(binary):
    out = subprocess.run([binary, "--help"], capture_output=True, text=True).stdout
    flags = set()
    for line in out.splitlines():
        m = re.match(r"^\s+(-[\w-]+(?:,-[\w-]+)*)", line)
        if m:
            flags.update(f for f in m.group(1).split(",") if f.startswith("--"))
    return flags


flags_of = {d: help_flags(b) for d, b in binaries.items()}


def keys_of(kind, name):
    o = by_kind.get(kind, {}).get(name)
    if o is None:
        return None
    return set(o.get("data") or {}) | set(o.get("stringData") or {})


def value_of(kind, name, key):
    o = by_kind.get(kind, {}).get(name) or {}
    if key in (o.get("stringData") or {}):
        return o["stringData"][key]
    v = (o.get("data") or {}).get(key)
    return base64.b64decode(v).decode() if kind == "Secret" and v is not None else v


def password_in_uri(uri):
    # postgresql://user:password@host/... or ?password=...
    m = re.match(r"^postgres(?:ql)?://([^@/?]*)@", uri)
    return bool(m and ":" in m.group(1)) or bool(re.search(r"[?&]password=", uri))


def daemon_of(c):
    cmd = os.path.basename((c.get("command") or [""])[0])
    return {"driftwatch-sensor": "sensor", "driftwatch-collector": "collector"}.get(cmd)


def container_env(what, c):
    """The container's env as {name: (kind, value)}; checks the keys it takes exist."""
    env = {}
    for e in c.get("env", []):
        src = e.get("valueFrom", {})
        if "value" in e:
            env[e["name"]] = ("value", e["value"])
        elif "secretKeyRef" in src or "configMapKeyRef" in src:
            kind, ref = ("Secret", src["secretKeyRef"]) if "secretKeyRef" in src else ("ConfigMap", src["configMapKeyRef"])
            keys = keys_of(kind, ref["name"])
            if keys is None:
                fail(f"{what}: env {e['name']} from {kind} {ref['name']}, not defined")
            elif ref["key"] not in keys:
                fail(f"{what}: env {e['name']} from {kind} {ref['name']} key {ref['key']}, not in it")
            env[e["name"]] = (kind.lower(), value_of(kind, ref["name"], ref["key"]))
        elif "fieldRef" in src:
            env[e["name"]] = ("field", src["fieldRef"]["fieldPath"])
        else:
            env[e["name"]] = ("other", None)
    return env


# Config files mounted by subPath, as the daemon reads them: {(what, mountPath): text}.
mounted_files = {}
for what, tmpl, _ in pod_specs():
    spec = tmpl["spec"]
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    for v in vols.values():
        if "secret" in v:
            keys = keys_of("Secret", v["secret"]["secretName"]) or set()
            for it in v["secret"].get("items", []):
                if it["key"] not in keys:
                    fail(f"{what}: volume {v['name']} takes key {it['key']} of Secret {v['secret']['secretName']}, not in it")
    for c in spec["containers"]:
        for vm in c.get("volumeMounts", []):
            v = vols.get(vm["name"], {})
            if "subPath" in vm and "configMap" in v:
                cm = v["configMap"]["name"]
                if vm["subPath"] not in (keys_of("ConfigMap", cm) or set()):
                    fail(f"{what}: mount {vm['mountPath']} is key {vm['subPath']} of ConfigMap {cm}, not in it")
                else:
                    mounted_files[(what, vm["mountPath"])] = value_of("ConfigMap", cm, vm["subPath"])

# Each daemon container: env, args, probes; the args with the mounted config, run as the pod runs them.
tmp = tempfile.mkdtemp()
collectors = []  # (what, tmpl, replicas, container, env, args, config text)
try:
    for what, tmpl, _ in pod_specs():
        spec = tmpl["spec"]
        for c in spec["containers"]:
            env = container_env(what, c)
            daemon = daemon_of(c)
            args = list(c.get("args", []))
            for a in args:
                for var in re.findall(r"\$\((\w+)\)", a):
                    if var not in env:
                        fail(f"{what}: arg {a} names $({var}), not an env var of the container")
            if daemon is None:
                continue
            for a in args:
                if a.startswith("--") and a.split("=", 1)[0] not in flags_of[daemon]:
                    fail(f"{what}: arg {a}: no such flag in driftwatch-{daemon} --help")
            config_text, run = "", []
            for a in args:
                if a.startswith("--config="):
                    path = a.split("=", 1)[1]
                    config_text = mounted_files.get((what, path))
                    if config_text is None:
                        fail(f"{what}: --config {path} is no ConfigMap key mounted there")
                        config_text = ""
                    f = os.path.join(tmp, "args.yaml")
                    open(f, "w").write(config_text)
                    a = "--config=" + f

                def subst(m):
                    kind, val = env.get(m.group(1), ("other", None))
                    if kind == "field":
                        return "driftwatch-collector-pg-5d9c7-x2x7q" if val == "metadata.name" else "node-1"
                    return val if val else "x"
                run.append(re.sub(r"\$\((\w+)\)", subst, a))
            r = subprocess.run([binaries[daemon], *run, "--check-config"], capture_output=True, text=True)
            if r.returncode != 0:
                fail(f"{what}: driftwatch-{daemon} refuses its args {run}: {r.stderr.strip() or r.stdout.strip()}")
            conf = yaml.safe_load(config_text) or {}
            # Probes: container ports; the kubelet reaches the pod's address, not its loopback.
            ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                p = c.get(probe)
                if not p:
                    continue
                port = (p.get("httpGet") or p.get("tcpSocket") or {}).get("port")
                if isinstance(port, str) and port not in ports:
                    fail(f"{what}: {probe} on port {port}, not a container port name")
                port = ports.get(port, port)
                if "httpGet" in p and not spec.get("hostNetwork"):
                    metrics = str(conf.get("metrics-address", "127.0.0.1:9465" if daemon == "collector" else "127.0.0.1:9464"))
                    if metrics.rsplit(":", 1)[0] in ("127.0.0.1", "localhost", "[::1]"):
                        fail(f"{what}: {probe} over HTTP, but metrics-address {metrics} is loopback: the kubelet cannot reach it")
                    elif metrics.rsplit(":", 1)[1] != str(port):
                        fail(f"{what}: {probe} on port {port}, metrics-address is {metrics}")
            if daemon == "collector":
                replicas = by_kind["Deployment"][what.split("/", 1)[1]]["spec"].get("replicas", 1) if what.startswith("Deployment/") else 1
                collectors.append((what, tmpl, replicas, c, env, args, conf))
finally:
    shutil.rmtree(tmp)


def db_of(args, conf, env):
    """The collector's --db as the pod gets it, and where it comes from."""
    for a in args:
        if a.startswith("--db="):
            v = a.split("=", 1)[1]
            m = re.fullmatch(r"\$\((\w+)\)", v)
            if m:
                kind, val = env.get(m.group(1), ("other", None))
                return val or "", kind
            return v, "args"
    return str(conf.get("db", "/var/lib/driftwatch/collector.db")), "config"


for what, tmpl, replicas, c, env, args, conf in collectors:
    db, src = db_of(args, conf, env)
    if replicas <= 1 and not db.startswith("postgresql://"):
        continue
    # Several collectors: one PostgreSQL store, leases, no SQLite.
    if not db.startswith("postgresql://"):
        fail(f"{what}: {replicas} replicas on {db}: several collectors need a postgresql:// --db")
        continue
    if src != "secret":
        fail(f"{what}: --db from {src}, not from a Secret")
    if password_in_uri(db) or any("password" in a.lower() for a in args):
        fail(f"{what}: a password in the URI or the args")
    if env.get("PGPASSWORD", ("",))[0] != "secret":
        fail(f"{what}: PGPASSWORD not from a Secret")
    owner = [a for a in args if a.startswith("--lease-owner=")]
    owner_var = re.fullmatch(r"--lease-owner=\$\((\w+)\)", owner[0]) if owner else None
    if not owner_var or env.get(owner_var.group(1)) != ("field", "metadata.name"):
        fail(f"{what}: --lease-owner not the pod's name ($(VAR) of fieldRef metadata.name)")
    for k in SQLITE_ONLY:
        if k in conf or any(a.split("=", 1)[0] == "--" + k for a in args):
            fail(f"{what}: {k} is SQLite's: the collector refuses it on PostgreSQL")
    mounts = {vm["name"]: vm["mountPath"] for vm in c.get("volumeMounts", [])}
    for v in tmpl["spec"].get("volumes", []):
        if "persistentVolumeClaim" in v:
            fail(f"{what}: volume {v['name']} is a PVC: no database on disk with PostgreSQL")
    if conf.get("enroll-records") or any(a.startswith("--enroll-records") for a in args):
        fail(f"{what}: enroll-records on PostgreSQL (the records are in the database; refused)")
    labels = tmpl["metadata"]["labels"]
    selects = lambda sel: sel and all(labels.get(k) == v for k, v in sel.items())
    if not any(svc["spec"].get("clusterIP") == "None" and selects(svc["spec"]["selector"])
               for svc in by_kind.get("Service", {}).values()):
        fail(f"{what}: no headless Service (clusterIP: None) resolving to every collector")
    pdbs = [p for p in by_kind.get("PodDisruptionBudget", {}).values()
            if selects(p["spec"]["selector"].get("matchLabels"))]
    if not pdbs:
        fail(f"{what}: no PodDisruptionBudget")
    for p in pdbs:
        if not 1 <= p["spec"].get("minAvailable", 0) < replicas:
            fail(f"{what}: PodDisruptionBudget minAvailable {p['spec'].get('minAvailable')} with {replicas} replicas")
    # As the pod starts it, against a closed port: refused at connect, not on a setting.
    run = [binaries["collector"], "--insecure", "--listen", "127.0.0.1:0", "--metrics-address",
           "127.0.0.1:0", "--db", CLOSED_PG]
    for k, v in conf.items():
        if k.startswith(("tls-", "client-ca", "enroll-", "deny-list", "listen", "metrics-address")):
            continue
        run += [f"--{k}", str(v)] if not isinstance(v, bool) else ([f"--{k}"] if v else [])
    run += [a for a in args if a.startswith("--") and not a.startswith(("--config=", "--db="))]
    run = [re.sub(r"\$\(\w+\)", "driftwatch-collector-pg-0", a) for a in run]
    r = run_briefly(run)
    if r.returncode == 0 or "127.0.0.1" not in r.stderr or "SQLite's" in r.stderr:
        fail(f"{what}: on PostgreSQL, expected a refused connection, got rc {r.returncode}: {r.stderr.strip()}")

# Sensors reach a Service of deploy/ (and so do the commented alternatives).
services = {f"{n}.driftwatch.svc": {p["port"] for p in o["spec"]["ports"]} for n, o in by_kind.get("Service", {}).items()}
for cm in by_kind.get("ConfigMap", {}).values():
    text = (cm.get("data") or {}).get("sensor.yaml")
    if text is None:
        continue
    targets = re.findall(r"^\s*#?\s*collector:\s*(\S+)", text, re.M)
    if not targets:
        fail(f"ConfigMap/{cm['metadata']['name']}: sensor.yaml names no collector")
    for t in targets:
        for hp in t.split(","):
            host, _, port = hp.rpartition(":")
            if host not in services or not port.isdigit() or int(port) not in services[host]:
                fail(f"ConfigMap/{cm['metadata']['name']}: collector {hp} is no Service port in deploy/")

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
            # Each example drop-in, applied (systemd reads UNIT.d/ beside the unit).
            for dropin in sorted(glob.glob(unit_path + ".d/*.conf")):
                name = os.path.basename(unit_path) + ".d/" + os.path.basename(dropin)
                d = os.path.join(tmp, "dropin", os.path.basename(dropin))
                os.makedirs(os.path.join(d, os.path.basename(unit_path) + ".d"))
                open(os.path.join(d, os.path.basename(unit_path)), "w").write(text)
                dtext = open(dropin).read()
                for daemon, b in binaries.items():
                    dtext = dtext.replace(f"/usr/bin/driftwatch-{daemon}", b)
                open(os.path.join(d, name), "w").write(dtext)
                r = subprocess.run(["systemd-analyze", "verify", os.path.join(d, os.path.basename(unit_path))],
                                   capture_output=True, text=True)
                out = (r.stdout + r.stderr).strip()
                if r.returncode != 0 or out:
                    fail(f"systemd-analyze verify {name}: {out}")
    # The collector drop-ins' command with the shipped collector.yaml and a postgresql:// db
    # (as the drop-in says to configure it): refused at connect, not on a setting.
    for dropin in sorted(glob.glob(os.path.join(repo, "systemd", "driftwatch-collector.service.d", "*.conf"))):
        dtext = re.sub(r"\\\n\s*", " ", open(dropin).read())
        cmds = [l.split("=", 1)[1].split() for l in dtext.splitlines() if l.startswith("ExecStart=") and l.strip() != "ExecStart="]
        if not cmds:
            continue
        if "--db" in cmds[-1]:
            fail(f"{os.path.basename(dropin)}: ExecStart passes --db, which wins over the config file's db")
        elif "db: postgresql://" in open(dropin).read():
            args, skip = [], False
            for a in cmds[-1][1:]:
                if skip:
                    skip = False
                elif a in ("--config", "--tls-cert", "--tls-key", "--client-ca"):
                    skip = True
                else:
                    args.append(a)
            f = os.path.join(tmp, "pg-collector.yaml")
            conf = yaml.safe_load(open(os.path.join(repo, "systemd", "collector.yaml"))) or {}
            conf.update({"db": CLOSED_PG, "listen": "127.0.0.1:0", "metrics-address": "127.0.0.1:0",
                         "lease-owner": "collector-1"})
            open(f, "w").write(yaml.safe_dump(conf))
            args = [a.replace("/var/lib/driftwatch-collector", tmp) for a in args]
            r = run_briefly([binaries["collector"], "--config", f, "--insecure", *args])
            if r.returncode == 0 or "127.0.0.1" not in r.stderr or "SQLite's" in r.stderr:
                fail(f"{os.path.basename(dropin)} with systemd/collector.yaml on PostgreSQL: expected a "
                     f"refused connection, got rc {r.returncode}: {r.stderr.strip()}")
finally:
    shutil.rmtree(tmp)

for f in failures:
    print("FAIL:", f)
if failures:
    sys.exit(1)
print(f"ok: {len(objs)} manifests, capabilities {unit_caps}")
