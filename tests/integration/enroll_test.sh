#!/bin/bash
# Node enrollment and revocation (docs/node-identity.md), with the real collector and real
# sensors. The sensors run with audit, fanotify and the CRI off (status events every 0.3 s
# are their events), so the test leaves no kernel state behind and needs no lock.
#   - a sensor with only a bootstrap certificate makes its key, enrolls as its node, stores
#     node.key/node.crt 0600 in --node-cert-dir, and its events are filed under its name;
#   - the bootstrap certificate cannot open the ingest stream;
#   - a name off the allow list, and a second bootstrap enrollment of an enrolled name, are
#     refused with a reason naming the peer, and counted;
#   - the node certificate (30 s) is renewed with a new key before it expires, the stream
#     moves to it, and events keep flowing;
#   - `node NAME` on the deny list + SIGHUP ends the node's live stream, refuses its next
#     streams and its re-enrollment; taken off the list, it comes back;
#   - in the end every event of the sensor is stored exactly once (sequence numbers 1..N
#     without a gap, nothing left in the spool).
# Usage: enroll_test.sh BUILD_DIR
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
source "$src/tests/integration/harness.sh"
dw_build "${1:?usage: enroll_test.sh BUILD_DIR}" collector sensor loadgen dw
dw_harness dw_enroll_test

certs=$tmp/certs
DW_BOOTSTRAP_DAYS=1 "$src/scripts/make-certs.sh" "$certs" --bootstrap >/dev/null
check "the bootstrap certificate carries the bootstrap OU" \
  grep -q "OU *= *driftwatch-bootstrap" <(openssl x509 -in "$certs/bootstrap.crt" -noout -subject)
printf '# nodes that may enroll\nenroll-node-*\n' >"$tmp/allow"
: >"$tmp/deny"

dw_collector_start c --listen 127.0.0.1:0 --metrics-address 127.0.0.1:0 --db "$tmp/c.db" \
  --tls-cert "$certs/collector.crt" --tls-key "$certs/collector.key" --client-ca "$certs/ca.crt" \
  --enroll-ca-cert "$certs/ca.crt" --enroll-ca-key "$certs/ca.key" --enroll-allow "$tmp/allow" \
  --deny-list "$tmp/deny" --enroll-validity 30s
target=localhost:$port

# sensor NAME NODE [ARGS...]: a sensor that enrolls as NODE with the bootstrap certificate.
sensor() {
  local name=$1 node=$2
  shift 2
  dw_start "$name" "$sensor" --audit-mode off --fanotify-mode off --no-cri --sensitive-reads off \
    --status-interval 0.3 --metrics-address "" --node "$node" --collector "$target" \
    --tls-ca "$certs/ca.crt" --bootstrap-cert "$certs/bootstrap.crt" \
    --bootstrap-key "$certs/bootstrap.key" --node-cert-dir "$tmp/$name.id" \
    --spool-dir "$tmp/$name.spool" "$@"
}
stored() {  # stored NODE: events stored under NODE
  "$dw" events --db "$tmp/c.db" --node "$1" | wc -l
}
more_than() { (($(stored "$1") > $2)); }  # more_than NODE N
# seqs NODE: "ok N" when NODE's stored events are sequence numbers 1..N of one sensor run,
# each once; else what is wrong.
seqs() {
  python3 - "$tmp/c.db" "$1" <<'PY'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
rows = db.execute("SELECT r.sensor_start_ns, e.seq FROM events e JOIN runs r USING(run_id) "
                  "WHERE r.node = ?", (sys.argv[2],)).fetchall()
runs = {r[0] for r in rows}
s = sorted(r[1] for r in rows)
if len(runs) != 1:
    print(f"{len(runs)} sensor runs")
elif len(s) != len(set(s)):
    print(f"duplicates: {len(s) - len(set(s))}")
elif s != list(range(1, len(s) + 1)):
    missing = sorted(set(range(1, s[-1] + 1)) - set(s))
    print(f"gaps: {missing[:10]} (first of {len(missing)}; {len(s)} stored, max {s[-1]})")
else:
    print(f"ok {len(s)}")
PY
}

step "enrollment with the bootstrap certificate"
sensor s1 enroll-node-1
dw_wait_log s1 "node identity: enrolled as node enroll-node-1" 1 20 || die "s1 did not enroll"
dw_wait_log s1 "connected to collector .* as node enroll-node-1" 1 20 || die "s1 did not connect"
expect "node.key is 0600" "$(stat -c %a "$tmp/s1.id/node.key")" 600
expect "node.crt is 0600" "$(stat -c %a "$tmp/s1.id/node.crt")" 600
expect "the identity directory is 0700" "$(stat -c %a "$tmp/s1.id")" 700
subject=$(openssl x509 -in "$tmp/s1.id/node.crt" -noout -subject -ext subjectAltName 2>/dev/null)
check "the certificate's CN and DNS SAN are the node's: $subject" \
  grep -q "CN *= *enroll-node-1" <<<"$subject"
check "the certificate's DNS SAN is the node's" grep -q "DNS:enroll-node-1" <<<"$subject"
check "the certificate is the key's" cmp -s \
  <(openssl x509 -in "$tmp/s1.id/node.crt" -noout -pubkey) \
  <(openssl pkey -in "$tmp/s1.id/node.key" -pubout)
check "the certificate verifies against the CA" \
  openssl verify -CAfile "$certs/ca.crt" -purpose sslclient "$tmp/s1.id/node.crt"
check "the collector logged the enrollment with the peer" \
  grep -q "enrolled node enroll-node-1 from ipv[46]:.*bootstrap certificate" "$tmp/c.log"
