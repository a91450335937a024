#!/bin/bash
# Node identity at the collector: the node name is the client certificate's first DNS SAN,
# else its CN, never an IP, URI or email SAN; a name with control characters or a space is
# refused (UNAUTHENTICATED, the reason logged escaped, with the peer's address). And
# --insecure is refused on a listening address that does not resolve to loopback only, and
# with it a Hello.node that is not an acceptable name (INVALID_ARGUMENT, logged with the peer).
# Certificates beyond make-certs.sh's (CN = DNS SAN = node) are made here with openssl,
# signed by the same CA. Usage: identity_test.sh BUILD_DIR
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
source "$src/tests/integration/harness.sh"
dw_build "${1:?usage: identity_test.sh BUILD_DIR}" collector loadgen dw
dw_harness dw_identity_test

certs=$tmp/certs
"$src/scripts/make-certs.sh" "$certs" plain-node >/dev/null

# client NAME SUBJECT [SAN]: a client certificate signed by the test CA.
client() {
  local name=$1 subj=$2 san=${3:-}
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$certs/$name.key" 2>/dev/null
  openssl req -new -key "$certs/$name.key" -subj "$subj" -out "$certs/$name.csr"
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=clientAuth"
    [[ -z $san ]] || echo "subjectAltName=$san"
  } >"$certs/$name.ext"
  openssl x509 -req -in "$certs/$name.csr" -CA "$certs/ca.crt" -CAkey "$certs/ca.key" \
    -CAcreateserial -days 2 -sha256 -extfile "$certs/$name.ext" -out "$certs/$name.crt" 2>/dev/null
}
esc=$(printf '\033')
client ip-only "/CN=cn-ip" "IP:10.9.8.7"
client uri-only "/CN=cn-uri" "URI:spiffe://example.org/ns/prod/sa/sensor"
client email-only "/CN=cn-email" "email:sensor@example.org"
client ip-uri-email "/CN=cn-many" "IP:10.9.8.7,URI:spiffe://example.org/x,email:a@example.org"
client dns "/CN=cn-dns" "DNS:dns-node"
client dns-after-ip "/CN=cn-mixed" \
  "IP:10.1.1.1,URI:spiffe://example.org/y,DNS:first-dns,DNS:second-dns"
client no-san "/CN=cn-only"
client cn-esc "/CN=evil${esc}[2J${esc}]0;pwned" "IP:10.9.8.7"
client cn-space "/CN=two words"
client dns-esc "/CN=cn-fallback" "DNS:bad${esc}[31mname,DNS:good-second"
client no-name "/O=driftwatch tests" "IP:10.9.8.7"

dw_collector_start c --listen 127.0.0.1:0 --metrics-address 127.0.0.1:0 --db "$tmp/c.db" \
  --tls-cert "$certs/collector.crt" --tls-key "$certs/collector.key" --client-ca "$certs/ca.crt"
target=127.0.0.1:$port

# run NAME: one simulated sensor with NAME's certificate; Hello.node is a decoy.
run() {
  "$loadgen" --target "$target" --ca "$certs/ca.crt" --cert "$certs/$1.crt" --key "$certs/$1.key" \
    --hello-node decoy --sensors 1 --events-per-sensor 5 --deadline-s 20 >"$tmp/$1.json" || true
}
accepted() {  # accepted CERT NODE
  run "$1"
  expect "$1: filed under $2" \
    "$(json "$tmp/$1.json" '(j["status"], j["welcome_nodes"], j["stored"])')" "({'OK': 1}, {'$2': 1}, 5)"
  expect "$1: events under $2" "$("$dw" events --db "$tmp/c.db" --node "$2" | wc -l)" 5
}
refused() {  # refused CERT LOG-PATTERN
  run "$1"
  expect "$1: refused" "$(json "$tmp/$1.json" '(j["status"], j["stored"])')" \
    "({'UNAUTHENTICATED': 1}, 0)"
  if grep -qF -- "$2" "$tmp/c.log"; then ok "$1: reason logged"; else fail "$1: no '$2' in the log"; fi
}

