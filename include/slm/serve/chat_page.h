// The web chat page served at GET /: one self-contained HTML document (inline
// CSS and script, no external requests) that talks to /v1/chat/completions with
// streaming, keeps the conversation in the page, and has settings for the
// temperature, max tokens and an API key.
#pragma once

#include <string>

namespace slm::serve {

// The page, naming model_id (HTML-escaped) in its title.
std::string chat_page_html(const std::string& model_id);

}  // namespace slm::serve
