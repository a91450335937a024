#!/bin/bash
# The whole test suite, as CI runs it (root, Debian 12, ../shared beside the checkout):
#   1. release build: unit tests, corpus acceptance, privileged live tests (serialized)
#   2. AddressSanitizer + UBSan build: unit tests and the corpus again
#   3. libFuzzer on the audit parser for a bounded time (DW_FUZZ_SECONDS, default 60)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
start=$SECONDS
fail=0

echo "== release build"
"$root/scripts/build.sh" "$root/build" >/dev/null
(cd "$root/build" && ctest --output-on-failure --timeout 900) || fail=1

echo "== sanitizer build (ASan + UBSan)"
"$root/scripts/build.sh" "$root/build-asan" -DDW_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
(cd "$root/build-asan" && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --output-on-failure -L 'unit|integration') || fail=1

echo "== fuzzing the audit parser"
"$root/scripts/build.sh" "$root/build-fuzz" -DDW_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fuzz_dir=$(mktemp -d)
if "$root/build-fuzz/fuzz/audit_parser_fuzz" -max_total_time="${DW_FUZZ_SECONDS:-60}" \
     -max_len=8192 -print_final_stats=1 "$fuzz_dir" "$root/fuzz/seeds" >"$fuzz_dir.log" 2>&1; then
  echo "fuzz: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$fuzz_dir.log"), no crash"
else
  tail -40 "$fuzz_dir.log"; echo "fuzz: FAILED"; fail=1
fi
rm -rf "$fuzz_dir" "$fuzz_dir.log"

echo "== test suite done in $((SECONDS - start)) s"
exit $fail
