// SLM_ASSERT: a check on our own invariants, on in release builds. Never use it
// for bad input from files, sockets or argv: return a Status instead.
#pragma once

#include <cstdio>
#include <cstdlib>

#define SLM_ASSERT(cond)                                                                   \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      std::fprintf(stderr, "slm: internal error at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                        \
    }                                                                                      \
  } while (0)
