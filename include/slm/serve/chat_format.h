// Chat formats: turn OpenAI chat messages into a prompt the model was tuned on.
// The style is recognised from the model's chat template (GGUF
// tokenizer.chat_template) by its markers; we render the common styles with our
// own code rather than running the Jinja template. A model without a template
// gets ChatML, reported as "chatml (fallback)"; a template we do not recognise
// is an error naming it, never a silent wrong prompt.
// Thread-safe: plain functions over values.
#pragma once

#include <string>
#include <vector>

#include "slm/core/status.h"

namespace slm::serve {

enum class ChatStyle { kChatML, kLlama2, kLlama3, kPhi3, kGemma };

struct ChatMessage {
  std::string role;     // "system", "user" or "assistant"
  std::string content;
};

// A piece of the rendered prompt: markers are tokenized with special tokens
// recognised, message text without (so a user cannot inject control tokens).
struct PromptPiece {
  std::string text;
  bool special;
};

struct ChatFormat {
  ChatStyle style = ChatStyle::kChatML;
  std::string name;                 // e.g. "llama3", "chatml (fallback)"
  std::vector<std::string> stops;   // end-of-turn markers, as stop strings too
};

// The format for a model's chat template text ("" when it has none).
Result<ChatFormat> chat_format_for_template(const std::string& chat_template);

// Renders messages and opens the assistant's turn. Does not add BOS: the caller
// adds it when the vocabulary asks for one.
Result<std::vector<PromptPiece>> render_chat(const ChatFormat& f, const std::vector<ChatMessage>& messages);

}  // namespace slm::serve
