// An OpenAI-compatible Chat Completions client (POST {base_url}/chat/completions) over
// libcurl's multi interface: many requests in flight on one thread, client-side rate
// limits (requests/minute, tokens/minute), retries with exponential backoff and jitter on
// 429 / 5xx / timeouts / connection errors / malformed or truncated replies, Retry-After
// honoured, a maximum number of attempts. 400/401/403/404 (and any other 4xx but 408/429)
// stop the run at once.
//
// The API key is sent as "Authorization: Bearer ..." and nowhere else: it is never logged,
// and every message this client produces passes through redact() first.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace la3::llm {

struct ClientOptions {
  std::string base_url = "https://api.openai.com/v1";  // ".../chat/completions" is appended
  std::string model;
  std::string api_key;  // empty: no Authorization header (local servers)
  double temperature = 1.0;
  double top_p = 1.0;
  int64_t max_tokens = 512;
  double timeout_seconds = 60;          // whole request
  double connect_timeout_seconds = 10;
  int max_in_flight = 16;
  double requests_per_minute = 0;       // 0 = unlimited
  double tokens_per_minute = 0;         // 0 = unlimited (prompt + completion)
  int max_attempts = 6;                 // per request, the first try included
  double backoff_base_seconds = 1.0;    // delay before retry a: base * 2^(a-1), equal jitter
  double backoff_max_seconds = 60.0;
  double max_retry_after_seconds = 600; // a longer Retry-After is capped (and said so)
  uint64_t jitter_seed = 0;             // 0: seeded from std::random_device
};

struct ChatRequest {
  uint64_t id = 0;         // the caller's tag, echoed in the result
  std::string system;      // optional system message
  std::string user;
  int n = 1;               // choices wanted (sent only when > 1)
  // Metadata for backends that do not speak HTTP (replay); ignored by the HTTP client.
  std::string cid;
  std::vector<int> samples;
};

struct Choice {
  std::string text;
  std::string finish_reason;  // "stop", "length", ...
};

struct ChatResult {
  uint64_t id = 0;
  std::vector<Choice> choices;
  int64_t prompt_tokens = 0, completion_tokens = 0;
  int attempts = 0;  // HTTP attempts this request took (1 = no retry)
  double seconds = 0;  // from the first attempt's start to the reply
};

// Reads a successful (2xx) Chat Completions reply body into `result` (choices in `index`
// order, usage); InvalidArgument naming what is wrong for a malformed one (the client
// retries those). The fuzz targets in fuzz/ call it directly.
absl::Status parse_chat_completion(const std::string& body, ChatResult& result);
// The message of an error reply ({"error": "..."} or {"error": {"message": ...}}) when it is
// not empty, else the body's first 300 characters on one line; never empty.
std::string server_error_message(const std::string& body);

// Counters of one run (every attempt, not only the successful ones).
struct ClientStats {
  int64_t attempts = 0, succeeded = 0, retries = 0;
  int64_t http_429 = 0, http_5xx = 0, timeouts = 0, connection_errors = 0, malformed = 0;
  int64_t prompt_tokens = 0, completion_tokens = 0;
  double retry_after_waited_seconds = 0;
};

// 0 = run, 1 = drain (no new requests or retries; let in-flight ones finish), 2 = abandon.
using StopFlag = std::atomic<int>;

// Something that turns chat requests into results: the HTTP client, or a replay of
// precomputed rewrites (llm_client/replay_backend.h).
class CompletionBackend {
 public:
  virtual ~CompletionBackend() = default;
  using NextRequest = std::function<std::optional<ChatRequest>()>;
  using OnResult = std::function<void(ChatResult&&)>;

  // Pulls requests from `next` while there is capacity, delivers each completed request to
  // `on_result` (same thread), and returns OK once `next` has nothing left and nothing is
  // in flight; a non-OK status on a fatal error (naming URL, HTTP status and the server's
  // message), or Cancelled when `stop` was raised.
  virtual absl::Status run(const NextRequest& next, const OnResult& on_result, const StopFlag& stop) = 0;
  virtual const ClientStats& stats() const = 0;
};

class ChatClient final : public CompletionBackend {
 public:
  explicit ChatClient(ClientOptions options);
  ~ChatClient() override;
  ChatClient(const ChatClient&) = delete;
  ChatClient& operator=(const ChatClient&) = delete;

  absl::Status run(const NextRequest& next, const OnResult& on_result, const StopFlag& stop) override;
  const ClientStats& stats() const override { return stats_; }

  // The endpoint URL (never contains the key).
  const std::string& url() const { return url_; }
  // The request body for `request` (exposed for tests).
  std::string request_body(const ChatRequest& request) const;
  // `text` with every occurrence of the API key replaced by "[REDACTED]".
  std::string redact(std::string text) const;

 private:
  struct Impl;
  class Run;  // the state and steps of one run() (chat_client.cc)
  ClientOptions options_;
  std::string url_;
  ClientStats stats_;
  Impl* impl_;
};

// Reads the API key from the environment variable `name`; empty when unset.
std::string api_key_from_env(const std::string& name);

}  // namespace la3::llm
