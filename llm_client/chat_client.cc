#include "llm_client/chat_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "llm_client/rate_limiter.h"

namespace la3::llm {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

void global_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t append_body(char* data, size_t size, size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

// What every attempt of a run sends besides its body, computed once per run.
struct AttemptSettings {
  std::string url;
  long timeout_ms = 0, connect_ms = 0;
  std::string auth;  // the Authorization header line; "" without a key (local servers)
};

// One HTTP attempt of one request. libcurl reads the body and headers and writes the reply
// and the error text through pointers into this object, so it is held by unique_ptr and
// stays put until its easy handle has left the multi handle.
struct Attempt {
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  ChatRequest request;
  std::string body, response;
  char error[CURL_ERROR_SIZE] = {0};
  int number = 1;  // 1 = the first try
  double estimated_tokens = 0;
  Clock::time_point first_start;

  // Sets up the POST of `body` on `handle` (a fresh or reset easy handle).
  void configure(CURL* handle, const AttemptSettings& settings) {
    easy = handle;
    headers = curl_slist_append(headers, "Content-Type: application/json");
    // curl 7.88 sends "Expect: 100-continue" for bodies over 1 KiB and waits for the server's
    // interim reply: a wasted round trip per request (prompts are usually longer than that).
    headers = curl_slist_append(headers, "Expect:");
    if (!settings.auth.empty()) headers = curl_slist_append(headers, settings.auth.c_str());
    curl_easy_setopt(easy, CURLOPT_URL, settings.url.c_str());
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, append_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &response);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, settings.timeout_ms);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, settings.connect_ms);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, this);
  }

  // libcurl's own words for a transport failure when it left any, else the code's name.
  std::string transport_detail(CURLcode code) const {
    return error[0] != '\0' ? std::string(error) : curl_easy_strerror(code);
  }

  long http_status() const {
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    return status;
  }

  // The server's Retry-After in seconds, < 0 when absent.
  double retry_after_seconds() const {
    curl_off_t retry_after = -1;
    if (curl_easy_getinfo(easy, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK && retry_after > 0) {
      return static_cast<double>(retry_after);
    }
    return -1;
  }
};

// A request waiting for its next attempt.
struct Pending {
  Clock::time_point ready;
  ChatRequest request;
  int attempts_done = 0;
  Clock::time_point first_start;
};

// What went wrong with an attempt, and whether it is worth another.
struct AttemptError {
  bool retryable = false;
  std::string message;
  double retry_after = -1;  // seconds from the server's Retry-After, < 0 when absent
};

}  // namespace

std::string server_error_message(const std::string& body) {
  const json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  // An empty message says nothing: the body is shown instead (found by the
  // chat_completion_json fuzz target: {"error": {"message": ""}} made an empty reason).
  if (j.is_object() && j.contains("error")) {
    const json& e = j["error"];
    if (e.is_string() && !e.get<std::string>().empty()) return e.get<std::string>();
    if (e.is_object() && e.contains("message") && e["message"].is_string() && !e["message"].get<std::string>().empty()) {
      return e["message"].get<std::string>();
    }
  }
  std::string text = body.substr(0, 300);
  std::replace(text.begin(), text.end(), '\n', ' ');
  return text.empty() ? "(empty body)" : text;
}

namespace {

bool retryable_curl_error(CURLcode code) {
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_BAD_CONTENT_ENCODING:
      return true;
    default:
      return false;
  }
}

}  // namespace

struct ChatClient::Impl {
  CURLM* multi = nullptr;
  std::vector<CURL*> idle;  // finished easy handles kept for reuse (their connections live in `multi`)
  std::mt19937_64 rng;
  RateLimiter requests, tokens;

  ~Impl() {
    for (CURL* e : idle) curl_easy_cleanup(e);
    if (multi != nullptr) curl_multi_cleanup(multi);
  }
};

