// A scripted OpenAI-compatible Chat Completions server for the llm_client tests and the
// throughput bench: cpp-httplib on 127.0.0.1, an ephemeral port, started in-process.
// Each request takes the next scripted step (then the default step): a normal reply, 429
// with Retry-After, 500, 503, a hung request, malformed JSON, a reply cut short, 400, 401
// (whose message echoes the bearer token, as real servers sometimes do), or a reply
// stopped at max_tokens. Every request is recorded (arrival time, body, prompt, token).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace la3::llm::testing {

enum class Behavior { kOk, kRateLimited, kServerError, kUnavailable, kHang, kMalformed, kCutShort, kBadRequest,
                      kUnauthorized, kLength };

struct Step {
  Behavior behavior = Behavior::kOk;
  int retry_after_seconds = 0;  // kRateLimited / kUnavailable: the Retry-After header (0: none)
  int hang_ms = 2000;           // kHang: how long the reply is held back
};

struct RecordedRequest {
  double seconds = 0;          // arrival, since the server started
  std::string body;            // the JSON body
  std::string user_prompt;     // the last message's content
  std::string authorization;   // the Authorization header
  int n = 1;
  Behavior behavior = Behavior::kOk;
};

class ScriptedServer {
 public:
  // Text of choice `choice` for a request with `user_prompt`; `index` counts requests from 0.
  using ReplyFn = std::function<std::string(const std::string& user_prompt, int index, int choice)>;

  explicit ScriptedServer(int threads = 32);
  ~ScriptedServer();
  ScriptedServer(const ScriptedServer&) = delete;
  ScriptedServer& operator=(const ScriptedServer&) = delete;

  int port() const { return port_; }
  std::string base_url() const;  // http://127.0.0.1:PORT/v1
  void script(std::vector<Step> steps);
  void set_default(Step step);
  void set_latency_ms(int ms) { latency_ms_ = ms; }
  void set_reply(ReplyFn reply);
  std::vector<RecordedRequest> requests() const;
  size_t request_count() const;

  // The default reply: the caption after "Description: " in the prompt, reworded as
  // "Put differently (variant N): <caption>".
  static std::string default_reply(const std::string& user_prompt, int index, int choice);
  // The caption after "Description: " (up to the end of that line).
  static std::string caption_of(const std::string& user_prompt);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
  std::atomic<int> latency_ms_{0};
};

}  // namespace la3::llm::testing
