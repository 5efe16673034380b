#include "slm/serve/chat_format.h"

namespace slm::serve {
namespace {

bool has(const std::string& s, const char* needle) { return s.find(needle) != std::string::npos; }

// Llama 3's template trims each message.
std::string trim(const std::string& s) {
  const char* ws = " \t\r\n";
  size_t a = s.find_first_not_of(ws);
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(ws) - a + 1);
}

}  // namespace

Result<ChatFormat> chat_format_for_template(const std::string& t) {
  ChatFormat f;
  if (t.empty()) {
    f.style = ChatStyle::kChatML;
    f.name = "chatml (fallback: the model has no chat template)";
    f.stops = {"<|im_end|>"};
  } else if (has(t, "<|im_start|>")) {
    f.style = ChatStyle::kChatML;
    f.name = "chatml";
    f.stops = {"<|im_end|>"};
  } else if (has(t, "<|start_header_id|>")) {
    f.style = ChatStyle::kLlama3;
    f.name = "llama3";
    f.stops = {"<|eot_id|>"};
  } else if (has(t, "<start_of_turn>")) {
    f.style = ChatStyle::kGemma;
    f.name = "gemma";
    f.stops = {"<end_of_turn>"};
  } else if (has(t, "<|user|>") && has(t, "<|end|>")) {
    f.style = ChatStyle::kPhi3;
    f.name = "phi3";
    f.stops = {"<|end|>"};
  } else if (has(t, "[INST]")) {
    f.style = ChatStyle::kLlama2;
    f.name = "llama2";
    f.stops = {"</s>"};
  } else {
    return Status::Unsupported("cannot render this model's chat template (not ChatML, Llama 2/3, Mistral, Phi-3 or "
                               "Gemma style): " + t.substr(0, 80) + (t.size() > 80 ? "..." : ""));
  }
  return f;
}

Result<std::vector<PromptPiece>> render_chat(const ChatFormat& f, const std::vector<ChatMessage>& messages) {
  if (messages.empty()) return Status::InvalidArgument("'messages' is empty");
  for (const auto& m : messages)
    if (m.role != "system" && m.role != "user" && m.role != "assistant")
      return Status::InvalidArgument("message role '" + m.role + "' is not system, user or assistant");
  std::vector<PromptPiece> out;
  auto mark = [&](std::string s) { out.push_back({std::move(s), true}); };
  auto text = [&](std::string s) { if (!s.empty()) out.push_back({std::move(s), false}); };

  switch (f.style) {
    case ChatStyle::kChatML:
      for (const auto& m : messages) {
        mark("<|im_start|>" + m.role + "\n");
        text(m.content);
        mark("<|im_end|>\n");
      }
      mark("<|im_start|>assistant\n");
      break;
    case ChatStyle::kLlama3:
      for (const auto& m : messages) {
        mark("<|start_header_id|>" + m.role + "<|end_header_id|>\n\n");
        text(trim(m.content));
        mark("<|eot_id|>");
      }
      mark("<|start_header_id|>assistant<|end_header_id|>\n\n");
      break;
    case ChatStyle::kPhi3:
      for (const auto& m : messages) {
        mark("<|" + m.role + "|>\n");
        text(m.content);
        mark("<|end|>\n");
      }
      mark("<|assistant|>\n");
      break;
    case ChatStyle::kGemma:
    case ChatStyle::kLlama2: {
      // Neither has a system role: the system text opens the first user turn.
      std::string system;
      size_t i = 0;
      if (messages[0].role == "system") {
        system = messages[0].content;
        i = 1;
      }
      bool first_user = true;
      for (; i < messages.size(); ++i) {
        const auto& m = messages[i];
        if (m.role == "system") return Status::InvalidArgument("a system message may only come first for " + f.name);
        std::string content = m.content;
        if (m.role == "user" && first_user && !system.empty()) {
          content = f.style == ChatStyle::kLlama2 ? "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content
                                                   : system + "\n\n" + content;
        }
        if (m.role == "user") first_user = false;
        if (f.style == ChatStyle::kGemma) {
          mark(std::string("<start_of_turn>") + (m.role == "user" ? "user" : "model") + "\n");
          text(content);
          mark("<end_of_turn>\n");
        } else if (m.role == "user") {
          mark("[INST] ");
          text(content);
          mark(" [/INST]");
        } else {
          text(" " + content + " ");
          mark("</s><s>");
        }
      }
      if (f.style == ChatStyle::kGemma) mark("<start_of_turn>model\n");
      break;
    }
  }
  return out;
}

}  // namespace slm::serve
