#!/usr/bin/env bash
# analyze_bench.sh: offline audit.log analysis, driftwatch vs laurel vs ausearch, same input.
#
#   driftwatch    driftwatch analyze --events LOG > /dev/null
#   laurel        laurel -c PRIVATE.toml < LOG   (JSON lines into a file in the temp dir)
#   ausearch-i    ausearch -i -if LOG > /dev/null      (interpreted, like driftwatch's output)
#   ausearch-raw  ausearch --raw -if LOG > /dev/null   (parse + group only, no interpretation)
#
# Each contender runs RUNS times in interleaved rounds (order rotated per round, so load
# from other work on the machine hits everyone alike); the table shows the median wall and
# CPU (user+sys) time and the peak RSS over all runs, measured by GNU time.
#
# Usage: bench/analyze_bench.sh [LOG]      LOG: a plain (uncompressed) RAW audit.log
#   Without LOG, builds one of >= MIN_MIB MiB by repeating the reference corpus with shifted
#   timestamps and serials (bench/make_big_log.py).
#   env: RUNS=3 MIN_MIB=60 DW=build/cli/driftwatch
#
# Offline only: nothing here talks to the kernel's audit subsystem or changes its settings.
set -euo pipefail

RUNS=${RUNS:-3}
MIN_MIB=${MIN_MIB:-60}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
DW=${DW:-$REPO/build/cli/driftwatch}
CORPUS=$REPO/../shared/corpus/audit-raw-k8s-api.log.xz
export PATH=$PATH:/usr/sbin:/sbin # laurel and ausearch live in sbin

# The harness the tests use: die, note, the temp dir removed at exit.
source "$REPO/tests/integration/harness.sh"
dw_harness dw-analyze-bench
TMP=$tmp

[[ -x $DW ]] || die "no $DW: build first (cmake --build build)"

# --- tools: install only what is missing --------------------------------------------------
[[ -x /usr/bin/time ]] || apt-get install -y time
# laurel and ausearch are unpacked from their .deb into the temp dir rather than installed:
# installing auditd starts the daemon (which loads rules and enables audit) wherever no
# policy-rc.d blocks it, and laurel's package activates itself as an auditd plugin.
unpack() { # unpack PKG: extract PKG's files under $TMP/root
    (cd "$TMP" && { apt-get download "$1" || { apt-get update && apt-get download "$1"; }; })
    dpkg-deb -x "$TMP/$1"_*.deb "$TMP/root"
}
LAUREL=$(command -v laurel || true)
if [[ -z $LAUREL ]]; then unpack laurel; LAUREL=$TMP/root/usr/sbin/laurel; fi
AUSEARCH=$(command -v ausearch || true)
if [[ -z $AUSEARCH ]]; then
    dpkg -s libauparse0 >/dev/null 2>&1 || apt-get install -y libauparse0 # library only
    unpack auditd
    AUSEARCH=$(find "$TMP/root" -name ausearch -type f | head -1)
fi