absl::Status parse_chat_completion(const std::string& body, ChatResult& result) {
  const json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  auto malformed = [](const std::string& what) { return absl::InvalidArgumentError(what); };
  if (j.is_discarded()) return malformed("not JSON");
  if (!j.is_object() || !j.contains("choices") || !j["choices"].is_array() || j["choices"].empty()) {
    return malformed("no \"choices\" array");
  }
  std::vector<std::pair<int64_t, Choice>> indexed;
  for (const json& c : j["choices"]) {
    if (!c.is_object() || !c.contains("message") || !c["message"].is_object()) return malformed("a choice without \"message\"");
    Choice choice;
    const json& content = c["message"].value("content", json());
    if (content.is_string()) choice.text = content.get<std::string>();
    else if (!content.is_null()) return malformed("non-string message content");
    if (c.contains("finish_reason") && c["finish_reason"].is_string()) choice.finish_reason = c["finish_reason"].get<std::string>();
    const int64_t index = c.contains("index") && c["index"].is_number_integer() ? c["index"].get<int64_t>()
                                                                                : static_cast<int64_t>(indexed.size());
    indexed.emplace_back(index, std::move(choice));
  }
  std::stable_sort(indexed.begin(), indexed.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [index, choice] : indexed) result.choices.push_back(std::move(choice));
  if (j.contains("usage") && j["usage"].is_object()) {
    const json& u = j["usage"];
    if (u.contains("prompt_tokens") && u["prompt_tokens"].is_number_integer()) result.prompt_tokens = u["prompt_tokens"].get<int64_t>();
    if (u.contains("completion_tokens") && u["completion_tokens"].is_number_integer()) {
      result.completion_tokens = u["completion_tokens"].get<int64_t>();
    }
  }
  return absl::OkStatus();
}

ChatClient::ChatClient(ClientOptions options) : options_(std::move(options)), impl_(new Impl) {
  global_init_once();
  std::string base = options_.base_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  url_ = base + "/chat/completions";
  impl_->multi = curl_multi_init();
  impl_->rng.seed(options_.jitter_seed != 0 ? options_.jitter_seed : std::random_device{}());
  impl_->requests = RateLimiter(options_.requests_per_minute);
  impl_->tokens = RateLimiter(options_.tokens_per_minute);
}

ChatClient::~ChatClient() { delete impl_; }

std::string api_key_from_env(const std::string& name) {
  const char* value = name.empty() ? nullptr : std::getenv(name.c_str());
  return value == nullptr ? std::string() : std::string(value);
}

std::string ChatClient::redact(std::string text) const {
  if (options_.api_key.size() >= 4) text = absl::StrReplaceAll(text, {{options_.api_key, "[REDACTED]"}});
  return text;
}

std::string ChatClient::request_body(const ChatRequest& request) const {
  json messages = json::array();
  if (!request.system.empty()) messages.push_back({{"role", "system"}, {"content", request.system}});
  messages.push_back({{"role", "user"}, {"content", request.user}});
  json body = {{"model", options_.model},         {"messages", messages},
               {"temperature", options_.temperature}, {"top_p", options_.top_p},
               {"max_tokens", options_.max_tokens}, {"stream", false}};
  if (request.n > 1) body["n"] = request.n;
  return body.dump();
}

// The state of one run(): the attempts in flight, the requests waiting for a retry, and
// whether the caller's queue has run dry. loop() is the event loop; every other method is
// one step of it. Everything happens on the caller's thread.
class ChatClient::Run {
 public:
  Run(ChatClient& client, const NextRequest& next, const OnResult& on_result, const StopFlag& stop)
      : client_(client), im_(*client.impl_), next_(next), on_result_(on_result), stop_(stop) {
    const ClientOptions& o = client_.options_;
    settings_.url = client_.url_;
    settings_.timeout_ms = std::max(1L, std::lround(o.timeout_seconds * 1000));
    settings_.connect_ms = std::max(1L, std::lround(o.connect_timeout_seconds * 1000));
    settings_.auth = o.api_key.empty() ? "" : "Authorization: Bearer " + o.api_key;
  }
  // Every return path of loop() has already emptied `active_`; this covers an exception
  // from the caller's callbacks, which must not leave handles pointing at freed attempts.
  ~Run() { abandon_all(); }
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;

