// OpenAI-compatible HTTP API on cpp-httplib; see server.h.
// Request fields follow the OpenAI completions reference
// (https://platform.openai.com/docs/api-reference/completions/create).
#include "slm/serve/server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <optional>
#include <random>
#include <nlohmann/json.hpp>

#include "slm/io/gguf.h"
#include "slm/serve/chat_format.h"
#include "slm/serve/chat_page.h"
#include "slm/serve/metrics.h"
#include "slm/serve/scheduler.h"

namespace slm::serve {
namespace {

using nlohmann::json;

// An error that becomes an OpenAI error response.
struct ApiError {
  int status;
  std::string message;
  std::string param;  // the offending field, or empty
  std::string code;   // a machine-readable code, or empty
};

const char* error_type(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 503: return "server_overloaded";
    case 400: return "invalid_request_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

// Never throws on odd bytes: invalid UTF-8 is replaced, not fatal.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void set_error(httplib::Response& res, const ApiError& e) {
  json err = {{"message", e.message},
              {"type", error_type(e.status)},
              {"param", e.param.empty() ? json(nullptr) : json(e.param)},
              {"code", e.code.empty() ? json(nullptr) : json(e.code)}};
  res.status = e.status;
  res.set_content(dump(json{{"error", err}}), "application/json");
}

// Strict UTF-8 (RFC 3629): no overlongs, no surrogates, nothing past U+10FFFF.
bool valid_utf8(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    unsigned c = p[i];
    size_t len;
    unsigned cp;
    if (c < 0x80) { ++i; continue; }
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
    else return false;
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return false;
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

// A parsed, validated /v1/completions request.
struct CompletionRequest {
  bool chat = false;               // /v1/chat/completions: messages, not prompt
  std::string prompt;
  std::vector<ChatMessage> messages;
  int32_t max_tokens = 16;  // OpenAI's default
  sample::SamplerConfig sampler;
  std::vector<std::string> stop;
  bool stream = false;
  bool ignore_eos = false;  // generate max_tokens even past end-of-generation tokens
  bool cache_prompt = true;  // start from a slot's KV rows of the same prompt beginning
};

std::optional<double> get_number(const json& body, const char* key, double lo, double hi) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_number()) throw ApiError{400, std::string("'") + key + "' must be a number", key, "invalid_type"};
  double v = it->get<double>();
  if (!std::isfinite(v) || v < lo || v > hi)
    throw ApiError{400, std::string("'") + key + "' is " + dump(*it) + ", expected a value in [" + dump(json(lo)) +
                            ", " + dump(json(hi)) + "]",
                   key, "invalid_value"};
  return v;
}

std::optional<int64_t> get_integer(const json& body, const char* key, int64_t lo, int64_t hi) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer() && !it->is_number_unsigned())
    throw ApiError{400, std::string("'") + key + "' must be an integer", key, "invalid_type"};
  if (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(hi))
    throw ApiError{400, std::string("'") + key + "' is " + dump(*it) + ", at most " + std::to_string(hi) + " allowed",
                   key, "invalid_value"};
  int64_t v = it->is_number_unsigned() ? static_cast<int64_t>(it->get<uint64_t>()) : it->get<int64_t>();
  if (v < lo || v > hi)
    throw ApiError{400, std::string("'") + key + "' is " + std::to_string(v) + ", expected a value in [" +
                            std::to_string(lo) + ", " + std::to_string(hi) + "]",
                   key, "invalid_value"};
  return v;
}

json parse_body(const httplib::Request& req) {
  json body;
  try {
    body = json::parse(req.body);
  } catch (const json::exception& e) {
    throw ApiError{400, std::string("the request body is not valid JSON: ") + e.what(), "", "invalid_json"};
  }
  if (!body.is_object()) throw ApiError{400, "the request body must be a JSON object", "", "invalid_json"};
  return body;
}

