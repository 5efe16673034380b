// The end-to-end tests in tests/e2e, run from here so ctest reports them: the
// `slm serve` binary driven by the official openai npm client, and the chat page
// in headless Chromium (playwright-core) with a screenshot. Both end the server
// with SIGTERM and expect the graceful exit. They skip when ../shared/data,
// Node.js, npm (or its registry, on first use) or Chromium are missing.
#include <filesystem>

#include "test_util.h"

namespace slm::serve {
namespace {

const std::string kModelRel = "models/stories260K/stories260K.gguf";

void run_e2e(const std::string& name, const std::string& extra) {
  const std::string model = test::shared_data(kModelRel);
  SLM_REQUIRE_DATA(model);
  const std::string script = test::fixture("../e2e/run.sh");
  std::string out;
  const int rc = test::run_command(script + " " + name + " '" + test::slm_binary() + "' '" + model + "' " + extra + " 2>&1", &out);
  if (rc == 77) GTEST_SKIP() << out;
  EXPECT_EQ(rc, 0) << out;
}

TEST(ServeE2E, OpenAiNpmClient) { run_e2e("openai", ""); }

TEST(ServeE2E, ChatPageInHeadlessChromium) {
  // Beside the test binary (build/tests/), wherever the test runs from.
  const std::string shot =
      (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "serve-chat-page.png").string();
  std::filesystem::remove(shot);
  run_e2e("chat_page", "'" + shot + "'");
  if (!HasFatalFailure() && !IsSkipped()) {
    EXPECT_TRUE(std::filesystem::exists(shot)) << shot;
  }
}

}  // namespace
}  // namespace slm::serve