accepted plain-node plain-node      # make-certs.sh: CN = DNS SAN
accepted ip-only cn-ip              # IP SAN only: the CN, not 10.9.8.7
accepted uri-only cn-uri
accepted email-only cn-email
accepted ip-uri-email cn-many
accepted dns dns-node               # a DNS SAN wins over the CN
accepted dns-after-ip first-dns     # the first DNS SAN, after IP and URI SANs
accepted no-san cn-only
refused cn-esc 'CN (no DNS SAN) "evil\x1b[2J\x1b]0;pwned" contains a control character'
refused cn-space 'CN (no DNS SAN) "two words" contains a space'
refused dns-esc 'first DNS SAN "bad\x1b[31mname" contains a control character'
refused no-name "no DNS SAN and no CN"
grep -q "stream from ipv4:127.0.0.1:[0-9]*: no node name in the client certificate" "$tmp/c.log" &&
  ok "refusals name the peer" || fail "no refusal naming the peer in the log"
if grep -q "$esc" "$tmp/c.log"; then fail "raw ESC in the collector's log"; else
  ok "no raw ESC in the log"
fi
expect "nothing filed under the decoy Hello.node" \
  "$("$dw" events --db "$tmp/c.db" --node decoy | wc -l)" 0
expect "nothing filed under an IP" "$("$dw" events --db "$tmp/c.db" --node 10.9.8.7 | wc -l)" 0

# --insecure: on what the host resolves to, not its spelling.
insecure_refused() {  # insecure_refused LISTEN REASON
  local rc=0
  timeout 60 "$collector" --insecure --db "$tmp/i.db" --metrics-address 127.0.0.1:0 \
    --listen "$1" 2>"$tmp/i.err" || rc=$?
  if [[ $rc == 1 ]] && grep -q "not a loopback address: refused" "$tmp/i.err" &&
      grep -qF -- "$2" "$tmp/i.err"; then
    ok "--insecure --listen $1 refused ($2)"
  else
    fail "--insecure --listen $1: rc $rc: $(cat "$tmp/i.err")"
  fi
}
insecure_refused 127.example.com:0 "127.example.com "  # not resolved, or not to loopback
insecure_refused 127.0.0.1.invalid:0 "does not resolve"
insecure_refused 0.0.0.0:0 "0.0.0.0 is not a loopback address"
insecure_refused "[::]:0" ":: is not a loopback address"
insecure_refused :0 "listens on every interface"
for listen in localhost:0 127.0.0.2:0; do
  rm -f "$tmp/i.port" "$tmp/i.log"
  dw_start i "$collector" --insecure --db "$tmp/i.db" --metrics-address 127.0.0.1:0 --listen "$listen" \
    --port-file "$tmp/i.port"
  if dw_wait --while "$(dw_pid i)" 10 test -s "$tmp/i.port"; then ok "--insecure --listen $listen accepted"; else
    fail "--insecure --listen $listen: $(cat "$tmp/i.log")"
  fi
  dw_stop i || true
done

# --insecure: no certificate, so Hello.node names the node; it must pass the same check a
# certificate's name does, and a refusal names the peer.
dw_collector_start h --insecure --db "$tmp/h.db" --metrics-address 127.0.0.1:0 --listen 127.0.0.1:0
hello() {  # hello NAME OUT: one plaintext sensor saying Hello.node=NAME
  "$loadgen" --target "127.0.0.1:$port" --insecure --hello-node "$1" \
    --sensors 1 --events-per-sensor 5 --deadline-s 20 >"$tmp/$2.json" || true
}
hello_refused() {  # hello_refused NAME OUT LOG-PATTERN
  hello "$1" "$2"
  expect "--insecure Hello.node $2: refused" "$(json "$tmp/$2.json" '(j["status"], j["stored"])')" \
    "({'INVALID_ARGUMENT': 1}, 0)"
  if grep -qE -- "stream from ipv4:127\.0\.0\.1:[0-9]+: $3" "$tmp/h.log"; then
    ok "--insecure Hello.node $2: reason logged with the peer"
  else
    fail "--insecure Hello.node $2: no '$3' with the peer in the log: $(cat "$tmp/h.log")"
  fi
}
hello_refused "bad${esc}[2J" esc 'Hello\.node "bad\\x1b\[2J" contains a control character'
hello_refused "two words" space 'Hello\.node "two words" contains a space'
hello_refused "$(printf 'x%.0s' $(seq 300))" long 'Hello\.node "x{64}\.\.\." is longer than 253 bytes'
hello good-node good
expect "--insecure Hello.node good-node: accepted" \
  "$(json "$tmp/good.json" '(j["status"], j["welcome_nodes"], j["stored"])')" "({'OK': 1}, {'good-node': 1}, 5)"
if grep -q "$esc" "$tmp/h.log"; then fail "raw ESC in the insecure collector's log"; fi
dw_finish PASS
