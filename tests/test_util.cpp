#include "test_util.h"

#include <cstdio>

namespace slm::test {

std::string shared_data(const std::string& rel) { return std::string(SLM_SHARED_DATA) + "/" + rel; }
std::string fixture(const std::string& rel) { return std::string(SLM_FIXTURES) + "/" + rel; }
std::string slm_binary() { return SLM_BINARY; }

int run_command(const std::string& cmd, std::string* out) {
  // bash, not sh, so tests can quote raw bytes as $'\xff'.
  std::string quoted = "'";
  for (char c : cmd) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  quoted += "'";
  FILE* p = ::popen(("bash -c " + quoted).c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) {
    if (out) out->append(buf, n);
  }
  int rc = ::pclose(p);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

}  // namespace slm::test
