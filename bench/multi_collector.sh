#!/bin/bash
# multi_collector.sh: ingest + detection throughput of the collector on SQLite and on the
# store several collectors share on PostgreSQL, side by side in one run (issue 17):
#   sqlite-1  one collector, a new SQLite file
#   pg-1      one collector on PostgreSQL
#   pg-2      two collectors on one PostgreSQL, each evaluating the nodes it leases; the
#             sensors split between them (25 with --node-prefix a- to one, 25 b- to the other)
# each fed the same load by dw-loadgen: 50 simulated sensors x EVENTS events (batches of 500
# or 256 KiB, as sensors cut them), every run ending in a package manager exec (--drift: one
# "Package Manager Execution in Container" alert per sensor, 50 expected). Plaintext
# (--insecure) on loopback as the integration tests, or mTLS with TLS=1 (certificates made
# by scripts/make-certs.sh). A private PostgreSQL (tests/integration/pg_env.sh), its
# database dropped and made again before each PostgreSQL configuration (and a CHECKPOINT,
# so that the last one's writes are not flushed on the next one's time).
#
# For each configuration, from the launch of dw-loadgen (the first event is sent a little
# later: the time errs long) until every stored event is evaluated:
#   wall s          PostgreSQL: SELECT sum(h.last_id - coalesce(c.id, 0)) FROM node_heads h
#                   LEFT JOIN detect_cursors c USING (node) is 0 once every load has been
#                   acked, polled every 20 ms over one psql session; SQLite: the collector's
#                   metrics, as bench/collector_ingest.sh (events stored = acked, detect
#                   events >= stored, detect lag 0)
#   events/s        events stored and evaluated / wall s
#   drift alerts    driftwatch_collector_alerts_total of the drift rule, all collectors
#                   (PostgreSQL: also the alerts table's distinct nodes)
#   collector us/ev utime+stime of the collector process(es) (/proc/PID/stat 14-15) over
#                   the wall time, per event
#   pg us/ev        the PostgreSQL server's CPU per event: the postmaster (DW_PG_PID) and
#                   all its children (backends, walwriter, checkpointer, autovacuum, ...):
#                   utime+stime, plus the postmaster's cutime+cstime (16-17: the backends
#                   that exited), read before and after. Includes the poller's session.
#   loadgen us/ev   dw-loadgen's CPU (rusage of the process(es))
#   other s         CPU time the rest of the machine took meanwhile (busy time of
#                   /proc/stat minus all the above): noise from outside the benchmark (the
#                   machine's use over a second before the runs is printed when >= 10%)
# then the ratios pg-1 / sqlite-1 and pg-2 / pg-1, and one {"bench": "multi_collector", ...}
# JSON line (bench/run). The machine here has 2 CPUs, which the collector(s), PostgreSQL and
# dw-loadgen share: the figures are what they are on it, as the output says.
#
# Usage (root):  bench/multi_collector.sh [BUILD_DIR]
#   env: EVENTS (per sensor, 20000), TLS=1 (mTLS instead of plaintext), LEASE_MS (10000,
#        the collectors' --lease-ms), EVAL_TIMEOUT_S (300: bound on the wait after the
#        load), CONFIGS ("sqlite-1 pg-1 pg-2"), KEEP=1 (keep the temporary directory)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
source "$src/tests/integration/harness.sh"
source "$src/tests/integration/pg_env.sh"
[[ $EUID -eq 0 ]] || { echo "multi_collector: must run as root (the server runs as postgres)" >&2; exit 1; }
dw_build "$(cd "${1:-$src/build}" && pwd)" collector loadgen
events=${EVENTS:-20000}
lease_ms=${LEASE_MS:-10000}
eval_timeout=${EVAL_TIMEOUT_S:-300}
configs=${CONFIGS:-sqlite-1 pg-1 pg-2}
sensors=50
drift_rule="Package Manager Execution in Container"
dw_harness dw_multi_bench
dw_pg_start "$tmp/pg"
uri=$DW_PG_URI

if [[ -n ${TLS:-} ]]; then
  nodes=()
  for ((i = 0; i < sensors; i++)); do nodes+=("sim-$i"); done
  for ((i = 0; i < sensors / 2; i++)); do nodes+=("a-$i" "b-$i"); done
  "$src/scripts/make-certs.sh" "$tmp/certs" "${nodes[@]}" >/dev/null
  c=$tmp/certs
  server_sec=(--tls-cert "$c/collector.crt" --tls-key "$c/collector.key" --client-ca "$c/ca.crt")
  client_sec=(--ca "$c/ca.crt" --cert-dir "$c")
  transport="mTLS"