serial1=$(openssl x509 -in "$tmp/s1.id/node.crt" -noout -serial)
key1=$(md5sum <"$tmp/s1.id/node.key")
dw_wait 20 more_than enroll-node-1 4 || fail "no events filed under enroll-node-1"
ok "events filed under enroll-node-1: $(stored enroll-node-1)"
expect "nothing filed under the bootstrap certificate's name" "$(stored driftwatch-bootstrap)" 0
expect "bootstrap enrollments counted" "$(metric driftwatch_collector_enrollments_total 'kind="bootstrap"')" 1

step "the bootstrap certificate cannot stream events"
"$loadgen" --target "127.0.0.1:$port" --ca "$certs/ca.crt" --cert "$certs/bootstrap.crt" \
  --key "$certs/bootstrap.key" --sensors 1 --events-per-sensor 5 --deadline-s 20 \
  >"$tmp/boot.json" || true
expect "bootstrap ingest refused" "$(json "$tmp/boot.json" '(j["status"], j["stored"])')" \
  "({'UNAUTHENTICATED': 1}, 0)"
check "the refusal names the peer and the reason" grep -q \
  "stream from ipv4:127.0.0.1:[0-9]*: client certificate .*driftwatch-bootstrap.* is a bootstrap credential" \
  "$tmp/c.log"
expect "bootstrap streams counted" \
  "$(metric driftwatch_collector_streams_refused_total 'reason="bootstrap_credential"')" 1

step "names off the allow list, and a second enrollment of an enrolled name"
sensor s2 other-node
dw_wait_log c 'enroll of node "other-node" from ipv[46]:.* refused (not_approved): node other-node is not on the enrollment allow list' 1 20 ||
  fail "no not_approved refusal in the collector's log"
dw_wait_log s2 "enroll refused: 7 node other-node is not on the enrollment allow list" 1 20 ||
  fail "the sensor did not say why it was refused"
sensor s3 enroll-node-1
dw_wait_log c 'enroll of node "enroll-node-1" .* refused (already_enrolled)' 1 20 ||
  fail "a second bootstrap enrollment of enroll-node-1 was not refused"
dw_stop s2
dw_stop s3
check "refusals counted: not_approved" \
  test "$(metric driftwatch_collector_enroll_refused_total 'reason="not_approved"')" -ge 1
check "refusals counted: already_enrolled" \
  test "$(metric driftwatch_collector_enroll_refused_total 'reason="already_enrolled"')" -ge 1
expect "nothing filed under other-node" "$(stored other-node)" 0

step "renewal before expiry"
dw_wait_log s1 "node identity: renewed as node enroll-node-1" 1 40 || die "s1 did not renew"
dw_wait_log s1 "reconnecting with the renewed certificate" 1 10 || fail "the stream did not move to the new certificate"
dw_wait_log s1 "connected to collector .* as node enroll-node-1" 2 20 || die "s1 did not reconnect"
serial2=$(openssl x509 -in "$tmp/s1.id/node.crt" -noout -serial)
[[ $serial1 != "$serial2" ]] && ok "a new certificate ($serial1 -> $serial2)" || fail "same serial after renewal"
[[ $key1 != "$(md5sum <"$tmp/s1.id/node.key")" ]] && ok "a new key" || fail "same key after renewal"
check "renewals counted" test "$(metric driftwatch_collector_enrollments_total 'kind="renewal"')" -ge 1
n=$(stored enroll-node-1)
dw_wait 10 more_than enroll-node-1 $((n + 5)) || fail "events stopped after the renewal"
expect "no loss or duplicate across the renewal" "$(seqs enroll-node-1 | cut -d' ' -f1)" ok
expect "no stream failure at the switch" "$(grep -c "retrying in" "$tmp/s1.log" || true)" 0

step "revocation"
echo "node enroll-node-1" >>"$tmp/deny"
kill -HUP "$(dw_pid c)"
dw_wait_log c "SIGHUP: deny list: 1 entries.*; 1 live streams ended as revoked" 1 10 ||
  fail "the live stream of enroll-node-1 was not ended"
dw_wait_log c "stream from ipv[46]:.*: revoked: node enroll-node-1 is on the deny list" 2 20 ||
  fail "enroll-node-1's new streams are not refused as revoked"
check "revoked streams counted" \
  test "$(metric driftwatch_collector_streams_refused_total 'reason="revoked"')" -ge 1
expect "the live stream ended counted" "$(metric driftwatch_collector_streams_revoked_total)" 1
n=$(stored enroll-node-1)
sleep 2
expect "nothing stored while revoked" "$(stored enroll-node-1)" "$n"
sensor s4 enroll-node-1
dw_wait_log c 'enroll of node "enroll-node-1" .* refused (revoked): revoked: node enroll-node-1 is on the deny list' 1 20 ||
  fail "a revoked node re-enrolled"
dw_stop s4
check "revoked enrollments counted" \
  test "$(metric driftwatch_collector_enroll_refused_total 'reason="revoked"')" -ge 1

step "off the deny list again: the node's spool catches up"
: >"$tmp/deny"
kill -HUP "$(dw_pid c)"
dw_wait_log c "SIGHUP: deny list: 0 entries" 1 10 || fail "no reload"
c0=$(grep -c "connected to collector" "$tmp/s1.log")
dw_wait_log s1 "connected to collector" $((c0 + 1)) 60 || die "s1 did not come back"
sleep 1
dw_stop s1 20
check "the sensor left nothing in its spool" grep -q "events acknowledged, 0 left in the spool" "$tmp/s1.log"
r=$(seqs enroll-node-1)
expect "every event of the sensor stored once ($r)" "${r%% *}" ok
expect "no raw ESC in the collector's log" "$(grep -c $'\033' "$tmp/c.log" || true)" 0
dw_finish PASS