# --- input log -------------------------------------------------------------------------------
COPIES=
if [[ $# -ge 1 ]]; then
    LOG=$1
    [[ -f $LOG ]] || die "no such file: $LOG"
else
    [[ -f $CORPUS ]] || die "no corpus at $CORPUS"
    LOG=$TMP/big.log
    read -r COPIES _ < <(python3 "$HERE/make_big_log.py" "$CORPUS" "$LOG" "$MIN_MIB")
fi
BYTES=$(stat -c %s "$LOG")
LINES=$(wc -l <"$LOG") # also pulls the log into the page cache for every contender

# --- sanity: driftwatch sees every event (copies * events per copy) ------------------------
EVENTS=$("$DW" analyze --events "$LOG" 2>/dev/null | wc -l)
if [[ -n $COPIES ]]; then
    PER_COPY=$("$DW" analyze --events "$CORPUS" 2>/dev/null | wc -l)
    ((EVENTS == COPIES * PER_COPY)) ||
        die "driftwatch printed $EVENTS events, expected $COPIES copies x $PER_COPY"
fi
# ausearch's event separators give an independent count of all audit events (not only
# exec/chmod): laurel writes one JSON line per audit event, so it must match.
AUDIT_EVENTS=$("$AUSEARCH" -i -if "$LOG" | grep -c '^----' || true)

# --- laurel: private config --------------------------------------------------------------
# Only keys that matter offline. No `user`: the packaged config drops privileges to _laurel,
# which could not write into our 0700 temp dir. Huge `size`: the packaged 5 MB rotation with
# 10 generations would silently delete most of the output. Enrichment keeps laurel's
# defaults (pid, container, script), the counterpart of driftwatch's process-tree attribution.
mkdir "$TMP/laurel"
cat >"$TMP/laurel.toml" <<EOF
directory = "$TMP/laurel"
statusreport-period = 0
[auditlog]
file = "audit.jsonl"
size = 1000000000000
generations = 1
EOF

# --- timed runs ----------------------------------------------------------------------------
# run NAME STDIN CMD...: one run, stdout to /dev/null; appends "wall_s rss_kb cpu_s".
run() {
    local name=$1 in=$2
    shift 2
    /usr/bin/time -o "$TMP/time" -f '%e %M %U %S' "$@" <"$in" >/dev/null 2>"$TMP/err" ||
        die "$name failed: $(cat "$TMP/err")"
    awk '{ print $1, $2, $3 + $4 }' "$TMP/time" >>"$TMP/$name.runs"
}
contender() {
    case $1 in
    driftwatch) run "$1" /dev/null "$DW" analyze --events "$LOG" ;;
    laurel)
        rm -f "$TMP/laurel/"*
        run "$1" "$LOG" "$LAUREL" -c "$TMP/laurel.toml"
        # laurel's own "processed N lines 0 events" summary is no evidence: count its output.
        LAUREL_LINES=$(wc -l <"$TMP/laurel/audit.jsonl")
        ((LAUREL_LINES * 100 >= AUDIT_EVENTS * 99)) ||
            die "laurel wrote $LAUREL_LINES lines for $AUDIT_EVENTS audit events: $(cat "$TMP/err")"
        ;;
    ausearch-i) run "$1" /dev/null "$AUSEARCH" -i -if "$LOG" ;;
    ausearch-raw) run "$1" /dev/null "$AUSEARCH" --raw -if "$LOG" ;;
    esac
}
TOOLS=(driftwatch laurel ausearch-i ausearch-raw)
for ((r = 0; r < RUNS; r++)); do
    for ((i = 0; i < ${#TOOLS[@]}; i++)); do
        contender "${TOOLS[(i + r) % ${#TOOLS[@]}]}"
    done
done

# --- report ----------------------------------------------------------------------------------
declare -A WALL CPU RSS
# shellcheck disable=SC2046
for t in "${TOOLS[@]}"; do
    WALL[$t]=$(dw_median $(cut -d' ' -f1 "$TMP/$t.runs"))
    CPU[$t]=$(dw_median $(cut -d' ' -f3 "$TMP/$t.runs"))
    RSS[$t]=$(cut -d' ' -f2 "$TMP/$t.runs" | sort -n | tail -1)
done

printf '\nlog: %s\n  %s MB, %d lines, %d audit events, %d exec/chmod events' \
    "$LOG" "$(awk -v b="$BYTES" 'BEGIN { printf "%.1f", b / 1e6 }')" "$LINES" "$AUDIT_EVENTS" "$EVENTS"
[[ -z $COPIES ]] || printf ' (%d copies x %d)' "$COPIES" "$PER_COPY"
printf '\n  laurel wrote %d JSON lines; %d runs each, median times, max RSS\n\n' "$LAUREL_LINES" "$RUNS"
printf '%-13s %8s %8s %9s %13s\n' tool wall_s cpu_s MB/s peak_RSS_MiB
for t in "${TOOLS[@]}"; do
    awk -v t="$t" -v w="${WALL[$t]}" -v c="${CPU[$t]}" -v r="${RSS[$t]}" -v b="$BYTES" \
        'BEGIN { printf "%-13s %8.2f %8.2f %9.1f %13.1f\n", t, w, c, (w > 0 ? b / 1e6 / w : 0), r / 1024 }'
done

# ratio LABEL NUM DEN OP TARGET: NUM/DEN and whether it meets "OP TARGET".
ratio() {
    awk -v l="$1" -v n="$2" -v d="$3" -v op="$4" -v tg="$5" 'BEGIN {
        x = (d > 0 ? n / d : 0)
        ok = (op == ">=" ? x >= tg : op == ">" ? x > tg : x < tg)
        printf "  %-36s %7.2fx   target %s %s  %s\n", l, x, op, tg, (ok ? "met" : "MISSED") }'
}
echo
ratio "laurel / driftwatch (wall)" "${WALL[laurel]}" "${WALL[driftwatch]}" ">=" 10
ratio "laurel / driftwatch (cpu)" "${CPU[laurel]}" "${CPU[driftwatch]}" ">=" 10
ratio "ausearch -i / driftwatch (wall)" "${WALL[ausearch-i]}" "${WALL[driftwatch]}" ">" 1
ratio "ausearch --raw / driftwatch (wall)" "${WALL[ausearch-raw]}" "${WALL[driftwatch]}" ">" 1
ratio "driftwatch / laurel (peak RSS)" "${RSS[driftwatch]}" "${RSS[laurel]}" "<" 1
