#!/bin/bash
# Makes the certificates driftwatch-collector and its sensors authenticate each other with:
# a CA, a collector server certificate and one client certificate per node.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: scripts/make-certs.sh DIR [NODE...] [--bootstrap]

Writes into DIR (created if missing; existing files are kept, so more nodes can be added
later with the same CA):
  ca.crt ca.key                 the CA (keep ca.key offline)
  collector.crt collector.key   server certificate: SAN DNS:localhost, IP:127.0.0.1 and,
                                if DW_COLLECTOR_NAME is set, DNS:$DW_COLLECTOR_NAME
  NODE.crt NODE.key             one client certificate per node: CN and SAN DNS = NODE
                                (the collector files that sensor's events under NODE)
  bootstrap.crt bootstrap.key   with --bootstrap: a bootstrap certificate (subject
                                OU=driftwatch-bootstrap) for sensors to enroll with
                                (docs/node-identity.md); valid DW_BOOTSTRAP_DAYS (default 2)
                                days; made anew on every run (rotation)
Keys are mode 0600. Validity: DW_CERT_DAYS (default 825) days.

collector: driftwatch-collector --tls-cert DIR/collector.crt --tls-key DIR/collector.key \
             --client-ca DIR/ca.crt
sensor:    driftwatch-sensor --collector HOST:PORT --tls-ca DIR/ca.crt \
             --tls-cert DIR/NODE.crt --tls-key DIR/NODE.key
enrolling: driftwatch-collector ... --enroll-ca-cert DIR/ca.crt --enroll-ca-key DIR/ca.key \
             --enroll-allow ALLOW-LIST
           driftwatch-sensor --collector HOST:PORT --tls-ca DIR/ca.crt \
             --bootstrap-cert DIR/bootstrap.crt --bootstrap-key DIR/bootstrap.key
USAGE
}

if [[ $# -lt 1 || $1 == -h || $1 == --help ]]; then
  usage
  [[ $# -ge 1 ]] && exit 0 || exit 2
fi
dir=$1
shift
days=${DW_CERT_DAYS:-825}
command -v openssl >/dev/null || { echo "make-certs.sh: openssl not found" >&2; exit 1; }
mkdir -p "$dir"
umask 077

key() {  # key FILE: an EC P-256 key, 0600
  [[ -e $1 ]] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
  chmod 600 "$1"
}

# sign NAME SUBJECT EXTFILE-CONTENT
sign() {
  local name=$1 subj=$2 ext=$3
  [[ -e $dir/$name.crt ]] && { echo "kept $dir/$name.crt"; return; }
  key "$dir/$name.key"
  openssl req -new -key "$dir/$name.key" -subj "$subj" -out "$dir/$name.csr"
  printf '%s\n' "$ext" > "$dir/$name.ext"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -CAcreateserial -days "$days" -sha256 -extfile "$dir/$name.ext" -out "$dir/$name.crt" 2>/dev/null
  rm -f "$dir/$name.csr" "$dir/$name.ext"
  chmod 644 "$dir/$name.crt"
  echo "wrote $dir/$name.crt"
}

if [[ ! -e $dir/ca.crt ]]; then
  key "$dir/ca.key"
  openssl req -x509 -new -key "$dir/ca.key" -subj "/CN=driftwatch CA" -days "$days" -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$dir/ca.crt"
  chmod 644 "$dir/ca.crt"
  echo "wrote $dir/ca.crt"
fi

san="DNS:localhost,IP:127.0.0.1"
[[ -n ${DW_COLLECTOR_NAME:-} ]] && san+=",DNS:$DW_COLLECTOR_NAME"
sign collector "/CN=driftwatch-collector" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$san"

bootstrap=
nodes=()
for a in "$@"; do
  if [[ $a == --bootstrap ]]; then bootstrap=1; else nodes+=("$a"); fi
done

if [[ -n $bootstrap ]]; then
  # Shared by every sensor and short-lived: made anew each time, never kept.
  rm -f "$dir/bootstrap.crt" "$dir/bootstrap.key"
  days=${DW_BOOTSTRAP_DAYS:-2} sign bootstrap "/O=driftwatch/OU=driftwatch-bootstrap/CN=driftwatch-bootstrap" \
    "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
fi

for node in "${nodes[@]}"; do
  if [[ ! $node =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]]; then
    echo "make-certs.sh: '$node': not a DNS name" >&2
    exit 2
  fi
  sign "$node" "/CN=$node" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
subjectAltName=DNS:$node"
done