else
  server_sec=(--insecure)
  client_sec=(--insecure)
  transport="plaintext (--insecure)"
fi

fresh_db() {  # the database driftwatch dropped and made again, nothing left to flush
  DW_PG_DB=postgres dw_pg_psql "DROP DATABASE IF EXISTS driftwatch WITH (FORCE)" >/dev/null
  DW_PG_DB=postgres dw_pg_psql "CREATE DATABASE driftwatch OWNER dw" >/dev/null
  DW_PG_DB=postgres dw_pg_psql "CHECKPOINT" >/dev/null
}

# run_config NAME: starts its collector(s), runs the load through the watcher (below), stops them.
run_config() {
  local name=$1 db names=() specs=() loads=() n
  case $name in
  sqlite-1) db=$tmp/$name.db; names=(c1) ;;
  pg-1) fresh_db; db=$uri; names=(c1) ;;
  pg-2) fresh_db; db=$uri; names=(ca cb) ;;
  *) die "unknown configuration $name" ;;
  esac
  for n in "${names[@]}"; do
    local pg_args=()
    [[ $name == pg-* ]] && pg_args=(--lease-owner "bench-$name-$n" --lease-ms "$lease_ms")
    dw_collector_start "$name-$n" --listen 127.0.0.1:0 --db "$db" --metrics-address 127.0.0.1:0 \
      "${server_sec[@]}" "${pg_args[@]}"
    [[ -n $mport ]] || die "$name-$n serves no metrics"
    specs+=("$(dw_pid "$name-$n"):$mport")
    local lg=("$loadgen" --target "127.0.0.1:$port" "${client_sec[@]}" --events-per-sensor "$events"
      --batch 500 --batch-bytes 262144 --drift)
    if ((${#names[@]} == 1)); then
      lg+=(--sensors "$sensors" --node-prefix sim-)
    else
      lg+=(--sensors $((sensors / 2)) --node-prefix "${n#c}-")
    fi
    loads+=("$(printf '%q ' "${lg[@]}")")
  done
  local psql_cmd=
  [[ $name == pg-* ]] && psql_cmd="setpriv --reuid postgres --regid postgres --init-groups -- $(dw_pg_bin)/psql -X -q -A -t -h $DW_PG_SOCK -p $DW_PG_PORT -U postgres -d driftwatch"
  python3 - "$name" "$DW_PG_PID" "$eval_timeout" "$psql_cmd" "$drift_rule" "$tmp/$name.json" \
    "$(IFS=,; echo "${specs[*]}")" "${loads[@]}" <<'PY' || die "$name: the load or its watcher failed"
import json, os, re, resource, shlex, subprocess, sys, time, urllib.request

name, pg_pid, timeout, psql_cmd, drift_rule, out_path, specs = sys.argv[1:8]
pg_pid, timeout = int(pg_pid), float(timeout)
loads = sys.argv[8:]
collectors = [(int(p), "http://127.0.0.1:" + m) for p, m in (s.split(":") for s in specs.split(","))]
hz = os.sysconf("SC_CLK_TCK")
LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')


def scrape(base):
    """/metrics as [(name, labels text, value)]."""
    with urllib.request.urlopen(base + "/metrics", timeout=5) as r:
        text = r.read().decode()
    return [(m.group(1), m.group(2) or "", float(m.group(3)))
            for m in map(LINE.match, text.splitlines()) if m and not m.group(0).startswith("#")]


def metric(name, labels_have=""):
    return sum(v for _, base in collectors for n, l, v in scrape(base) if n == name and labels_have in l)


def stat(pid):
    """/proc/PID/stat fields after the command: [0] is field 3 (state)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def ticks(pid):  # utime + stime (fields 14, 15)
    s = stat(pid)
    return int(s[11]) + int(s[12])


def pg_ticks():
    """The server's CPU: every child of the postmaster (fields 14-17: a child's own reaped
    children too), then the postmaster's own and its reaped children's (cutime, cstime)."""
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            s = stat(d)
        except OSError:
            continue  # gone meanwhile: in the postmaster's cutime
        if int(s[1]) == pg_pid:
            total += int(s[11]) + int(s[12]) + int(s[13]) + int(s[14])
    s = stat(pg_pid)
    return total + int(s[11]) + int(s[12]) + int(s[13]) + int(s[14])


def machine_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[0] + v[1] + v[2] + v[5] + v[6] + v[7]


class Poller:
    """One psql session: a query in, one line out (\\echo marks the end of each answer)."""
    def __init__(self, cmd):
        self.p = subprocess.Popen(shlex.split(cmd), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True, bufsize=1)

    def query(self, sql):
        self.p.stdin.write(sql + ";\n\\echo @@end\n")
        self.p.stdin.flush()
        lines = []
        while (line := self.p.stdout.readline()) != "@@end\n":
            if not line:
                raise RuntimeError("psql ended")
            lines.append(line.strip())
        return lines

    def close(self):
        self.p.stdin.close()
        self.p.wait()


LAG_SQL = ("SELECT coalesce(sum(h.last_id - coalesce(c.id, 0)), -1) || ' ' || coalesce(sum(h.last_id), 0) "
           "FROM node_heads h LEFT JOIN detect_cursors c USING (node)")
poller = Poller(psql_cmd) if psql_cmd else None
if poller:
    poller.query("SELECT 1")  # its backend started before the first reading

col0 = [ticks(p) for p, _ in collectors]
pg0, busy0, self0 = pg_ticks(), machine_busy(), os.times()
t0 = time.monotonic()
procs = []
for i, cmd in enumerate(loads):
    procs.append(subprocess.Popen(shlex.split(cmd), stdout=open(f"{out_path}.load{i}", "w")))
load_cpu, load_rc, load_end = 0.0, [], []
for p in procs:
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    load_rc.append(p.returncode)
    load_cpu += ru.ru_utime + ru.ru_stime
    load_end.append(time.monotonic() - t0)
t_load = time.monotonic() - t0
loads_out = [json.load(open(f"{out_path}.load{i}")) for i in range(len(procs))]
acked = sum(j["events_acked"] for j in loads_out)
sent = sum(j["events_sent"] for j in loads_out)

# Every load acked (stored): wait until detection has evaluated every stored event.
done_t, polls = None, 0
while True:
    polls += 1
    if poller:
        lag, stored = map(int, poller.query(LAG_SQL)[0].split())
        caught_up = lag == 0 and stored >= acked
    else:
        stored = metric("driftwatch_collector_events_stored_total")
        evaluated = metric("driftwatch_collector_detect_events_total")
        lag = int(metric("driftwatch_collector_detect_lag_events"))
        caught_up = stored >= acked and evaluated >= stored and lag == 0
    now = time.monotonic() - t0
    if caught_up:
        done_t = now
        break
    if now - t_load > timeout:
        break
    time.sleep(0.02)
col1 = [ticks(p) for p, _ in collectors]
pg1, busy1, self1 = pg_ticks(), machine_busy(), os.times()

evaluated = int(metric("driftwatch_collector_detect_events_total"))
stored_m = int(metric("driftwatch_collector_events_stored_total"))
drift = int(metric("driftwatch_collector_alerts_total", 'rule="%s"' % drift_rule))
owned = [int(sum(v for n, _, v in scrape(b) if n == "driftwatch_collector_detect_nodes_owned"))
         for _, b in collectors]
drift_nodes = None
if poller:
    drift_nodes = int(poller.query("SELECT count(DISTINCT node) FROM alerts WHERE rule = '%s'" % drift_rule)[0])
    poller.close()
col_cpu = sum(col1) / hz - sum(col0) / hz
pg_cpu = (pg1 - pg0) / hz
watcher = (self1.user + self1.system) - (self0.user + self0.system)
us = lambda cpu: round(cpu * 1e6 / stored_m, 2) if stored_m else None
out = {
    "config": name, "collectors": len(collectors), "events_sent": sent, "events_acked": acked,
    "events_stored": stored_m, "events_evaluated": evaluated,
    "evaluated_all": done_t is not None, "load_s": round(t_load, 3),
    "wall_s": round(done_t, 3) if done_t is not None else None,
    "events_per_s": round(stored_m / done_t) if done_t else None,
    "loadgen_rc": load_rc, "loadgen_end_s": [round(t, 2) for t in load_end],
    "drift_alerts": drift, "drift_alert_nodes": drift_nodes, "drift_alerts_expected": 50,
    "nodes_owned": owned if poller else None,
    "collector_cpu_s": round(col_cpu, 2), "collector_cpu_s_each": [round((b - a) / hz, 2) for a, b in zip(col0, col1)],
    "collector_cpu_us_per_event": us(col_cpu),
    "pg_cpu_s": round(pg_cpu, 2), "pg_cpu_us_per_event": us(pg_cpu),
    "cpu_us_per_event": us(col_cpu + pg_cpu),
    "loadgen_cpu_s": round(load_cpu, 2), "loadgen_cpu_us_per_event": us(load_cpu),
    "watcher_cpu_s": round(watcher, 2), "polls": polls,
    "other_cpu_s": round((busy1 - busy0) / hz - col_cpu - pg_cpu - load_cpu - watcher, 2),
}
out["ok"] = bool(out["evaluated_all"] and not any(load_rc) and acked == sent and drift == 50
                 and stored_m == acked and evaluated >= stored_m)
json.dump(out, open(out_path, "w"))
print(json.dumps(out))
PY
  for n in "${names[@]}"; do dw_stop "$name-$n" 30 || true; done
  rm -f "$tmp/$name.db"*
}

echo "multi_collector: 50 sensors x $events events, $transport, $(nproc) CPUs, PostgreSQL $(dw_pg_psql 'SHOW server_version')"
echo "caveat: $(nproc) CPUs on this machine: the collector(s), PostgreSQL and dw-loadgen share them; the figures are what they are on it"
busy=$(dw_busy_pct)
((busy < 10)) || echo "note: the machine was $busy% busy before the run (others' work): see \"other s\""
for name in $configs; do
  step "$name"
  run_config "$name"
done

python3 - "$tmp" "$configs" "$events" "$transport" "$(nproc)" <<'PY'
import json, sys
tmp, configs, events, transport, cpus = sys.argv[1], sys.argv[2].split(), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
r = {c: json.load(open("%s/%s.json" % (tmp, c))) for c in configs}
f = lambda v, fmt="%.2f": "-" if v is None else fmt % v
print()
print("  %-9s %3s %9s %8s %10s %7s %11s %9s %10s %10s %8s" % (
    "config", "col", "events", "wall s", "events/s", "drift", "coll us/ev", "pg us/ev", "total us/ev",
    "lgen us/ev", "other s"))
for c, d in r.items():
    drift = "%d/50" % d["drift_alerts"]
    print("  %-9s %3d %9d %8s %10s %7s %11s %9s %10s %10s %8s%s" % (
        c, d["collectors"], d["events_stored"], f(d["wall_s"]), f(d["events_per_s"], "%.0f"), drift,
        f(d["collector_cpu_us_per_event"]), f(d["pg_cpu_us_per_event"]), f(d["cpu_us_per_event"]),
        f(d["loadgen_cpu_us_per_event"]), f(d["other_cpu_s"]),
        "" if d["ok"] else "  NOT OK (see its JSON)"))
for c, d in r.items():
    if d["nodes_owned"] is not None:
        print("  %s: nodes owned at the end %s, collector CPU s %s, drift alerts in the table on %s nodes, "
              "loads acked at %s s" % (c, "+".join(map(str, d["nodes_owned"])), d["collector_cpu_s_each"],
                                       d["drift_alert_nodes"], d["loadgen_end_s"]))
ratios = {}
def ratio(a, b, what):
    if a in r and b in r and r[a]["events_per_s"] and r[b]["events_per_s"]:
        x, y = r[a], r[b]
        ratios["%s/%s" % (a, b)] = q = {
            "events_per_s": round(x["events_per_s"] / y["events_per_s"], 3),
            "collector_cpu_per_event": round(x["collector_cpu_us_per_event"] / y["collector_cpu_us_per_event"], 3),
            "total_cpu_per_event": round(x["cpu_us_per_event"] / y["cpu_us_per_event"], 3),
        }
        print("  %s: events/s %.2fx, collector CPU/event %.2fx, collector+PostgreSQL CPU/event %.2fx" % (
            what, q["events_per_s"], q["collector_cpu_per_event"], q["total_cpu_per_event"]))
print()
ratio("pg-1", "sqlite-1", "pg-1 vs sqlite-1")
ratio("pg-2", "pg-1", "pg-2 vs pg-1    ")
print("  caveat: %d CPUs: the collector(s), PostgreSQL and dw-loadgen compete for them (pg-2: two "
      "collectors, PostgreSQL and two loadgens on %d CPUs)" % (cpus, cpus))
print(json.dumps({"bench": "multi_collector", "events_per_sensor": events, "sensors": 50,
                  "transport": transport, "cpus": cpus, "configs": r, "ratios": ratios}))
sys.exit(0 if all(d["ok"] for d in r.values()) else 1)
PY
