// Helpers shared by the tests: where ../shared/data is, and skipping when it is not.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "slm/core/mapped_file.h"

namespace slm::test {

// Absolute path of a file under ../shared/data.
std::string shared_data(const std::string& rel);
// Absolute path of a checked-in fixture under tests/fixtures.
std::string fixture(const std::string& rel);
// Path of the built slm binary.
std::string slm_binary();

// Runs a bash command; returns its exit code and fills out with stdout.
int run_command(const std::string& cmd, std::string* out);

}  // namespace slm::test

// Skips the test with a clear message when a file from ../shared/data is missing.
#define SLM_REQUIRE_DATA(path)                                                                \
  do {                                                                                        \
    if (!::slm::file_exists(path)) GTEST_SKIP() << "missing " << (path)                      \
                                                << " (../shared/data is absent): skipped";    \
  } while (0)
