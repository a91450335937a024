#!/usr/bin/env python3
"""Run a load command against a running driftwatch-collector and measure it end to end.

Used by bench/collector_ingest.sh. Starts COMMAND (dw-loadgen), samples the collector's
/metrics every INTERVAL seconds while it runs (detection lag gauge, events stored and
evaluated, the collector's RSS), then waits until detection has evaluated every stored event
(driftwatch_collector_detect_events_total >= sum of driftwatch_collector_events_stored_total
and driftwatch_collector_detect_lag_events == 0), at most --timeout seconds after the command
ends. Prints one JSON object: timings, samples' distributions, CPU and memory, alerts by rule.

usage: collector_watch.py --metrics HOST:PORT --pid PID --stdout FILE [--interval 0.1]
                          [--timeout 120] -- COMMAND...
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(base):
    """/metrics as {name: {labels tuple: value}}."""
    with urllib.request.urlopen(base + "/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        if not m:
            continue
        labels = tuple(sorted((k, bytes(v, "utf-8").decode("unicode_escape"))
                              for k, v in LABEL.findall(m.group(2) or "")))
        out.setdefault(m.group(1), {})[labels] = float(m.group(3))
    return out


def total(metrics, name):
    return sum(metrics.get(name, {}).values())


def proc_status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])  # kB
    return 0


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14 and 15)


def machine_busy_ticks():
    """Busy jiffies of all CPUs (user nice system irq softirq steal), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[0] + v[1] + v[2] + v[5] + v[6] + v[7]


def pct(values, p):
    """Nearest-rank percentile."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, -(-len(s) * p // 100) - 1))
    return s[int(k)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--metrics", required=True, help="HOST:PORT of the collector's metrics")
    ap.add_argument("--pid", type=int, required=True, help="the collector's pid")
    ap.add_argument("--stdout", required=True, help="file for COMMAND's standard output")
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("command", nargs="+")
    a = ap.parse_args()
    base = "http://" + a.metrics
    hz = os.sysconf("SC_CLK_TCK")

    samples = []  # (t, stored, evaluated, lag, rss_kb)

    def sample(t0):
        m = scrape(base)
        t = time.monotonic() - t0  # after the answer: never early
        s = (t, total(m, "driftwatch_collector_events_stored_total"),
             total(m, "driftwatch_collector_detect_events_total"),
             int(total(m, "driftwatch_collector_detect_lag_events")), proc_status(a.pid, "VmRSS"))
        return m, s

    cpu0, busy0, self0 = cpu_ticks(a.pid), machine_busy_ticks(), os.times()
    with open(a.stdout, "wb") as out:
        # The clock starts as the command is launched: the first event is sent a little later
        # (process start, TLS handshakes), so the end-to-end time errs long, never short.
        t0 = time.monotonic()
        p = subprocess.Popen(a.command, stdout=out)
        next_t = 0.0
        try:
            while p.poll() is None:
                _, s = sample(t0)
                samples.append(s)
                next_t += a.interval
                time.sleep(max(0.0, next_t - (time.monotonic() - t0)))
        except BaseException:
            p.kill()  # the collector stopped answering: no load left behind
            p.wait()
            raise
        load_rc = p.wait()
    t_load = time.monotonic() - t0

    # Load done: wait for detection to evaluate every stored event. Poll finer (the end time's
    # resolution), keep the distribution's samples at the same cadence as during the load.
    done_t = None
    m = None
    while True:
        m, s = sample(t0)
        if s[0] >= next_t:
            samples.append(s)
            next_t += a.interval
        if s[1] > 0 and s[2] >= s[1] and s[3] == 0:
            done_t = s[0]
            if samples[-1] is not s:
                samples.append(s)
            break
        if s[0] - t_load > a.timeout:
            break
        time.sleep(0.02)
    cpu1, busy1, self1 = cpu_ticks(a.pid), machine_busy_ticks(), os.times()
    final = s
    hwm_kb = proc_status(a.pid, "VmHWM")

    alerts = {dict(k).get("rule", ""): int(v)
              for k, v in m.get("driftwatch_collector_alerts_total", {}).items() if v}
    oversize = {"capped": 0, "refused": 0}  # events over --max-event-bytes, all nodes
    for k, v in m.get("driftwatch_collector_events_oversize_total", {}).items():
        action = dict(k).get("action", "")
        oversize[action] = oversize.get(action, 0) + int(v)
    with urllib.request.urlopen(base + "/status", timeout=5) as r:
        status = json.loads(r.read().decode())
    lags = [int(x[3]) for x in samples]
    rss = [x[4] for x in samples]
    print(json.dumps({
        "load_rc": load_rc,
        "load_s": round(t_load, 3),
        "done_s": round(done_t, 3) if done_t is not None else None,
        "evaluated_all": done_t is not None,
        "stored": int(final[1]),
        "evaluated": int(final[2]),
        "lag_final": int(final[3]),
        "status_detect": status.get("detect"),
        "samples": len(samples),
        "lag_p50": pct(lags, 50), "lag_p99": pct(lags, 99), "lag_max": max(lags) if lags else None,
        "rss_kb_p50": pct(rss, 50), "rss_kb_max": max(rss) if rss else None,
        "hwm_kb": hwm_kb,
        "cpu_s": (cpu1 - cpu0) / hz,
        # For telling a quiet machine from a busy one: every CPU's busy time over the same
        # window, and this watcher's own share (sampling and waiting).
        "machine_busy_s": (busy1 - busy0) / hz,
        "watcher_cpu_s": (self1.user + self1.system) - (self0.user + self0.system),
        "held_acks": int(total(m, "driftwatch_collector_detect_held_acks_total")),
        "not_evaluated": int(total(m, "driftwatch_collector_detect_not_evaluated_total")),
        "fed_events": int(total(m, "driftwatch_collector_detect_fed_events_total")),
        "feed_overflows": int(total(m, "driftwatch_collector_detect_feed_overflows_total")),
        "alerts": alerts,
        "oversize": oversize,
        "budget_waits": int(total(m, "driftwatch_collector_ingest_budget_waits_total")),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
