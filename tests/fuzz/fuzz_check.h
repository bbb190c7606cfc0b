// FUZZ_CHECK(condition, message): the harnesses' property checks. A failed
// check prints the message and aborts, which libFuzzer (and the corpus
// driver's CTest test) report as a finding with the input that caused it.
// Header-only; stateless; thread-safe.
#ifndef NNSERVE_TESTS_FUZZ_FUZZ_CHECK_H_
#define NNSERVE_TESTS_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(condition, message)                                     \
  do {                                                                     \
    if (!(condition)) {                                                    \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed: %s\n", __FILE__, \
                   __LINE__, #condition, (message));                       \
      std::abort();                                                        \
    }                                                                      \
  } while (false)

#endif  // NNSERVE_TESTS_FUZZ_FUZZ_CHECK_H_
