// The real server on a loopback port, driven over HTTP by httplib::Client.
#include "slm/serve/server.h"

#include "slm/serve/chat_format.h"

#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "test_util.h"

namespace slm::serve {
namespace {

using nlohmann::json;

const std::string kModelRel = "models/stories260K/stories260K.gguf";

std::unique_ptr<engine::Session> open_session(const std::string& path, int64_t n_ctx = 0, bool repack = false) {
  engine::SessionOptions so;
  so.n_threads = 1;
  so.n_ctx = n_ctx;
  so.repack = repack;
  auto s = engine::Session::open(path, so);
  EXPECT_TRUE(s.ok()) << s.status().message();
  return s.ok() ? std::move(*s) : nullptr;
}

// A server running in a thread for as long as the object lives.
class RunningServer {
 public:
  RunningServer(const std::string& model, ServerOptions opt, int64_t n_ctx = 0, bool repack = false) {
    opt.host = "127.0.0.1";
    opt.port = 0;
    opt.n_threads = 1;
    auto s = Server::create(open_session(model, n_ctx, repack), model, opt);
    EXPECT_TRUE(s.ok()) << s.status().message();
    server_ = std::move(*s);
    Status st = server_->bind();
    EXPECT_TRUE(st.ok()) << st.message();
    thread_ = std::thread([this] { EXPECT_TRUE(server_->run().ok()); });
  }
  ~RunningServer() {
    server_->stop();
    thread_.join();
  }
  int port() const { return server_->port(); }
  Server& server() { return *server_; }
  std::unique_ptr<httplib::Client> client() const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    c->set_read_timeout(30, 0);
    return c;
  }

 private:
  std::unique_ptr<Server> server_;
  std::thread thread_;
};

class ServeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!file_exists(test::shared_data(kModelRel))) return;
    server_ = new RunningServer(test::shared_data(kModelRel), ServerOptions{});
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { SLM_REQUIRE_DATA(test::shared_data(kModelRel)); }

  static httplib::Result post(const std::string& path, const std::string& body) {
    return server_->client()->Post(path, body, "application/json");
  }
  static RunningServer* server_;
};
RunningServer* ServeTest::server_ = nullptr;

// The OpenAI error shape with the status expected.
void expect_error(const httplib::Result& r, int status, const std::string& what) {
  ASSERT_TRUE(r) << what << ": no response (" << httplib::to_string(r.error()) << ")";
  EXPECT_EQ(r->status, status) << what << ": " << r->body;
  json j = json::parse(r->body, nullptr, false);
  ASSERT_TRUE(j.is_object() && j.contains("error")) << what << ": " << r->body;
  const json& e = j["error"];
  EXPECT_TRUE(e["message"].is_string()) << what;
  EXPECT_FALSE(e["message"].get<std::string>().empty()) << what;
  EXPECT_TRUE(e["type"].is_string()) << what;
  EXPECT_TRUE(e.contains("param")) << what;
  EXPECT_TRUE(e.contains("code")) << what;
}

std::string greedy_reference(const std::string& prompt, int n, const std::string& model_rel = kModelRel,
                             bool repack = false) {
  auto s = open_session(test::shared_data(model_rel), 0, repack);
  auto ids = s->tokenize(prompt, true);
  EXPECT_TRUE(ids.ok());
  engine::GenerateOptions go;
  go.n_predict = n;
  go.sampler.temperature = 0;
  std::string text;
  engine::GenerateStats st;
  EXPECT_TRUE(s->generate(*ids, go, [&](int32_t, const std::string& t) { text += t; return true; }, &st).ok());
  return text;
}