// The fields /v1/completions and /v1/chat/completions share.
void parse_sampling(const json& body, CompletionRequest& r) {
  if (auto v = get_integer(body, "max_tokens", 0, 1 << 24)) r.max_tokens = static_cast<int32_t>(*v);
  // OpenAI sampling: temperature and top_p only; top_k and min_p are extensions, off unless given.
  r.sampler.temperature = 1.0f;
  r.sampler.top_p = 1.0f;
  r.sampler.top_k = 0;
  r.sampler.min_p = 0.0f;
  if (auto v = get_number(body, "temperature", 0.0, 2.0)) r.sampler.temperature = static_cast<float>(*v);
  if (auto v = get_number(body, "top_p", 0.0, 1.0)) r.sampler.top_p = static_cast<float>(*v);
  if (auto v = get_integer(body, "top_k", 0, 1 << 24)) r.sampler.top_k = static_cast<int32_t>(*v);
  if (auto v = get_number(body, "min_p", 0.0, 1.0)) r.sampler.min_p = static_cast<float>(*v);
  if (auto v = get_integer(body, "seed", INT64_MIN, INT64_MAX)) {
    r.sampler.seed = static_cast<uint64_t>(*v);
  } else {
    r.sampler.seed = (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  }
  if (auto s = body.find("stream"); s != body.end() && !s->is_null()) {
    if (!s->is_boolean()) throw ApiError{400, "'stream' must be a boolean", "stream", "invalid_type"};
    r.stream = s->get<bool>();
  }
  if (auto s = body.find("stop"); s != body.end() && !s->is_null()) {
    auto add = [&](const json& v) {
      if (!v.is_string()) throw ApiError{400, "'stop' must be a string or an array of strings", "stop", "invalid_type"};
      std::string t = v.get<std::string>();
      if (!valid_utf8(t)) throw ApiError{400, "'stop' is not valid UTF-8", "stop", "invalid_value"};
      if (!t.empty()) r.stop.push_back(std::move(t));
    };
    if (s->is_array()) {
      if (s->size() > 4) throw ApiError{400, "'stop' holds at most 4 strings", "stop", "invalid_value"};
      for (const auto& v : *s) add(v);
    } else {
      add(*s);
    }
  }
  if (auto s = body.find("ignore_eos"); s != body.end() && !s->is_null()) {  // an extension, as in llama.cpp
    if (!s->is_boolean()) throw ApiError{400, "'ignore_eos' must be a boolean", "ignore_eos", "invalid_type"};
    r.ignore_eos = s->get<bool>();
  }
  if (auto s = body.find("cache_prompt"); s != body.end() && !s->is_null()) {  // as in llama.cpp
    if (!s->is_boolean()) throw ApiError{400, "'cache_prompt' must be a boolean", "cache_prompt", "invalid_type"};
    r.cache_prompt = s->get<bool>();
  }
  get_integer(body, "n", 1, 1);  // only n = 1 is served for now
  Status st = r.sampler.validate();
  if (!st.ok()) throw ApiError{400, st.message(), "", "invalid_value"};
}

CompletionRequest parse_completion(const json& body) {
  CompletionRequest r;
  auto p = body.find("prompt");
  if (p == body.end()) throw ApiError{400, "'prompt' is required", "prompt", "missing_field"};
  if (!p->is_string()) throw ApiError{400, "'prompt' must be a string", "prompt", "invalid_type"};
  r.prompt = p->get<std::string>();
  if (!valid_utf8(r.prompt)) throw ApiError{400, "'prompt' is not valid UTF-8", "prompt", "invalid_value"};
  parse_sampling(body, r);
  return r;
}

CompletionRequest parse_chat(const json& body) {
  CompletionRequest r;
  r.chat = true;
  auto ms = body.find("messages");
  if (ms == body.end()) throw ApiError{400, "'messages' is required", "messages", "missing_field"};
  if (!ms->is_array() || ms->empty())
    throw ApiError{400, "'messages' must be a non-empty array", "messages", "invalid_type"};
  for (const auto& m : *ms) {
    if (!m.is_object()) throw ApiError{400, "each message must be an object", "messages", "invalid_type"};
    auto role = m.find("role");
    auto content = m.find("content");
    if (role == m.end() || !role->is_string())
      throw ApiError{400, "each message needs a string 'role'", "messages", "invalid_type"};
    if (content == m.end() || !content->is_string())
      throw ApiError{400, "each message needs a string 'content'", "messages", "invalid_type"};
    ChatMessage cm{role->get<std::string>(), content->get<std::string>()};
    if (!valid_utf8(cm.content) || !valid_utf8(cm.role))
      throw ApiError{400, "a message is not valid UTF-8", "messages", "invalid_value"};
    r.messages.push_back(std::move(cm));
  }
  parse_sampling(body, r);
  // The newer name of max_tokens for chat.
  if (auto v = get_integer(body, "max_completion_tokens", 0, 1 << 24)) r.max_tokens = static_cast<int32_t>(*v);
  if (!body.contains("max_tokens") && !body.contains("max_completion_tokens")) r.max_tokens = 256;
  return r;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

std::string random_id(const char* prefix) {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t salt = (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(salt + counter.fetch_add(1)));
  return std::string(prefix) + buf;
}

// Constant time in the key's length, so a wrong key leaks nothing through timing.
bool same_key(const std::string& a, const std::string& b) {
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(i < b.size() ? b[i] : 0);
  return diff == 0;
}

}  // namespace

struct Server::Impl {
  ServerOptions opt;
  std::string model_id;
  Metrics metrics;
  std::unique_ptr<engine::Session> session;  // its tokenizer is shared by the handler threads
  std::unique_ptr<Scheduler> scheduler;      // borrows session's model
  httplib::Server http;
  int port = -1;
  int listen_fd = -1;  // the listening socket, for its backlog
  std::time_t started = std::time(nullptr);
  std::atomic<bool> draining{false};

  void routes();
  Result<ChatFormat> chat_format = Status::Unsupported("no chat format");

  // Serves a parsed request of either kind, whole or streamed, through the scheduler.
  void complete(CompletionRequest r, httplib::Response& res);
  std::vector<int32_t> tokenize_chat(const std::vector<ChatMessage>& messages);
  std::vector<int32_t> tokenize_prompt(const std::string& text);
};

std::vector<int32_t> Server::Impl::tokenize_prompt(const std::string& text) {
  std::vector<int32_t> ids;
  if (!text.empty()) {
    auto t = session->tokenize(text, true);
    if (!t.ok()) throw ApiError{400, "cannot tokenize 'prompt': " + t.status().message(), "prompt", "invalid_value"};
    ids = std::move(*t);
  }
  if (ids.empty()) {  // an empty prompt starts from BOS, as `slm run` does
    int32_t bos = session->tokenizer()->bos();
    if (bos < 0) throw ApiError{400, "'prompt' is empty and the model has no BOS token", "prompt", "invalid_value"};
    ids.push_back(bos);
  }
  if (static_cast<int64_t>(ids.size()) >= session->n_ctx())
    throw ApiError{400, "the prompt has " + std::to_string(ids.size()) + " tokens; the context holds " +
                            std::to_string(session->n_ctx()),
                   "prompt", "context_length_exceeded"};
  return ids;
}

std::vector<int32_t> Server::Impl::tokenize_chat(const std::vector<ChatMessage>& messages) {
  if (!chat_format.ok()) throw ApiError{400, chat_format.status().message(), "messages", "unsupported_chat_template"};
  auto pieces = render_chat(*chat_format, messages);
  if (!pieces.ok()) throw ApiError{400, pieces.status().message(), "messages", "invalid_value"};
  const tokenizer::Tokenizer& tok = *session->tokenizer();
  std::vector<int32_t> ids;
  if (tok.add_bos() && tok.bos() >= 0) ids.push_back(tok.bos());
  for (const auto& p : *pieces) {
    auto t = tok.encode(p.text, false, p.special);
    if (!t.ok()) throw ApiError{400, "cannot tokenize the messages: " + t.status().message(), "messages", "invalid_value"};
    ids.insert(ids.end(), t->begin(), t->end());
  }
  if (ids.empty()) throw ApiError{400, "the messages render to no tokens", "messages", "invalid_value"};
  if (static_cast<int64_t>(ids.size()) >= session->n_ctx())
    throw ApiError{400, "the messages have " + std::to_string(ids.size()) + " tokens; the context holds " +
                            std::to_string(session->n_ctx()),
                   "messages", "context_length_exceeded"};
  return ids;
}

void Server::Impl::complete(CompletionRequest r, httplib::Response& res) {
  const auto arrived = std::chrono::steady_clock::now();
  if (r.chat && chat_format.ok())
    r.stop.insert(r.stop.end(), chat_format->stops.begin(), chat_format->stops.end());
  const std::string id = random_id(r.chat ? "chatcmpl-" : "cmpl-");
  const std::time_t created = std::time(nullptr);
  const bool chat = r.chat;
  const bool stream = r.stream;
  const std::string object = chat ? (stream ? "chat.completion.chunk" : "chat.completion") : "text_completion";
  // One response or stream chunk; `first` marks the chunk that names the role.
  auto shape = [=, this](const std::string& text, const json& finish, bool first) {
    json choice = {{"index", 0}};
    if (!chat) {
      choice["text"] = text;
      choice["logprobs"] = nullptr;
    } else if (!stream) {
      choice["message"] = {{"role", "assistant"}, {"content", text}};
    } else {
      choice["delta"] = json::object();
      if (first) choice["delta"]["role"] = "assistant";
      if (first || finish.is_null()) choice["delta"]["content"] = text;
    }
    choice["finish_reason"] = finish;
    return json{{"id", id}, {"object", object}, {"created", created}, {"model", model_id},
                {"choices", json::array({choice})}};
  };
  auto usage = [](int64_t n_prompt, int64_t n_gen, int64_t n_cached) {
    return json{{"prompt_tokens", n_prompt}, {"completion_tokens", n_gen}, {"total_tokens", n_prompt + n_gen},
                {"prompt_tokens_details", {{"cached_tokens", n_cached}}}};
  };

  // The prompt is checked before any byte is sent, so its errors still get a status code.
  std::vector<int32_t> prompt = chat ? tokenize_chat(r.messages) : tokenize_prompt(r.prompt);
  const auto n_prompt = static_cast<int64_t>(prompt.size());
  if (r.max_tokens == 0) {  // nothing to generate: answer without taking a slot
    json out = shape("", "length", false);
    out["usage"] = usage(n_prompt, 0, 0);
    res.set_content(stream ? "data: " + dump(out) + "\n\ndata: [DONE]\n\n" : dump(out),
                    stream ? "text/event-stream" : "application/json");
    return;
  }
  engine::GenerateOptions go;
  go.n_predict = r.max_tokens;
  go.sampler = r.sampler;
  go.stop_at_eog = !r.ignore_eos;
  go.reuse_prefix = r.cache_prompt;
  auto submitted = scheduler->submit(std::move(prompt), go, r.stop, arrived);
  if (!submitted.ok()) {
    ++metrics.rejected;
    throw ApiError{503, submitted.status().message(), "", "server_busy"};
  }
  std::shared_ptr<Job> job = std::move(*submitted);

  auto error_json = [](const std::string& reason) {
    const bool gone = reason == "cancelled";
    return json{{"error", {{"message", gone ? "the request was cancelled: the server is shutting down"
                                            : "generation failed; the server log says why"},
                           {"type", "server_error"}, {"param", nullptr},
                           {"code", gone ? "cancelled" : "generation_failed"}}}};
  };
  res.set_header("Cache-Control", "no-cache");
  // However the response ends (even before its first byte), the job ends with it.
  auto release = [job](bool) { job->cancel(); };
  if (stream) {
    res.set_chunked_content_provider("text/event-stream", [=, this](size_t, httplib::DataSink& sink) {
      auto send = [&](const std::string& data) {
        std::string ev = "data: " + data + "\n\n";
        return sink.write(ev.data(), ev.size());
      };
      bool ok = !chat || send(dump(shape("", nullptr, true)));
      bool finished = false;
      while (ok && !finished) {
        std::vector<std::string> pieces;
        finished = job->wait(&pieces, std::chrono::seconds(1));
        for (size_t i = 0; ok && i < pieces.size(); ++i) ok = send(dump(shape(pieces[i], nullptr, false)));
      }
      if (!ok) {  // the client went away
        job->cancel();
        return false;
      }
      metrics.request_seconds.observe(seconds_since(arrived));
      const std::string& reason = job->finish_reason();
      if (reason == "stop" || reason == "length") {
        json last = shape("", reason, false);
        last["usage"] = usage(n_prompt, job->n_generated(), job->n_cached());
        send(dump(last));
      } else {
        send(dump(error_json(reason)));
      }
      send("[DONE]");
      sink.done();
      return true;
    }, release);
    return;
  }
  // Whole: the JSON comes at the end. While waiting, a space (JSON allows leading
  // white space) every quarter second finds out whether the client is still there.
  res.set_chunked_content_provider("application/json", [=, this](size_t, httplib::DataSink& sink) {
    std::vector<std::string> pieces;
    while (!job->wait(&pieces, std::chrono::milliseconds(250))) {
      if (!sink.write(" ", 1)) {
        job->cancel();
        return false;
      }
    }
    metrics.request_seconds.observe(seconds_since(arrived));
    const std::string& reason = job->finish_reason();
    json out;
    if (reason == "stop" || reason == "length") {
      std::string text;
      for (const auto& p : pieces) text += p;
      out = shape(text, reason, false);
      out["usage"] = usage(n_prompt, job->n_generated(), job->n_cached());
    } else {
      out = error_json(reason);
    }
    std::string body = dump(out);
    sink.write(body.data(), body.size());
    sink.done();
    return true;
  }, release);
}

void Server::Impl::routes() {
  // Wraps a handler so an ApiError becomes its JSON response.
  auto guarded = [](auto fn) {
    return [fn](const httplib::Request& req, httplib::Response& res) {
      try {
        fn(req, res);
      } catch (const ApiError& e) {
        set_error(res, e);
        if (e.status == 503) res.set_header("Retry-After", "1");
      }
    };
  };
  // Every waiting request holds a thread: enough for all slots and the queue, so
  // a full queue is answered 503 instead of piling up unanswered connections.
  const size_t n_http_threads = static_cast<size_t>(opt.n_parallel + opt.max_queue) + 8;
  http.new_task_queue = [n_http_threads] { return new httplib::ThreadPool(n_http_threads); };
  http.set_logger([this](const httplib::Request&, const httplib::Response& res) { metrics.count_request(res.status); });
  http.set_payload_max_length(opt.max_body_bytes);
  http.set_socket_options([this](socket_t sock) {
    httplib::default_socket_options(sock);
    listen_fd = sock;
  });
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    // `curl -d` labels JSON as a form, and httplib refuses form bodies over 8 KiB
    // (413) before our handler runs; the body is JSON to us whatever its label.
    // The request is httplib's own non-const object, so casting const away is defined.
    if (req.get_header_value("Content-Type") == "application/x-www-form-urlencoded") {
      auto& headers = const_cast<httplib::Request&>(req).headers;
      headers.erase("Content-Type");
      headers.emplace("Content-Type", "application/json");
    }
    // Probes, metrics and the page (which asks for the key itself) need no key.
    if (opt.api_key.empty() || req.path == "/health" || req.path == "/metrics" || req.path == "/")
      return httplib::Server::HandlerResponse::Unhandled;
    const std::string auth = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    if (auth.compare(0, prefix.size(), prefix) == 0 && same_key(auth.substr(prefix.size()), opt.api_key))
      return httplib::Server::HandlerResponse::Unhandled;
    set_error(res, {401, auth.empty() ? "missing API key: send 'Authorization: Bearer <key>'" : "invalid API key", "",
                    "invalid_api_key"});
    return httplib::Server::HandlerResponse::Handled;
  });
  // Statuses httplib sets itself (404 no route, 413 too large, 400 bad HTTP) get a JSON body too.
  http.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    if (res.status == 404)
      set_error(res, {404, "no route for " + req.method + " " + req.path, "", "not_found"});
    else if (res.status == 413)
      set_error(res, {413, "the request body is too large", "", "request_too_large"});
    else
      set_error(res, {res.status, "HTTP error " + std::to_string(res.status), "", ""});
    return httplib::Server::HandlerResponse::Handled;
  }));
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = std::string("internal error: ") + e.what();
    } catch (...) {
    }
    set_error(res, {500, what, "", "internal_error"});
  });

  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    if (draining) {
      res.status = 503;
      res.set_content(R"({"status":"draining"})", "application/json");
    } else {
      res.set_content(R"({"status":"ok"})", "application/json");
    }
  });
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics.render(scheduler->gauges()), "text/plain; version=0.0.4");
  });
  http.Get("/", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(chat_page_html(model_id), "text/html; charset=utf-8");
  });
  http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    json m = {{"id", model_id}, {"object", "model"}, {"created", static_cast<int64_t>(started)}, {"owned_by", "slm"}};
    res.set_content(dump(json{{"object", "list"}, {"data", json::array({m})}}), "application/json");
  });
  http.Post("/v1/completions", guarded([this](const httplib::Request& req, httplib::Response& res) {
    complete(parse_completion(parse_body(req)), res);
  }));
  http.Post("/v1/chat/completions", guarded([this](const httplib::Request& req, httplib::Response& res) {
    complete(parse_chat(parse_body(req)), res);
  }));
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() = default;

