#!/bin/bash
# `driftwatch rules test` end to end, unprivileged: the shipped example spec passes (exit 0);
# a wrong expectation fails (exit 1) with a table naming the rule; a malformed events line
# is bad input (exit 2) named by file:line; the spec-less --expect form.
# Usage: rules_test_cli_test.sh DRIFTWATCH_BINARY
set -euo pipefail
dw=$1
here=$(cd "$(dirname "$0")" && pwd)
source "$here/harness.sh"
dw_harness dw-rules-test
examples=$here/../../rules/tests

# Runs `driftwatch rules test ARGS...`: its output in $tmp/out, its status in $rc.
run() {
    rc=0
    "$dw" rules test "$@" >"$tmp/out" 2>&1 || rc=$?
    cat "$tmp/out"
}

run "$examples/shipped_rules_test.yaml"
expect "example spec: exit status" "$rc" 0
check "example spec: every case passed" grep -q '^5 passed, 0 failed$' "$tmp/out"

# A wrong count and a rule that must not fire but does.
cp "$examples/shipped_rules_events.jsonl" "$tmp/events.jsonl"
cat >"$tmp/wrong.yaml" <<'YAML'
events: events.jsonl
tests:
  - name: shell counted twice
    events: [1]
    expect:
      - rule: Container Shell Spawned
        count: 2
  - name: package manager said not to fire
    events: [2]
    no_alerts: [Package Manager Execution in Container]
  - name: still right
    events: [1]
    expect:
      - rule: Container Shell Spawned
YAML
run "$tmp/wrong.yaml"
expect "wrong expectation: exit status" "$rc" 1
check "FAIL names the case" grep -q '^FAIL shell counted twice$' "$tmp/out"
check "the diff names the rule, expected 2, actual 1, first evt.num 1" \
    grep -qE '^ +! Container Shell Spawned +2 +1  1$' "$tmp/out"
check "the unwanted rule is named with its count" \
    grep -qE '^ +! Package Manager Execution in Container \(no_alerts\) +0 +1  2$' "$tmp/out"
check "the right case still passes" grep -q '^PASS still right$' "$tmp/out"
check "summary" grep -q '^1 passed, 2 failed$' "$tmp/out"

# A malformed events line: bad input, named by file and line.
{ head -n 4 "$examples/shipped_rules_events.jsonl"; echo '{"evt.type":"execve","proc.pid":"x"}'; } \
    >"$tmp/events.jsonl"
run "$tmp/wrong.yaml"
expect "malformed events: exit status" "$rc" 2
check "the error names file:line and the field" \
    grep -qF "$tmp/events.jsonl:5: field 'proc.pid'" "$tmp/out"

# A spec error names its place; a misspelt rule is refused, not passed as "no alerts".
printf 'events: events.jsonl\ntests:\n  - name: x\n    expcet: []\n' >"$tmp/typo.yaml"
run "$tmp/typo.yaml"
expect "spec typo: exit status" "$rc" 2
check "the error names spec:line:column" grep -qF "$tmp/typo.yaml:4:5: unknown key 'expcet'" "$tmp/out"
printf 'events: events.jsonl\ntests:\n  - name: x\n    no_alerts: [Container Shel Spawned]\n' \
    >"$tmp/misspelt.yaml"
cp "$examples/shipped_rules_events.jsonl" "$tmp/events.jsonl"
run "$tmp/misspelt.yaml"
expect "misspelt rule: exit status" "$rc" 2
check "the misspelt rule is named" grep -qF "no rule 'Container Shel Spawned' is loaded" "$tmp/out"

# The spec-less form, with a rule file of one's own that is tested alongside the shipped.
cat >"$tmp/mine.yaml" <<'YAML'
- rule: Curl in container
  desc: curl wrote a file
  condition: open_write and container and proc.name = curl
  output: curl wrote %fd.name
  priority: NOTICE
YAML
run "$tmp/mine.yaml" --events "$tmp/events.jsonl" --expect "Curl in container" \
    --expect "Container Shell Spawned=1" --expect "Package Manager Execution in Container=1"
expect "--expect: exit status" "$rc" 0
run "$tmp/mine.yaml" --events "$tmp/events.jsonl" --expect "Curl in container=0"
expect "--expect wrong count: exit status" "$rc" 1
check "--expect diff names the rule" grep -qE '^ +! Curl in container +0 +1  3$' "$tmp/out"

dw_finish "rules test: spec, failures, bad input, --expect"
