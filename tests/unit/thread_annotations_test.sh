#!/bin/bash
# lib/base/mutex.h's annotations reach clang's analysis: thread_annotations_check.cc compiles clean
# as it is, and each wrong use it can switch on is refused with a -Wthread-safety error (not
# for another reason). Usage: thread_annotations_test.sh CLANG++ SOURCE_DIR
set -euo pipefail
cxx=("$1" -std=c++2b -I"$2" -fsyntax-only -Wthread-safety -Werror=thread-safety)
src=$2/tests/unit/thread_annotations_check.cc
"${cxx[@]}" "$src"
for c in READ_UNLOCKED WRITE_AFTER_UNLOCK CALL_REQUIRES PREDICATE_UNANNOTATED WRITE_SHARED; do
  if out=$("${cxx[@]}" -DDW_CASE_$c "$src" 2>&1); then
    echo "$c: compiled; a thread-safety error was expected"
    exit 1
  fi
  if ! grep -q -- '-Werror,-Wthread-safety' <<<"$out"; then
    echo "$c: failed, but not for thread safety:"
    echo "$out"
    exit 1
  fi
  echo "$c: refused: $(grep -m1 -o 'error: .*' <<<"$out")"
done