Result<std::unique_ptr<Server>> Server::create(std::unique_ptr<engine::Session> session, const std::string& model_path,
                                               const ServerOptions& opt) {
  if (!session) return Status::InvalidArgument("serve: no session");
  if (session->tokenizer() == nullptr)
    return Status::InvalidArgument("serve: the model has no tokenizer; text requests need one");
  if (opt.port < 0 || opt.port > 65535)
    return Status::InvalidArgument("serve: port " + std::to_string(opt.port) + " is outside [0, 65535]");
  if (opt.n_parallel < 1 || opt.n_parallel > 256)
    return Status::InvalidArgument("serve: --parallel is " + std::to_string(opt.n_parallel) + ", expected 1 to 256");
  if (opt.max_queue < 0 || opt.max_queue > 4096)
    return Status::InvalidArgument("serve: the queue length is " + std::to_string(opt.max_queue) +
                                   ", expected 0 to 4096");
  auto impl = std::make_unique<Impl>();
  impl->opt = opt;
  impl->session = std::move(session);
  impl->model_id = !opt.model_id.empty() ? opt.model_id
                                         : std::filesystem::path(model_path).filename().string();
  if (impl->model_id.empty()) impl->model_id = model_path;
  std::string tmpl;
  if (const io::GgufFile* g = impl->session->source().gguf())
    tmpl = g->get_string("tokenizer.chat_template").value_or("");
  impl->chat_format = chat_format_for_template(tmpl);
  SchedulerOptions so;
  so.n_parallel = opt.n_parallel;
  so.max_queue = opt.max_queue;
  so.n_ctx = impl->session->n_ctx();
  so.kv_type = impl->session->kv_type();
  so.n_threads = opt.n_threads;
  auto sched = Scheduler::create(*impl->session, so, &impl->metrics);
  if (!sched.ok()) return sched.status().with_context("serve");
  impl->scheduler = std::move(*sched);
  impl->routes();
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

namespace {
constexpr int kListenBacklog = 1024;
}  // namespace

Status Server::bind() {
  if (impl_->opt.port == 0) {
    impl_->port = impl_->http.bind_to_any_port(impl_->opt.host);
    if (impl_->port < 0) return Status::IoError("serve: cannot bind " + impl_->opt.host);
  } else {
    if (!impl_->http.bind_to_port(impl_->opt.host, impl_->opt.port))
      return Status::IoError("serve: cannot bind " + impl_->opt.host + ":" + std::to_string(impl_->opt.port) +
                             " (in use, or not an address of this machine?)");
    impl_->port = impl_->opt.port;
  }
  // httplib listens with a backlog of 5: a burst of new connections (8
  // clients starting at once) overflowed it, and the dropped connection
  // requests waited a second for their retransmission. Raise it.
  if (impl_->listen_fd >= 0 && ::listen(impl_->listen_fd, kListenBacklog) != 0)
    return Status::IoError("serve: cannot set the listening backlog");
  return Status::Ok();
}

int Server::port() const { return impl_->port; }

Status Server::run() {
  if (impl_->port < 0) SLM_RETURN_IF_ERROR(bind());
  if (!impl_->http.listen_after_bind()) return Status::IoError("serve: the listening loop failed");
  return Status::Ok();
}

void Server::stop() { impl_->http.stop(); }

bool Server::shutdown(std::chrono::milliseconds grace) {
  impl_->draining = true;
  const bool all_done = impl_->scheduler->drain(grace);
  impl_->http.stop();
  return all_done;
}

}  // namespace slm::serve