// Concatenates the text of every SSE chunk; checks the stream ends with [DONE].
std::string stream_text(const std::string& body, std::string* finish) {
  std::string text;
  size_t pos = 0;
  std::string last;
  while (pos < body.size()) {
    size_t end = body.find("\n\n", pos);
    EXPECT_NE(end, std::string::npos) << "unterminated event";
    if (end == std::string::npos) break;
    std::string ev = body.substr(pos, end - pos);
    pos = end + 2;
    EXPECT_EQ(ev.rfind("data: ", 0), 0u) << ev;
    last = ev.substr(6);
    if (last == "[DONE]") continue;
    json j = json::parse(last);
    text += j["choices"][0]["text"].get<std::string>();
    if (!j["choices"][0]["finish_reason"].is_null()) *finish = j["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(last, "[DONE]");
  return text;
}

TEST_F(ServeTest, GreedyCompletionEqualsSession) {
  const std::string prompt = "Once upon a time";
  auto r = post("/v1/completions", json{{"prompt", prompt}, {"max_tokens", 40}, {"temperature", 0}}.dump());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json j = json::parse(r->body);
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_TRUE(j["id"].is_string());
  EXPECT_TRUE(j["created"].is_number_integer());
  EXPECT_EQ(j["model"], "stories260K.gguf");
  ASSERT_EQ(j["choices"].size(), 1u);
  EXPECT_EQ(j["choices"][0]["index"], 0);
  EXPECT_EQ(j["choices"][0]["text"], greedy_reference(prompt, 40));
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["completion_tokens"], 40);
  EXPECT_GT(j["usage"]["prompt_tokens"].get<int>(), 1);
  EXPECT_EQ(j["usage"]["total_tokens"], j["usage"]["prompt_tokens"].get<int>() + 40);
}

TEST_F(ServeTest, StreamingGivesTheSameText) {
  json req = {{"prompt", "Lily and Ben"}, {"max_tokens", 30}, {"temperature", 0}};
  auto whole = post("/v1/completions", req.dump());
  ASSERT_TRUE(whole);
  ASSERT_EQ(whole->status, 200);
  req["stream"] = true;
  auto streamed = post("/v1/completions", req.dump());
  ASSERT_TRUE(streamed);
  ASSERT_EQ(streamed->status, 200);
  EXPECT_NE(streamed->get_header_value("Content-Type").find("text/event-stream"), std::string::npos);
  std::string finish;
  EXPECT_EQ(stream_text(streamed->body, &finish), json::parse(whole->body)["choices"][0]["text"]);
  EXPECT_EQ(finish, "length");
}

TEST_F(ServeTest, StopStringsCutTheText) {
  const std::string full = greedy_reference("Once upon a time", 40);
  const size_t at = full.find("Lily");
  ASSERT_NE(at, std::string::npos) << full;
  for (bool stream : {false, true}) {
    json req = {{"prompt", "Once upon a time"}, {"max_tokens", 40}, {"temperature", 0},
                {"stop", json::array({"zzz", "Lily"})}, {"stream", stream}};
    auto r = post("/v1/completions", req.dump());
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    std::string text, finish;
    if (stream) {
      text = stream_text(r->body, &finish);
    } else {
      json j = json::parse(r->body);
      text = j["choices"][0]["text"];
      finish = j["choices"][0]["finish_reason"];
    }
    EXPECT_EQ(text, full.substr(0, at)) << "stream " << stream;
    EXPECT_EQ(finish, "stop");
  }
  // A single string works too.
  auto r = post("/v1/completions", R"({"prompt":"Once upon a time","max_tokens":40,"temperature":0,"stop":"Lily"})");
  ASSERT_TRUE(r);
  EXPECT_EQ(json::parse(r->body)["choices"][0]["text"], full.substr(0, at));
}

TEST_F(ServeTest, SeedMakesSamplingRepeatable) {
  const std::string body = R"({"prompt":"The cat","max_tokens":20,"temperature":1.0,"top_p":0.9,"seed":7})";
  auto a = post("/v1/completions", body);
  auto b = post("/v1/completions", body);
  ASSERT_TRUE(a && b);
  ASSERT_EQ(a->status, 200);
  EXPECT_EQ(json::parse(a->body)["choices"][0]["text"], json::parse(b->body)["choices"][0]["text"]);
}

// Chat on a model without a template: the ChatML fallback, greedy, equals the
// session fed the same rendered pieces; streaming deltas add up to the same reply.
TEST_F(ServeTest, ChatCompletionWholeAndStreamed) {
  const std::vector<ChatMessage> msgs = {{"system", "Tell stories."}, {"user", "A story about a cat"}};
  auto s = open_session(test::shared_data(kModelRel));
  auto f = chat_format_for_template("");
  auto pieces = render_chat(*f, msgs);
  ASSERT_TRUE(pieces.ok());
  std::vector<int32_t> ids;
  if (s->tokenizer()->add_bos()) ids.push_back(s->tokenizer()->bos());
  for (const auto& p : *pieces) {
    auto t = s->tokenizer()->encode(p.text, false, p.special);
    ASSERT_TRUE(t.ok());
    ids.insert(ids.end(), t->begin(), t->end());
  }
  engine::GenerateOptions go;
  go.n_predict = 25;
  go.sampler.temperature = 0;
  std::string expected;
  engine::GenerateStats st;
  ASSERT_TRUE(s->generate(ids, go, [&](int32_t, const std::string& t) { expected += t; return true; }, &st).ok());

  json req = {{"messages", {{{"role", "system"}, {"content", "Tell stories."}}, {{"role", "user"}, {"content", "A story about a cat"}}}},
              {"max_tokens", 25}, {"temperature", 0}};
  auto r = post("/v1/chat/completions", req.dump());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json j = json::parse(r->body);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], expected);
  EXPECT_EQ(j["usage"]["prompt_tokens"], static_cast<int>(ids.size()));

  req["stream"] = true;
  auto sr = post("/v1/chat/completions", req.dump());
  ASSERT_TRUE(sr);
  ASSERT_EQ(sr->status, 200);
  std::string text, last;
  bool saw_role = false;
  for (size_t pos = 0; pos < sr->body.size();) {
    size_t end = sr->body.find("\n\n", pos);
    ASSERT_NE(end, std::string::npos);
    last = sr->body.substr(pos + 6, end - pos - 6);
    pos = end + 2;
    if (last == "[DONE]") continue;
    json c = json::parse(last);
    EXPECT_EQ(c["object"], "chat.completion.chunk");
    const json& d = c["choices"][0]["delta"];
    if (d.contains("role")) saw_role = true;
    if (d.contains("content")) text += d["content"].get<std::string>();
  }
  EXPECT_TRUE(saw_role);
  EXPECT_EQ(last, "[DONE]");
  EXPECT_EQ(text, expected);

  expect_error(post("/v1/chat/completions", R"({"messages":[]})"), 400, "no messages");
  expect_error(post("/v1/chat/completions", R"({"messages":[{"role":"user"}]})"), 400, "no content");
  expect_error(post("/v1/chat/completions", R"({"messages":[{"role":"robot","content":"x"}]})"), 400, "bad role");
  expect_error(post("/v1/chat/completions", R"({"messages":"hi"})"), 400, "messages a string");
}

