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

// One HTTP attempt of one request.
struct Transfer {
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  ChatRequest request;
  std::string body, response;
  char error[CURL_ERROR_SIZE] = {0};
  int attempt = 1;
  double estimated_tokens = 0;
  Clock::time_point first_start;
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

absl::Status ChatClient::run(const NextRequest& next, const OnResult& on_result, const StopFlag& stop) {
  Impl& im = *impl_;
  std::map<CURL*, std::unique_ptr<Transfer>> active;
  std::vector<Pending> retries;
  bool exhausted = false;
  const long timeout_ms = std::max(1L, std::lround(options_.timeout_seconds * 1000));
  const long connect_ms = std::max(1L, std::lround(options_.connect_timeout_seconds * 1000));
  const std::string auth = options_.api_key.empty() ? "" : "Authorization: Bearer " + options_.api_key;

  auto release = [&](Transfer& t) {
    curl_multi_remove_handle(im.multi, t.easy);
    curl_slist_free_all(t.headers);
    t.headers = nullptr;
    curl_easy_reset(t.easy);
    im.idle.push_back(t.easy);
  };
  auto abandon_all = [&] {
    for (auto& [easy, t] : active) release(*t);
    active.clear();
    retries.clear();
  };
  auto estimate = [&](const ChatRequest& r) {
    return static_cast<double>(r.system.size() + r.user.size()) / 4.0 +
           static_cast<double>(options_.max_tokens) * std::max(1, r.n);
  };
  // Seconds until the rate limits let one more request start (0: now).
  auto admission_wait = [&](Clock::time_point now) {
    return std::max(im.requests.seconds_until_available(1, now), im.tokens.seconds_until_available(1, now));
  };
  auto start = [&](ChatRequest request, int attempt, Clock::time_point first_start, Clock::time_point now) {
    auto t = std::make_unique<Transfer>();
    t->request = std::move(request);
    t->attempt = attempt;
    t->first_start = attempt == 1 ? now : first_start;
    t->estimated_tokens = estimate(t->request);
    im.requests.try_acquire(1, now);
    im.tokens.adjust(-t->estimated_tokens);
    t->body = request_body(t->request);
    if (im.idle.empty()) {
      t->easy = curl_easy_init();
    } else {
      t->easy = im.idle.back();
      im.idle.pop_back();
    }
    t->headers = curl_slist_append(t->headers, "Content-Type: application/json");
    // curl 7.88 sends "Expect: 100-continue" for bodies over 1 KiB and waits for the server's
    // interim reply: a wasted round trip per request (prompts are usually longer than that).
    t->headers = curl_slist_append(t->headers, "Expect:");
    if (!auth.empty()) t->headers = curl_slist_append(t->headers, auth.c_str());
    CURL* e = t->easy;
    curl_easy_setopt(e, CURLOPT_URL, url_.c_str());
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->body.data());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t->body.size()));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, append_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &t->response);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
    curl_multi_add_handle(im.multi, e);
    ++stats_.attempts;
    active.emplace(e, std::move(t));
  };
  auto backoff = [&](int attempts_done) {
    const double delay =
        std::min(options_.backoff_max_seconds, options_.backoff_base_seconds * std::pow(2.0, attempts_done - 1));
    std::uniform_real_distribution<double> half(0.0, delay / 2);
    return delay / 2 + half(im.rng);  // "equal jitter"
  };

  // Classifies a finished attempt; fills `result` on success.
  auto classify = [&](Transfer& t, CURLcode code, ChatResult& result) -> std::optional<AttemptError> {
    if (code != CURLE_OK) {
      const std::string detail = t.error[0] != '\0' ? std::string(t.error) : curl_easy_strerror(code);
      if (code == CURLE_OPERATION_TIMEDOUT) {
        ++stats_.timeouts;
      } else if (code == CURLE_PARTIAL_FILE) {
        ++stats_.malformed;
      } else {
        ++stats_.connection_errors;
      }
      return AttemptError{retryable_curl_error(code), absl::StrCat("POST ", url_, ": ", detail)};
    }
    long status = 0;
    curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status >= 300) {
      AttemptError error;
      error.message = absl::StrCat("POST ", url_, ": HTTP ", status, ": ", server_error_message(t.response));
      error.retryable = status == 429 || status == 408 || status >= 500;
      if (status == 429) ++stats_.http_429;
      if (status >= 500) ++stats_.http_5xx;
      curl_off_t retry_after = -1;
      if (curl_easy_getinfo(t.easy, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK && retry_after > 0) {
        error.retry_after = static_cast<double>(retry_after);
      }
      return error;
    }
    if (absl::Status parsed = parse_chat_completion(t.response, result); !parsed.ok()) {
      ++stats_.malformed;
      return AttemptError{true, absl::StrCat("POST ", url_, ": malformed reply (", parsed.message(), ")")};
    }
    return std::nullopt;
  };

  while (true) {
    const int stop_level = stop.load();
    if (stop_level >= 2) {
      const size_t abandoned = active.size();
      abandon_all();
      return absl::CancelledError(absl::StrCat("interrupted; ", abandoned, " request(s) in flight abandoned"));
    }
    if (stop_level == 1) {
      retries.clear();
      if (active.empty()) return absl::CancelledError("interrupted; in-flight requests finished");
    }
    Clock::time_point now = Clock::now();
    double wait_seconds = 0.1;  // the loop also wakes this often to see `stop`
    while (stop_level == 0 && static_cast<int>(active.size()) < options_.max_in_flight) {
      auto ready = retries.end();
      for (auto it = retries.begin(); it != retries.end(); ++it) {
        if (it->ready <= now && (ready == retries.end() || it->ready < ready->ready)) ready = it;
      }
      if (ready == retries.end() && exhausted) break;
      const double admit = admission_wait(now);
      if (admit > 0) {
        wait_seconds = std::min(wait_seconds, admit);
        break;
      }
      if (ready != retries.end()) {
        Pending p = std::move(*ready);
        retries.erase(ready);
        start(std::move(p.request), p.attempts_done + 1, p.first_start, now);
        continue;
      }
      std::optional<ChatRequest> request = next();
      if (!request) {
        exhausted = true;
        break;
      }
      start(std::move(*request), 1, now, now);
    }
    for (const Pending& p : retries) {
      if (static_cast<int>(active.size()) >= options_.max_in_flight) break;  // a slot must free first
      wait_seconds = std::min(wait_seconds, std::max(0.0, std::chrono::duration<double>(p.ready - now).count()));
    }
    if (active.empty() && retries.empty() && exhausted) return absl::OkStatus();

    int running = 0;
    curl_multi_perform(im.multi, &running);
    int queued = 0;
    bool finished_any = false;
    while (CURLMsg* message = curl_multi_info_read(im.multi, &queued)) {
      if (message->msg != CURLMSG_DONE) continue;
      auto found = active.find(message->easy_handle);
      if (found == active.end()) continue;
      std::unique_ptr<Transfer> t = std::move(found->second);
      active.erase(found);
      finished_any = true;
      ChatResult result;
      std::optional<AttemptError> error = classify(*t, message->data.result, result);
      release(*t);
      now = Clock::now();
      if (!error) {
        ++stats_.succeeded;
        stats_.prompt_tokens += result.prompt_tokens;
        stats_.completion_tokens += result.completion_tokens;
        im.tokens.adjust(t->estimated_tokens - static_cast<double>(result.prompt_tokens + result.completion_tokens));
        result.id = t->request.id;
        result.attempts = t->attempt;
        result.seconds = std::chrono::duration<double>(now - t->first_start).count();
        on_result(std::move(result));
        exhausted = false;  // the caller may have new work (a re-request)
        continue;
      }
      // A failed attempt: give back the completion part of its token estimate.
      im.tokens.adjust(static_cast<double>(options_.max_tokens) * std::max(1, t->request.n));
      if (!error->retryable) {
        abandon_all();
        return absl::FailedPreconditionError(redact(error->message));
      }
      if (t->attempt >= options_.max_attempts) {
        abandon_all();
        return absl::UnavailableError(
            redact(absl::StrCat(error->message, " (gave up after ", t->attempt, " attempts)")));
      }
      double delay = backoff(t->attempt);
      if (error->retry_after >= 0) {
        const double honoured = std::min(error->retry_after, options_.max_retry_after_seconds);
        stats_.retry_after_waited_seconds += honoured;
        delay = std::max(delay, honoured);
      }
      ++stats_.retries;
      retries.push_back(Pending{now + std::chrono::microseconds(static_cast<int64_t>(delay * 1e6)),
                                std::move(t->request), t->attempt, t->first_start});
    }
    if (finished_any) continue;  // free slots: admit more before waiting
    int fds = 0;
    curl_multi_poll(im.multi, nullptr, 0, std::max(0, static_cast<int>(std::ceil(wait_seconds * 1000))), &fds);
  }
}

}  // namespace la3::llm