  absl::Status loop() {
    while (true) {
      const int stop_level = stop_.load();
      if (std::optional<absl::Status> stopped = obey_stop(stop_level)) return *stopped;
      const Clock::time_point now = Clock::now();
      double wait_seconds = 0.1;  // the loop also wakes this often to see `stop`
      if (stop_level == 0) wait_seconds = start_admitted(now, wait_seconds);
      wait_seconds = wait_for_retries(now, wait_seconds);
      if (active_.empty() && retries_.empty() && exhausted_) return absl::OkStatus();
      absl::StatusOr<bool> finished_any = collect_finished();
      if (!finished_any.ok()) return finished_any.status();
      if (*finished_any) continue;  // free slots: admit more before waiting
      int fds = 0;
      curl_multi_poll(im_.multi, nullptr, 0, std::max(0, static_cast<int>(std::ceil(wait_seconds * 1000))), &fds);
    }
  }

 private:
  // Level 2 abandons what is in flight; level 1 drops the retries and ends once the
  // attempts in flight have finished (their results still reach the caller).
  std::optional<absl::Status> obey_stop(int stop_level) {
    if (stop_level >= 2) {
      const size_t abandoned = active_.size();
      abandon_all();
      return absl::CancelledError(absl::StrCat("interrupted; ", abandoned, " request(s) in flight abandoned"));
    }
    if (stop_level == 1) {
      retries_.clear();
      if (active_.empty()) return absl::CancelledError("interrupted; in-flight requests finished");
    }
    return std::nullopt;
  }

  // Starts attempts while a slot is free and the rate limits admit one: a due retry first
  // (it has waited longest), else the caller's next request. Returns `wait_seconds`,
  // shortened to when the rate limits admit the next one.
  double start_admitted(Clock::time_point now, double wait_seconds) {
    while (static_cast<int>(active_.size()) < client_.options_.max_in_flight) {
      auto due = earliest_due_retry(now);
      if (due == retries_.end() && exhausted_) break;
      const double admit = admission_wait(now);
      if (admit > 0) return std::min(wait_seconds, admit);
      if (due != retries_.end()) {
        Pending retry = std::move(*due);
        retries_.erase(due);
        start(std::move(retry.request), retry.attempts_done + 1, retry.first_start, now);
        continue;
      }
      std::optional<ChatRequest> request = next_();
      if (!request) {
        exhausted_ = true;
        break;
      }
      start(std::move(*request), 1, now, now);
    }
    return wait_seconds;
  }

  std::vector<Pending>::iterator earliest_due_retry(Clock::time_point now) {
    auto due = retries_.end();
    for (auto it = retries_.begin(); it != retries_.end(); ++it) {
      if (it->ready <= now && (due == retries_.end() || it->ready < due->ready)) due = it;
    }
    return due;
  }

  // Shortens `wait_seconds` to the next retry's time, unless no slot is free (then only a
  // finishing attempt can make room, and libcurl wakes the poll for that).
  double wait_for_retries(Clock::time_point now, double wait_seconds) const {
    for (const Pending& p : retries_) {
      if (static_cast<int>(active_.size()) >= client_.options_.max_in_flight) break;
      wait_seconds = std::min(wait_seconds, std::max(0.0, std::chrono::duration<double>(p.ready - now).count()));
    }
    return wait_seconds;
  }