// ignore_eos (an extension for benchmarks) generates max_tokens even past end-of-generation
// (stories260K rarely ends a story, so this checks the parameter is read, not the skip).
TEST_F(ServeTest, IgnoreEosGeneratesMaxTokens) {
  auto r = post("/v1/completions", R"({"prompt":"Once","max_tokens":300,"temperature":0,"ignore_eos":true})");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["usage"]["completion_tokens"], 300);
  EXPECT_EQ(json::parse(r->body)["choices"][0]["finish_reason"], "length");
}

// A prompt that begins as an earlier one did starts from the KV rows its slot
// kept (usage.prompt_tokens_details.cached_tokens), with the same text;
// cache_prompt: false computes it all again.
TEST_F(ServeTest, RepeatedPromptBeginningsComeFromTheCache) {
  const std::string prompt = "Once upon a time, there was a little dog named";
  auto ask = [&](bool cache) {
    auto r = post("/v1/completions", json{{"prompt", prompt}, {"max_tokens", 12}, {"temperature", 0},
                                          {"cache_prompt", cache}}.dump());
    EXPECT_TRUE(r && r->status == 200) << (r ? r->body : "no answer");
    return r ? json::parse(r->body) : json();
  };
  const json first = ask(true), again = ask(true), off = ask(false);
  const int n_prompt = first["usage"]["prompt_tokens"].get<int>();
  EXPECT_EQ(again["usage"]["prompt_tokens_details"]["cached_tokens"], n_prompt - 1);
  EXPECT_EQ(off["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  EXPECT_EQ(again["choices"][0]["text"], first["choices"][0]["text"]);
  EXPECT_EQ(off["choices"][0]["text"], first["choices"][0]["text"]);
  EXPECT_EQ(first["choices"][0]["text"], greedy_reference(prompt, 12));
  expect_error(post("/v1/completions", R"({"prompt":"a","cache_prompt":"yes"})"), 400, "cache_prompt a string");
}

TEST_F(ServeTest, ModelsAndHealth) {
  auto c = server_->client();
  auto h = c->Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(json::parse(h->body)["status"], "ok");
  auto m = c->Get("/v1/models");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 200);
  json j = json::parse(m->body);
  EXPECT_EQ(j["object"], "list");
  ASSERT_EQ(j["data"].size(), 1u);
  EXPECT_EQ(j["data"][0]["id"], "stories260K.gguf");
  EXPECT_EQ(j["data"][0]["object"], "model");
}

// A burst of new connections (clients starting together) is accepted at
// once: with httplib's backlog of 5 the overflow waited a second for the
// connection request's retransmission.
TEST_F(ServeTest, ABurstOfConnectionsIsAcceptedWithoutDelay) {
  constexpr int kClients = 48;
  std::vector<std::thread> threads;
  std::vector<double> seconds(kClients, -1);
  std::atomic<int> ready{0};
  for (int i = 0; i < kClients; ++i)
    threads.emplace_back([&, i] {
      auto c = server_->client();
      ++ready;
      while (ready < kClients) std::this_thread::yield();
      const auto t0 = std::chrono::steady_clock::now();
      auto h = c->Get("/health");
      if (h && h->status == 200) seconds[i] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < kClients; ++i) {
    EXPECT_GE(seconds[i], 0) << "client " << i << " got no answer";
    EXPECT_LT(seconds[i], 0.9) << "client " << i;
  }
}

TEST_F(ServeTest, ErrorsHaveStatusAndShape) {
  expect_error(post("/v1/completions", "{not json"), 400, "bad JSON");
  expect_error(post("/v1/completions", "[1,2]"), 400, "not an object");
  expect_error(post("/v1/completions", R"({"max_tokens":5})"), 400, "no prompt");
  expect_error(post("/v1/completions", R"({"prompt":42})"), 400, "prompt a number");
  expect_error(post("/v1/completions", R"({"prompt":["a"]})"), 400, "prompt an array");
  expect_error(post("/v1/completions", R"({"prompt":"a","max_tokens":-1})"), 400, "negative max_tokens");
  expect_error(post("/v1/completions", R"({"prompt":"a","max_tokens":"5"})"), 400, "max_tokens a string");
  expect_error(post("/v1/completions", R"({"prompt":"a","max_tokens":1.5})"), 400, "max_tokens fractional");
  expect_error(post("/v1/completions", R"({"prompt":"a","temperature":2.5})"), 400, "temperature > 2");
  expect_error(post("/v1/completions", R"({"prompt":"a","temperature":-0.1})"), 400, "temperature < 0");
  expect_error(post("/v1/completions", R"({"prompt":"a","top_p":1.5})"), 400, "top_p > 1");
  expect_error(post("/v1/completions", R"({"prompt":"a","stop":5})"), 400, "stop a number");
  expect_error(post("/v1/completions", R"({"prompt":"a","stream":"yes"})"), 400, "stream a string");
  expect_error(post("/v1/completions", R"({"prompt":"a","ignore_eos":1})"), 400, "ignore_eos a number");
  expect_error(post("/v1/completions", "{\"prompt\":\"\xff\xfe\"}"), 400, "invalid UTF-8");
  expect_error(post("/v1/completions", "{\"prompt\":\"\xc0\xaf\"}"), 400, "overlong UTF-8");
  expect_error(post("/v1/completions", R"({"prompt":"\ud800"})"), 400, "lone surrogate escape");
  expect_error(post("/v1/completions", std::string(2 << 20, ' ')), 413, "2 MiB body");
  // JSON labelled as a form (what `curl -d` sends) over 8 KiB is still read as JSON.
  auto form = server_->client()->Post("/v1/completions", json{{"prompt", "Once"}, {"max_tokens", 1}, {"user", std::string(20000, 'a')}}.dump(),
                                      "application/x-www-form-urlencoded");
  ASSERT_TRUE(form);
  EXPECT_EQ(form->status, 200) << form->body;
  expect_error(server_->client()->Get("/nope"), 404, "unknown path");
  expect_error(server_->client()->Get("/v1/completions"), 404, "GET on a POST route");
}

TEST_F(ServeTest, SurvivesMalformedBodies) {
  const std::vector<std::string> bodies = {
      "", " ", "{", "}", "null", "true", "0", "\"prompt\"", "{\"prompt\":}", "{\"prompt\":\"a\",}",
      "{\"prompt\":\"a\"", "{\"prompt\":null}", "{\"prompt\":{}}", "{\"prompt\":\"a\",\"max_tokens\":1e309}",
      "{\"prompt\":\"a\",\"max_tokens\":99999999999999999999999}", "{\"prompt\":\"a\",\"max_tokens\":-99999999999}",
      "{\"prompt\":\"a\",\"temperature\":\"hot\"}", "{\"prompt\":\"a\",\"temperature\":null,\"top_p\":-1}",
      "{\"prompt\":\"a\",\"seed\":\"x\"}", "{\"prompt\":\"a\",\"seed\":1.5}", "{\"prompt\":\"a\",\"stop\":[1]}",
      "{\"prompt\":\"a\",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", "{\"prompt\":\"a\",\"n\":3}",
      "{\"prompt\":\"a\",\"top_k\":-5}", "{\"prompt\":\"a\",\"min_p\":7}", std::string("{\"prompt\":\"a\0b\"}", 15),
      "{\"prompt\":\"\\u\"}", "{\"prompt\":\"\\uZZZZ\"}", "\xef\xbb\xbf{\"prompt\":1}", std::string(100000, '['),
      std::string(100000, '{'), "{\"prompt\":\"a\",\"stream\":1}", "{\"prompt\":\"" + std::string(3, '\x80') + "\"}",
      "{\"prompt\":\"a\",\"top_p\":NaN}", "{\"prompt\":\"a\",\"temperature\":Infinity}",
  };
  for (size_t i = 0; i < bodies.size(); ++i) {
    auto r = post("/v1/completions", bodies[i]);
    ASSERT_TRUE(r) << "body " << i << ": no response";
    EXPECT_GE(r->status, 400) << "body " << i << ": " << r->body;
    EXPECT_LT(r->status, 500) << "body " << i << ": " << r->body;
    json j = json::parse(r->body, nullptr, false);
    EXPECT_TRUE(j.is_object() && j.contains("error")) << "body " << i << ": " << r->body;
  }
  auto h = server_->client()->Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
}

// Sends raw bytes on a fresh connection; returns the response (headers and a
// Content-Length body), or what came before the wait ran out.
std::string raw_exchange(int port, const std::string& bytes, int wait_ms = 3000) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  timeval tv{wait_ms / 1000, (wait_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  EXPECT_EQ(send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size()));
  std::string got;
  char buf[4096];
  for (ssize_t n; (n = recv(fd, buf, sizeof buf, 0)) > 0;) {
    got.append(buf, static_cast<size_t>(n));
    size_t head = got.find("\r\n\r\n");
    size_t cl = got.find("Content-Length: ");
    if (head != std::string::npos && cl != std::string::npos && cl < head &&
        got.size() >= head + 4 + std::stoul(got.substr(cl + 16)))
      break;
  }
  close(fd);
  return got;
}

TEST_F(ServeTest, SurvivesBrokenHttpAndDisconnects) {
  const int port = server_->port();
  std::string bad = raw_exchange(port, "GARBAGE\r\n\r\n");
  EXPECT_EQ(bad.rfind("HTTP/1.1 400", 0), 0u) << bad;
  EXPECT_NE(bad.find("\"error\""), std::string::npos) << bad;
  // A body shorter than announced: nothing is served, the server just waits (and times out).
  EXPECT_EQ(raw_exchange(port, "POST /v1/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"prompt\"", 300), "");
  raw_exchange(port, std::string("\x16\x03\x01\x00\xff", 5), 300);  // a TLS hello to a plain port
  // An absurd Content-Length: httplib skips what is announced before answering 413, so the
  // client just waits here; the point is that nothing breaks.
  raw_exchange(port, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", 300);

  // A client that hangs up after the first streamed chunk: the server cancels and goes on.
  for (int i = 0; i < 3; ++i) {
    auto c = server_->client();
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.body = R"({"prompt":"Once","max_tokens":400,"temperature":0,"stream":true})";
    req.set_header("Content-Type", "application/json");
    int chunks = 0;
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 2; };
    c->send(req);
    EXPECT_GE(chunks, 1);
  }
  auto r = post("/v1/completions", R"({"prompt":"Once","max_tokens":5,"temperature":0})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(ServeTest, PromptLongerThanTheContextIs400) {
  std::string prompt;
  for (int i = 0; i < 2000; ++i) prompt += "the cat sat ";
  expect_error(post("/v1/completions", json{{"prompt", prompt}, {"max_tokens", 1}}.dump()), 400, "prompt over the context");
  // Generation that runs into the end of the context stops with "length".
  auto r = post("/v1/completions", R"({"prompt":"Once","max_tokens":100000,"temperature":0})");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json j = json::parse(r->body);
  const std::string finish = j["choices"][0]["finish_reason"];
  EXPECT_TRUE(finish == "length" || finish == "stop") << finish;
}

TEST(ServeAuth, BearerKeyIsRequired) {
  const std::string model = test::shared_data(kModelRel);
  SLM_REQUIRE_DATA(model);
  ServerOptions opt;
  opt.api_key = "sk-test-123";
  RunningServer srv(model, opt);
  auto c = srv.client();
  expect_error(c->Get("/v1/models"), 401, "no key");
  expect_error(c->Get("/v1/models", {{"Authorization", "Bearer wrong"}}), 401, "wrong key");
  expect_error(c->Get("/v1/models", {{"Authorization", "sk-test-123"}}), 401, "no Bearer");
  expect_error(c->Post("/v1/completions", {{"Authorization", "Bearer sk-test-12"}}, R"({"prompt":"a"})",
                       "application/json"),
               401, "key prefix");
  auto ok = c->Get("/v1/models", {{"Authorization", "Bearer sk-test-123"}});
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  for (const char* open : {"/health", "/metrics", "/"}) {  // probes, metrics and the page need no key
    auto h = c->Get(open);
    ASSERT_TRUE(h) << open;
    EXPECT_EQ(h->status, 200) << open;
  }
}

// The value of an unlabelled metric in a Prometheus text page, or -1.
double metric(const std::string& page, const std::string& name) {
  std::smatch m;
  if (!std::regex_search(page, m, std::regex("\n" + name + " ([0-9.e+-]+)\n"))) return -1;
  return std::stod(m[1]);
}

TEST(ServeBatching, ConcurrentRequestsShareForwardPassesAndEqualAlone) {
  const std::string model = test::shared_data(kModelRel);
  SLM_REQUIRE_DATA(model);
  ServerOptions opt;
  opt.n_parallel = 4;
  RunningServer srv(model, opt);
  const std::vector<std::string> prompts = {"Once upon a time", "Lily and Ben", "The cat sat", "A big dog",
                                            "Tom was sad", "The sun was"};
  std::vector<std::string> got(prompts.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < prompts.size(); ++i)
    threads.emplace_back([&, i] {
      json req = {{"prompt", prompts[i]}, {"max_tokens", 60}, {"temperature", 0}, {"stream", i % 2 == 1}};
      auto r = srv.client()->Post("/v1/completions", req.dump(), "application/json");
      if (!r || r->status != 200) return;
      std::string finish;
      got[i] = i % 2 == 1 ? stream_text(r->body, &finish) : json::parse(r->body)["choices"][0]["text"].get<std::string>();
    });
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(got[i], greedy_reference(prompts[i], 60)) << prompts[i];
  auto m = srv.client()->Get("/metrics");
  ASSERT_TRUE(m);
  const double steps = metric(m->body, "slm_batch_steps_total"), rows = metric(m->body, "slm_batch_sequences_total");
  EXPECT_GT(rows / steps, 1.5) << "mean sequences per forward pass; steps " << steps << ", rows " << rows;
  EXPECT_EQ(metric(m->body, "slm_generated_tokens_total"), 6 * 60);
  EXPECT_EQ(metric(m->body, "slm_active_sequences"), 0);
  EXPECT_EQ(metric(m->body, "slm_kv_cache_used_positions"), 0);
}

// Repacked weights (--repack; Q4_0 here): a token's logits do not depend on
// the batch it rides in, so batched greedy text equals a lone repacked session's.
TEST(ServeBatching, RepackedWeightsBatchAsTheyRunAlone) {
  const std::string rel = "models/quant-ref/rand-2m-Q4_0.gguf", model = test::shared_data(rel);
  SLM_REQUIRE_DATA(model);
  ServerOptions opt;
  opt.n_parallel = 4;
  RunningServer srv(model, opt, 0, true);
  // As many requests as slots, so all of them can ride in every step.
  const std::vector<std::string> prompts = {"Once upon a time", "Lily and Ben", "The cat sat", "A big dog"};
  std::vector<std::string> got(prompts.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < prompts.size(); ++i)
    threads.emplace_back([&, i] {
      json req = {{"prompt", prompts[i]}, {"max_tokens", 60}, {"temperature", 0}};
      auto r = srv.client()->Post("/v1/completions", req.dump(), "application/json");
      if (r && r->status == 200) got[i] = json::parse(r->body)["choices"][0]["text"].get<std::string>();
    });
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_FALSE(got[i].empty()) << prompts[i];
    EXPECT_EQ(got[i], greedy_reference(prompts[i], 60, rel, true)) << prompts[i];
  }
  auto m = srv.client()->Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_GT(metric(m->body, "slm_batch_sequences_total") / metric(m->body, "slm_batch_steps_total"), 1.5);
}

TEST(ServeBatching, FullQueueIs503) {
  const std::string model = test::shared_data(kModelRel);
  SLM_REQUIRE_DATA(model);
  ServerOptions opt;
  opt.n_parallel = 1;
  opt.max_queue = 1;
  RunningServer srv(model, opt);
  std::atomic<int> ok{0}, busy{0}, other{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 12; ++i)
    threads.emplace_back([&] {
      auto r = srv.client()->Post("/v1/completions", R"({"prompt":"Once","max_tokens":400,"temperature":0})",
                                  "application/json");
      if (r && r->status == 200) {
        ++ok;
      } else if (r && r->status == 503) {
        expect_error(r, 503, "queue full");
        EXPECT_EQ(r->get_header_value("Retry-After"), "1");
        ++busy;
      } else {
        ++other;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_GE(ok.load(), 1);
  EXPECT_GE(busy.load(), 1);
  EXPECT_EQ(other.load(), 0);
  auto m = srv.client()->Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(metric(m->body, "slm_rejected_total"), busy.load());
}

TEST(ServeBatching, NoQueueStillServesUpToTheSlots) {
  const std::string model = test::shared_data(kModelRel);
  SLM_REQUIRE_DATA(model);
  ServerOptions opt;
  opt.n_parallel = 2;
  opt.max_queue = 0;
  RunningServer srv(model, opt);
  for (int i = 0; i < 3; ++i) {
    auto r = srv.client()->Post("/v1/completions", R"({"prompt":"Once","max_tokens":5})", "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << r->body;
  }
}

TEST(ServeBatching, ClientHangupCancelsAndFreesTheSlot) {
  const std::string model = test::shared_data(kModelRel);
  SLM_REQUIRE_DATA(model);
  ServerOptions opt;
  opt.n_parallel = 2;
  // A context far past the model's 512, so a request outlasts its client by seconds.
  RunningServer srv(model, opt, 1 << 16);
  for (bool stream : {true, false}) {
    auto c = srv.client();
    c->set_read_timeout(stream ? 30 : 0, stream ? 0 : 300000);  // whole: give up after 0.3 s
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.body = json{{"prompt", "Once"}, {"max_tokens", 1 << 20}, {"ignore_eos", true}, {"stream", stream}}.dump();
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return false; };
    c->send(req);
  }
  // Both are cancelled (the whole one at its next keep-alive space) and their slots freed.
  double cancelled = 0, active = -1;
  for (int i = 0; i < 100 && (cancelled < 2 || active != 0); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto m = srv.client()->Get("/metrics");
    ASSERT_TRUE(m);
    cancelled = metric(m->body, "slm_cancelled_total");
    active = metric(m->body, "slm_active_sequences");
  }
  EXPECT_EQ(cancelled, 2);
  EXPECT_EQ(active, 0);
}

TEST(ServeBatching, ShutdownFinishesRequestsInFlight) {
  const std::string model = test::shared_data(kModelRel);
  SLM_REQUIRE_DATA(model);
  ServerOptions opt;
  opt.n_parallel = 2;
  RunningServer srv(model, opt);
  std::unique_ptr<httplib::Result> first;
  std::thread t([&] {
    first = std::make_unique<httplib::Result>(srv.client()->Post("/v1/completions", R"({"prompt":"Once","max_tokens":200,"temperature":0,"stream":true})",
                               "application/json"));
  });
  for (int i = 0; i < 200; ++i) {  // until the request is running
    auto m = srv.client()->Get("/metrics");
    if (m && metric(m->body, "slm_active_sequences") >= 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::thread stopper([&] { EXPECT_TRUE(srv.server().shutdown(std::chrono::seconds(20))); });
  t.join();
  stopper.join();
  ASSERT_TRUE(first && *first);
  EXPECT_EQ((*first)->status, 200);
  std::string finish;
  stream_text((*first)->body, &finish);
  EXPECT_TRUE(finish == "length" || finish == "stop") << (*first)->body;
  // Stopped: nothing answers any more.
  auto after = srv.client()->Get("/health");
  EXPECT_FALSE(after && after->status == 200);
}

TEST_F(ServeTest, MetricsAndChatPage) {
  auto c = server_->client();
  ASSERT_TRUE(c->Get("/health"));
  auto m = c->Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 200);
  EXPECT_NE(m->get_header_value("Content-Type").find("text/plain"), std::string::npos);
  for (const char* name : {"slm_requests_total{code=\"200\"}", "slm_generated_tokens_total", "slm_queue_depth",
                           "slm_kv_cache_capacity_positions", "slm_time_to_first_token_seconds_bucket{le=\"+Inf\"}",
                           "slm_inter_token_latency_seconds_count", "# TYPE slm_request_duration_seconds histogram"})
    EXPECT_NE(m->body.find(name), std::string::npos) << name << " in\n" << m->body;
  EXPECT_GT(metric(m->body, "slm_kv_cache_capacity_positions"), 0);
  auto p = c->Get("/");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->status, 200);
  EXPECT_NE(p->get_header_value("Content-Type").find("text/html"), std::string::npos);
  EXPECT_NE(p->body.find("stories260K.gguf"), std::string::npos);
  EXPECT_NE(p->body.find("/v1/chat/completions"), std::string::npos);
  // Self-contained: nothing fetched from elsewhere.
  EXPECT_EQ(p->body.find("http://"), std::string::npos);
  EXPECT_EQ(p->body.find("https://"), std::string::npos);
}

}  // namespace
}  // namespace slm::serve
