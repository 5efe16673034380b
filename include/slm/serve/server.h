// Server: an OpenAI-compatible HTTP API over one engine::Session's model.
//   POST /v1/completions       prompt -> text, whole or streamed as server-sent events
//   POST /v1/chat/completions  messages -> reply, in the model's chat format (chat_format.h)
//   GET  /v1/models, GET /health, GET /metrics (Prometheus), GET / (a chat page)
// Every error is OpenAI's JSON shape {"error": {"message", "type", "param", "code"}}
// with its HTTP status (400, 401, 404, 413, 503 queue full or shutting down, 500).
// Requests are batched continuously (scheduler.h): up to n_parallel sequences
// share every forward pass, max_queue more wait, the rest are refused.
// Thread safety: bind() then run() on one thread; stop() and shutdown() from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "slm/core/status.h"
#include "slm/engine/session.h"

namespace slm::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                        // 0: any free port (see Server::port())
  std::string api_key;                    // non-empty: require "Authorization: Bearer <key>"
  size_t max_body_bytes = size_t{1} << 20;  // larger request bodies get 413
  std::string model_id;                   // the name /v1/models reports; empty: the file name
  int n_threads = 0;                      // threads per forward pass; 0: OpenMP's default
  int n_parallel = 4;                     // sequences decoded together
  int max_queue = 32;                     // requests waiting for a slot before 503
};

class Server {
 public:
  // Takes the session; model_path names the model for /v1/models.
  static Result<std::unique_ptr<Server>> create(std::unique_ptr<engine::Session> session,
                                                const std::string& model_path, const ServerOptions& opt);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the listening socket; after it, port() is the real port.
  Status bind();
  int port() const;
  // Serves until stop(); returns an error if the loop could not run.
  Status run();
  // Stops at once: requests in flight are cut.
  void stop();
  // Graceful: refuses new requests (503), lets those in flight finish for up to
  // `grace`, cancels the rest, then stops run(). True if all finished in time.
  bool shutdown(std::chrono::milliseconds grace);

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace slm::serve