  // Drives the transfers and handles every attempt that finished. Returns whether any did,
  // or the error that ends the run.
  absl::StatusOr<bool> collect_finished() {
    int running = 0;
    curl_multi_perform(im_.multi, &running);
    int queued = 0;
    bool finished_any = false;
    while (CURLMsg* message = curl_multi_info_read(im_.multi, &queued)) {
      if (message->msg != CURLMSG_DONE) continue;
      auto found = active_.find(message->easy_handle);
      if (found == active_.end()) continue;
      std::unique_ptr<Attempt> attempt = std::move(found->second);
      active_.erase(found);
      finished_any = true;
      if (absl::Status status = finish(*attempt, message->data.result); !status.ok()) return status;
    }
    return finished_any;
  }

  // One finished attempt: a result for the caller, a retry, or the error that ends the run.
  absl::Status finish(Attempt& attempt, CURLcode code) {
    ChatResult result;
    std::optional<AttemptError> error = classify(attempt, code, result);
    release(attempt);
    const Clock::time_point now = Clock::now();
    if (!error) {
      deliver(attempt, std::move(result), now);
      return absl::OkStatus();
    }
    return retry_or_stop(attempt, *error, now);
  }

  void deliver(const Attempt& attempt, ChatResult result, Clock::time_point now) {
    ClientStats& stats = client_.stats_;
    ++stats.succeeded;
    stats.prompt_tokens += result.prompt_tokens;
    stats.completion_tokens += result.completion_tokens;
    // The reply's usage replaces the estimate charged when the attempt started.
    im_.tokens.adjust(attempt.estimated_tokens - static_cast<double>(result.prompt_tokens + result.completion_tokens));
    result.id = attempt.request.id;
    result.attempts = attempt.number;
    result.seconds = std::chrono::duration<double>(now - attempt.first_start).count();
    on_result_(std::move(result));
    exhausted_ = false;  // the caller may have new work (a re-request)
  }

  absl::Status retry_or_stop(Attempt& attempt, const AttemptError& error, Clock::time_point now) {
    const ClientOptions& o = client_.options_;
    // A failed attempt produced no completion: give back that part of its token estimate.
    im_.tokens.adjust(static_cast<double>(o.max_tokens) * std::max(1, attempt.request.n));
    if (!error.retryable) {
      abandon_all();
      return absl::FailedPreconditionError(client_.redact(error.message));
    }
    if (attempt.number >= o.max_attempts) {
      abandon_all();
      return absl::UnavailableError(
          client_.redact(absl::StrCat(error.message, " (gave up after ", attempt.number, " attempts)")));
    }
    double delay = backoff(attempt.number);
    if (error.retry_after >= 0) {
      const double honoured = std::min(error.retry_after, o.max_retry_after_seconds);
      client_.stats_.retry_after_waited_seconds += honoured;
      delay = std::max(delay, honoured);
    }
    ++client_.stats_.retries;
    retries_.push_back(Pending{now + std::chrono::microseconds(static_cast<int64_t>(delay * 1e6)),
                               std::move(attempt.request), attempt.number, attempt.first_start});
    return absl::OkStatus();
  }

  // Charges the rate limits and hands the attempt to libcurl.
  void start(ChatRequest request, int number, Clock::time_point first_start, Clock::time_point now) {
    auto attempt = std::make_unique<Attempt>();
    attempt->request = std::move(request);
    attempt->number = number;
    attempt->first_start = number == 1 ? now : first_start;
    attempt->estimated_tokens = estimate_tokens(attempt->request);
    im_.requests.try_acquire(1, now);
    im_.tokens.adjust(-attempt->estimated_tokens);
    attempt->body = client_.request_body(attempt->request);
    attempt->configure(take_easy_handle(), settings_);
    curl_multi_add_handle(im_.multi, attempt->easy);
    ++client_.stats_.attempts;
    active_.emplace(attempt->easy, std::move(attempt));
  }

  // A reused handle keeps its connection in the multi handle's pool.
  CURL* take_easy_handle() {
    if (im_.idle.empty()) return curl_easy_init();
    CURL* easy = im_.idle.back();
    im_.idle.pop_back();
    return easy;
  }

