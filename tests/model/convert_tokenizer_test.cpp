// slm convert carries a tokenizer file beside the model into the GGUF.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "slm/model/convert.h"
#include "slm/tokenizer/load.h"
#include "test_util.h"

namespace slm::model {
namespace {

TEST(ConvertTokenizer, Llama2cModelAndTokenizerBecomeOneGguf) {
  const std::string bin = test::shared_data("models/stories260K/stories260K.bin");
  const std::string ref = test::shared_data("models/stories260K/stories260K.gguf");
  SLM_REQUIRE_DATA(bin);
  auto src = ModelSource::open(bin);
  ASSERT_TRUE(src.ok()) << src.status().to_string();
  const std::string out = (std::filesystem::temp_directory_path() / ("slm_conv_tok_" + std::to_string(getpid()) + ".gguf")).string();
  auto r = convert_to_gguf(**src, out);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_TRUE(r->tokenizer_skipped.empty()) << r->tokenizer_skipped;
  auto a = tokenizer::load_tokenizer_file(out);
  auto b = tokenizer::load_tokenizer_file(ref);
  ASSERT_TRUE(a.ok() && b.ok()) << a.status().to_string();
  const char* text = "Once upon a time, Lily said: \"Let's play!\" 42 times.\n";
  EXPECT_EQ((*a)->encode(text, true).value(), (*b)->encode(text, true).value());
  std::filesystem::remove(out);
}

}  // namespace
}  // namespace slm::model
