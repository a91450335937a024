// What the fuzz targets share: an invariant check that fails the run like a sanitizer does,
// so libFuzzer saves the input (crash-*) and scripts/test.sh fails.
#pragma once

#include <cstdio>
#include <cstdlib>

#define DW_FUZZ_CHECK(cond)                                                                  \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);      \
      std::abort();                                                                          \
    }                                                                                        \
  } while (0)
