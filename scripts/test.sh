#!/bin/bash
# The whole test suite, as CI runs it (root, Debian 12, ../shared beside the checkout):
#   1. release build: unit tests, corpus acceptance, privileged live tests (serialized)
#   2. AddressSanitizer + UBSan build: unit tests and the corpus again
#   3. clang build of the daemons and tools with -Wthread-safety -Werror=thread-safety: an
#      access to a DW_GUARDED_BY member without its lock fails it (lib/base/mutex.h)
#   4. libFuzzer on each parser of outside input for a bounded time (DW_FUZZ_SECONDS for
#      all of them, default 180)
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

echo "== clang build: lock annotations checked (-Wthread-safety)"
# Compiled, not run (the release and sanitizer builds run the code); unoptimized, for speed.
"$root/scripts/build.sh" "$root/build-clang" -DDW_THREAD_SAFETY=ON -DDW_TESTS=OFF \
  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug >/dev/null

echo "== fuzzing: a libFuzzer target per parser of outside input (fuzz/)"
"$root/scripts/build.sh" "$root/build-fuzz" -DDW_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
# DW_FUZZ_SECONDS is the budget of the whole step, shared evenly (at least 10 s a target);
# DW_FUZZ_TARGETS picks some. A target X is build-fuzz/fuzz/X_fuzz, its seeds fuzz/seeds/X/,
# its dictionary fuzz/dicts/X.dict if there is one.
fuzz_targets=(${DW_FUZZ_TARGETS:-audit_parser sensor_message fanotify_fid mountinfo cgroup_path
  rule_condition rule_loader capture cri_info event_json})
fuzz_each=$(( ${DW_FUZZ_SECONDS:-180} / ${#fuzz_targets[@]} ))
((fuzz_each >= 10)) || fuzz_each=10
fuzz_dir=$(mktemp -d)
for t in "${fuzz_targets[@]}"; do
  mkdir "$fuzz_dir/$t"
  dict=()
  [[ -f $root/fuzz/dicts/$t.dict ]] && dict=(-dict="$root/fuzz/dicts/$t.dict")
  # -timeout: an input that takes 30 s is a hang, and fails like a crash. The outer timeout
  # bounds the fuzzer itself: after an out-of-memory report a fuzzer was seen to hang in its
  # exit path (and the suite with it) instead of failing.
  if (cd "$fuzz_dir" && timeout -k 10 $((fuzz_each + 90)) "$root/build-fuzz/fuzz/${t}_fuzz" -max_total_time="$fuzz_each" \
        -max_len=8192 -timeout=30 -print_final_stats=1 -artifact_prefix="$fuzz_dir/$t-" \
        "${dict[@]}" "$fuzz_dir/$t" "$root/fuzz/seeds/$t") >"$fuzz_dir/$t.log" 2>&1; then
    echo "fuzz $t: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$fuzz_dir/$t.log")," \
      "$(grep -o 'cov: [0-9]* ft: [0-9]*' "$fuzz_dir/$t.log" | tail -1)," \
      "$(grep -o 'exec/s: [0-9]*' "$fuzz_dir/$t.log" | tail -1), no crash"
  else
    tail -40 "$fuzz_dir/$t.log"
    mkdir -p "$root/build-fuzz/crashes"
    for a in "$fuzz_dir/$t"-*; do
      [[ -e $a ]] || continue
      cp "$a" "$root/build-fuzz/crashes/"
      echo "fuzz $t: input kept: build-fuzz/crashes/${a##*/}" \
        "(again: build-fuzz/fuzz/${t}_fuzz build-fuzz/crashes/${a##*/})"
    done
    echo "fuzz $t: FAILED"
    fail=1
  fi
done
rm -rf "$fuzz_dir"

echo "== test suite done in $((SECONDS - start)) s"
exit $fail
