#!/bin/bash
# Network events from audit, owner mode with --audit-network all: a process binds, listens,
# accepts and connects (IPv4, IPv6, a refused and a non-blocking connect, a unix socket);
# every call is one event with its address as Falco's fd.* fields name it, a Falco-style
# rule on fd.net fires, the sensor's own connections are not audited, and audit settings
# and rules are left as they were found. Usage: network_test.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/harness.sh"
dw_build "$1"
dw_harness dw-network
dw_audit_guard
[[ $(dw_audit_pid) == 0 ]] || die "an audit daemon holds the audit pid: owner mode cannot be tested here"

dw_sensor_start --audit-only --audit-mode owner --audit-network all --status-interval 1
grep -q "key=driftwatch" <(auditctl -l) || die "no sensor rules installed"
auditctl -l | grep -q -- "-S connect" || die "no connect rule: $(auditctl -l)"

# The workload: its pid and ports on stdout, as JSON.
python3 - >"$tmp/workload.json" <<'PY'
import errno, json, os, socket
out = {"pid": os.getpid()}
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.bind(("127.0.0.1", 0)); srv.listen(8)
out["port"] = srv.getsockname()[1]
cli = socket.create_connection(("127.0.0.1", out["port"]))
conn, peer = srv.accept()
out["client_port"] = peer[1]
conn.close(); cli.close()
closed = socket.socket(); closed.bind(("127.0.0.1", 0)); out["closed_port"] = closed.getsockname()[1]; closed.close()
try:
    socket.create_connection(("127.0.0.1", out["closed_port"]))
except ConnectionRefusedError:
    pass
nb = socket.socket(); nb.setblocking(False)
assert nb.connect_ex(("127.0.0.1", out["port"])) in (0, errno.EINPROGRESS)
nb.close()
try:  # a machine without IPv6 loopback skips this part (and says so)
    s6 = socket.socket(socket.AF_INET6); s6.bind(("::1", 0))
except OSError:
    s6 = None
if s6:
    s6.listen(1); out["port6"] = s6.getsockname()[1]
    c6 = socket.create_connection(("::1", out["port6"])); c6.close(); s6.close()
path = "/tmp/dw-net-%d.sock" % os.getpid()
u = socket.socket(socket.AF_UNIX); u.bind(path); u.listen(1)
uc = socket.socket(socket.AF_UNIX); uc.connect(path); uc.close(); u.close(); os.unlink(path)
out["unix"] = path
srv.close()
print(json.dumps(out))
PY
sleep 0.5  # let the last records cross the socket
sensor_pid=$(dw_pid sensor)
dw_stop sensor
"$dw" analyze --events "$tmp/capture" >"$tmp/events.jsonl"

python3 - "$tmp/workload.json" "$tmp/events.jsonl" "$sensor_pid" <<'PY'
import json, sys
w = json.load(open(sys.argv[1]))
evs = [json.loads(l) for l in open(sys.argv[2])]
net = [e for e in evs if e.get("evt.type") in ("connect", "accept", "accept4", "bind", "listen")]
mine = [e for e in net if e.get("proc.pid") == w["pid"]]
fails = []
def want(what, pred, n=1):
    got = [e for e in mine if pred(e)]
    if len(got) != n:
        fails.append("%s: %d events, want %d" % (what, len(got), n))
    else:
        print("ok: %s" % what)
p, p6 = w["port"], w.get("port6")
# Both IPv4 binds ask for an ephemeral port: the address as the call named it.
want("bind 127.0.0.1:0", lambda e: e["evt.type"] == "bind" and e.get("fd.name") == "127.0.0.1:0", 2)
want("listen", lambda e: e["evt.type"] == "listen" and e.get("evt.res") == "SUCCESS", 3 if p6 else 2)
want("blocking connect", lambda e: e["evt.type"] == "connect" and e.get("fd.sip") == "127.0.0.1" and e.get("fd.sport") == p and e.get("evt.res") == "SUCCESS")
want("accept of the client", lambda e: e["evt.type"] in ("accept", "accept4") and e.get("fd.cip") == "127.0.0.1" and e.get("fd.cport") == w["client_port"] and e.get("fd.l4proto") == "tcp")
want("refused connect", lambda e: e["evt.type"] == "connect" and e.get("fd.sport") == w["closed_port"] and e.get("evt.res") == "ECONNREFUSED")
want("non-blocking connect", lambda e: e["evt.type"] == "connect" and e.get("fd.sport") == p and e.get("evt.res") == "EINPROGRESS")
if p6:
    want("IPv6 connect", lambda e: e["evt.type"] == "connect" and e.get("fd.sip") == "::1" and e.get("fd.sport") == p6 and e.get("fd.type") == "ipv6")
else:
    print("skipped: IPv6 (no ::1 on this machine)")
want("unix connect", lambda e: e["evt.type"] == "connect" and e.get("fd.name") == w["unix"] and e.get("fd.typechar") == "u")
want("unix bind", lambda e: e["evt.type"] == "bind" and e.get("fd.name") == w["unix"])
own = [e for e in net if e.get("proc.pid") == int(sys.argv[3])]
if own:
    fails.append("the sensor's own calls audited: %d" % len(own))
if fails:
    print("FAIL: " + "; ".join(fails))
    for e in mine: print(json.dumps(e))
    sys.exit(1)
PY

# A Falco-style rule on the events: an outbound connect to the loopback network.
cat >"$tmp/net_rules.yaml" <<'YAML'
- list: loopback_nets
  items: ['"127.0.0.0/8"', '"::1"']
- rule: Loopback Connect
  desc: test rule
  condition: evt.type = connect and fd.snet in (loopback_nets) and evt.res in (SUCCESS, EINPROGRESS)
  output: connect to %fd.name by %proc.name (fd.sip=%fd.sip fd.sport=%fd.sport)
  priority: NOTICE
YAML
"$dw" analyze --no-shipped-rules --rules "$tmp/net_rules.yaml" "$tmp/capture" >"$tmp/alerts.jsonl" 2>"$tmp/analyze.err" || true
n=$(grep -c '"rule":"Loopback Connect"' "$tmp/alerts.jsonl" || true)
want=3  # the blocking and the non-blocking IPv4 connects, the IPv6 one
grep -q port6 "$tmp/workload.json" || want=2
((n >= want)) || { cat "$tmp/analyze.err"; die "Loopback Connect fired $n times, want >= $want"; }
echo "ok: a rule on fd.snet fired $n times"
dw_audit_same "$tmp" || die "audit state differs after the sensor stopped"
echo "audit state and rules as before"