  void release(Attempt& attempt) {
    curl_multi_remove_handle(im_.multi, attempt.easy);
    curl_slist_free_all(attempt.headers);
    attempt.headers = nullptr;
    curl_easy_reset(attempt.easy);
    im_.idle.push_back(attempt.easy);
  }

  void abandon_all() {
    for (auto& entry : active_) release(*entry.second);
    active_.clear();
    retries_.clear();
  }

  // Tokens a request may cost before its reply says: prompt characters / 4 plus every
  // completion at its maximum length.
  double estimate_tokens(const ChatRequest& r) const {
    return static_cast<double>(r.system.size() + r.user.size()) / 4.0 +
           static_cast<double>(client_.options_.max_tokens) * std::max(1, r.n);
  }

  // Seconds until the rate limits let one more request start (0: now).
  double admission_wait(Clock::time_point now) {
    return std::max(im_.requests.seconds_until_available(1, now), im_.tokens.seconds_until_available(1, now));
  }

  // "Equal jitter": half of the exponential delay is fixed, the other half random, so
  // clients that failed together do not retry together.
  double backoff(int attempts_done) {
    const ClientOptions& o = client_.options_;
    const double delay = std::min(o.backoff_max_seconds, o.backoff_base_seconds * std::pow(2.0, attempts_done - 1));
    std::uniform_real_distribution<double> half(0.0, delay / 2);
    return delay / 2 + half(im_.rng);
  }

  // What went wrong with a finished attempt, if anything; fills `result` on success.
  std::optional<AttemptError> classify(const Attempt& attempt, CURLcode code, ChatResult& result) {
    if (code != CURLE_OK) return transport_failure(attempt, code);
    const long status = attempt.http_status();
    if (status < 200 || status >= 300) return http_failure(attempt, status);
    if (absl::Status parsed = parse_chat_completion(attempt.response, result); !parsed.ok()) {
      ++client_.stats_.malformed;
      return AttemptError{true, absl::StrCat("POST ", client_.url_, ": malformed reply (", parsed.message(), ")")};
    }
    return std::nullopt;
  }

  AttemptError transport_failure(const Attempt& attempt, CURLcode code) {
    ClientStats& stats = client_.stats_;
    if (code == CURLE_OPERATION_TIMEDOUT) {
      ++stats.timeouts;
    } else if (code == CURLE_PARTIAL_FILE) {
      ++stats.malformed;  // a reply cut short
    } else {
      ++stats.connection_errors;
    }
    return AttemptError{retryable_curl_error(code), absl::StrCat("POST ", client_.url_, ": ", attempt.transport_detail(code))};
  }

  // 429, 408 and 5xx are the server's temporary troubles; any other status is the request's
  // fault and would fail again.
  AttemptError http_failure(const Attempt& attempt, long status) {
    AttemptError error;
    error.message = absl::StrCat("POST ", client_.url_, ": HTTP ", status, ": ", server_error_message(attempt.response));
    error.retryable = status == 429 || status == 408 || status >= 500;
    if (status == 429) ++client_.stats_.http_429;
    if (status >= 500) ++client_.stats_.http_5xx;
    error.retry_after = attempt.retry_after_seconds();
    return error;
  }

  ChatClient& client_;
  Impl& im_;
  const NextRequest& next_;
  const OnResult& on_result_;
  const StopFlag& stop_;
  AttemptSettings settings_;
  std::map<CURL*, std::unique_ptr<Attempt>> active_;
  std::vector<Pending> retries_;
  bool exhausted_ = false;  // next_() said it has nothing (until a result may add work)
};

absl::Status ChatClient::run(const NextRequest& next, const OnResult& on_result, const StopFlag& stop) {
  Run run(*this, next, on_result, stop);
  return run.loop();
}

}  // namespace la3::llm
