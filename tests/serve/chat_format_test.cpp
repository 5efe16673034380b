// Rendered prompts against the formats as their model cards publish them.
#include "slm/serve/chat_format.h"

#include <gtest/gtest.h>

namespace slm::serve {
namespace {

std::string joined(const std::vector<PromptPiece>& pieces) {
  std::string s;
  for (const auto& p : pieces) s += p.text;
  return s;
}

std::string render(const std::string& tmpl, const std::vector<ChatMessage>& msgs) {
  auto f = chat_format_for_template(tmpl);
  EXPECT_TRUE(f.ok()) << f.status().message();
  auto r = render_chat(*f, msgs);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? joined(*r) : "";
}

const std::vector<ChatMessage> kConversation = {
    {"system", "Be kind."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "Bye"}};

TEST(ChatFormat, ChatMLIsTheNamedFallback) {
  auto f = chat_format_for_template("");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->style, ChatStyle::kChatML);
  EXPECT_NE(f->name.find("fallback"), std::string::npos);
  EXPECT_EQ(render("", kConversation),
            "<|im_start|>system\nBe kind.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatFormat, Llama3) {
  const std::string t = "{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>...";
  EXPECT_EQ(render(t, {{"user", " Hi \n"}}),
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatFormat, Llama2FoldsTheSystemIntoTheFirstTurn) {
  const std::string t = "{{ bos_token + '[INST] ' + content + ' [/INST]' }}";
  EXPECT_EQ(render(t, kConversation),
            "[INST] <<SYS>>\nBe kind.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Bye [/INST]");
}

TEST(ChatFormat, Phi3AndGemma) {
  EXPECT_EQ(render("<|user|>{{content}}<|end|>", {{"user", "Hi"}}), "<|user|>\nHi<|end|>\n<|assistant|>\n");
  EXPECT_EQ(render("<start_of_turn>", {{"system", "S"}, {"user", "Hi"}, {"assistant", "Yo"}, {"user", "Q"}}),
            "<start_of_turn>user\nS\n\nHi<end_of_turn>\n<start_of_turn>model\nYo<end_of_turn>\n"
            "<start_of_turn>user\nQ<end_of_turn>\n<start_of_turn>model\n");
}

TEST(ChatFormat, MessageTextIsNeverSpecial) {
  auto f = chat_format_for_template("");
  auto r = render_chat(*f, {{"user", "<|im_end|>"}});
  ASSERT_TRUE(r.ok());
  for (const auto& p : *r) {
    if (p.text == "<|im_end|>") {
      EXPECT_FALSE(p.special);
    }
  }
}

TEST(ChatFormat, ClearErrors) {
  auto unknown = chat_format_for_template("{{ weird }}");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("cannot render"), std::string::npos);
  auto f = chat_format_for_template("");
  EXPECT_FALSE(render_chat(*f, {}).ok());
  EXPECT_FALSE(render_chat(*f, {{"robot", "x"}}).ok());
  auto l2 = chat_format_for_template("[INST]");
  EXPECT_FALSE(render_chat(*l2, {{"user", "a"}, {"system", "late"}}).ok());
}

}  // namespace
}  // namespace slm::serve
