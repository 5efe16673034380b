// Loading maps the model instead of reading it: the peak RSS of `slm run` on a
// file far larger than the model's working memory stays far below the file size.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "slm/io/gguf.h"
#include "test_util.h"

namespace slm {
namespace {

TEST(MappedLoad, PeakRssFarBelowFileSize) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer's shadow memory makes RSS meaningless here";
#endif
  const std::string src_path = test::shared_data("models/stories260K/stories260K.gguf");
  SLM_REQUIRE_DATA(src_path);
  auto src = io::GgufFile::open(src_path);
  ASSERT_TRUE(src.ok());
  // stories260K plus a 256 MiB tensor the model never reads. The writer is
  // freed before slm runs: a forked child counts its parent's pages until exec.
  const std::string big = ::testing::TempDir() + "/slm_big.gguf";
  {
  io::GgufWriter w;
  for (const auto& k : (*src)->key_order()) w.set(k, *(*src)->find(k));
  for (const auto& t : (*src)->tensors()) {
    auto v = (*src)->tensor(t.name);
    ASSERT_TRUE(v.ok());
    const auto* p = static_cast<const uint8_t*>(v->data);
    w.add_tensor(t.name, t.ggml_type, t.shape, std::vector<uint8_t>(p, p + v->nbytes));
  }
  const int64_t pad = int64_t{64} << 20;  // floats
  w.add_tensor("unused.padding", io::kGgmlF32, {pad}, std::vector<uint8_t>(static_cast<size_t>(pad) * 4, 1));
  ASSERT_TRUE(w.write(big).ok());
  }
  const auto file_mib = std::filesystem::file_size(big) >> 20;

  // slm run reports its own peak RSS (getrusage) on stderr.
  std::string err;
  int rc = test::run_command(test::slm_binary() + " run " + big + " --prompt-ids 1 -n 20 --temp 0 --print-ids 2>&1 >/dev/null", &err);
  std::filesystem::remove(big);
  ASSERT_EQ(rc, 0) << err;
  const size_t at = err.find("peak RSS ");
  ASSERT_NE(at, std::string::npos) << err;
  const double peak_mib = std::stod(err.substr(at + 9));
  std::printf("file %lu MiB, peak RSS of slm run %.1f MiB\n", static_cast<unsigned long>(file_mib), peak_mib);
  EXPECT_GT(file_mib, 256u);
  EXPECT_LT(peak_mib, 64) << "slm run seems to read the whole file into memory";
}

}  // namespace
}  // namespace slm
