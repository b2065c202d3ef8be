// ChatClient against the scripted server on 127.0.0.1 (real HTTP, no mocks): replies,
// retries with backoff, Retry-After, timeouts, malformed and truncated replies, fatal
// statuses, the attempt limit, concurrency and the client-side rate limits.
#include "llm_client/chat_client.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>

#include "tests/llm_client/scripted_server.h"

namespace la3::llm {
namespace {

using testing::Behavior;
using testing::ScriptedServer;
using testing::Step;

constexpr const char* kKey = "sk-test-SECRET-0123456789abcdef";

ClientOptions fast_options(const ScriptedServer& server) {
  ClientOptions o;
  o.base_url = server.base_url();
  o.model = "test-model";
  o.api_key = kKey;
  o.timeout_seconds = 2;
  o.connect_timeout_seconds = 1;
  o.max_in_flight = 4;
  o.max_attempts = 4;
  o.backoff_base_seconds = 0.05;
  o.backoff_max_seconds = 0.2;
  o.jitter_seed = 7;
  return o;
}

struct RunResult {
  absl::Status status;
  std::vector<ChatResult> results;
  ClientStats stats;
  double seconds = 0;
};

RunResult run_requests(ChatClient& client, int count, int n = 1) {
  RunResult out;
  int issued = 0;
  StopFlag stop{0};
  const auto start = std::chrono::steady_clock::now();
  out.status = client.run(
      [&]() -> std::optional<ChatRequest> {
        if (issued == count) return std::nullopt;
        ChatRequest r;
        r.id = static_cast<uint64_t>(issued);
        r.user = "Rewrite.\nDescription: The molecule is request " + std::to_string(issued) + ".";
        r.n = n;
        ++issued;
        return r;
      },
      [&](ChatResult&& r) { out.results.push_back(std::move(r)); }, stop);
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  out.stats = client.stats();
  return out;
}

TEST(ChatClient, NormalRepliesCarryTextUsageAndTheRequestFields) {
  ScriptedServer server;
  ClientOptions o = fast_options(server);
  o.temperature = 0.7;
  o.top_p = 0.9;
  o.max_tokens = 300;
  ChatClient client(o);
  const RunResult r = run_requests(client, 10, 2);
  ASSERT_TRUE(r.status.ok()) << r.status;
  ASSERT_EQ(r.results.size(), 10u);
  for (const ChatResult& result : r.results) {
    ASSERT_EQ(result.choices.size(), 2u);
    EXPECT_EQ(result.attempts, 1);
    EXPECT_GT(result.prompt_tokens, 0);
    EXPECT_GT(result.completion_tokens, 0);
    EXPECT_EQ(result.choices[0].finish_reason, "stop");
    EXPECT_NE(result.choices[0].text.find("The molecule is request " + std::to_string(result.id)), std::string::npos);
  }
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 10u);
  EXPECT_EQ(requests[0].authorization, std::string("Bearer ") + kKey);
  const nlohmann::json body = nlohmann::json::parse(requests[0].body);
  EXPECT_EQ(body["model"], "test-model");
  EXPECT_DOUBLE_EQ(body["temperature"].get<double>(), 0.7);
  EXPECT_DOUBLE_EQ(body["top_p"].get<double>(), 0.9);
  EXPECT_EQ(body["max_tokens"], 300);
  EXPECT_EQ(body["n"], 2);
  EXPECT_EQ(body["messages"].back()["role"], "user");
}

TEST(ChatClient, NoKeyMeansNoAuthorizationHeader) {
  ScriptedServer server;
  ClientOptions o = fast_options(server);
  o.api_key.clear();
  ChatClient client(o);
  ASSERT_TRUE(run_requests(client, 1).status.ok());
  EXPECT_EQ(server.requests()[0].authorization, "");
}

TEST(ChatClient, RetriesA429AfterItsRetryAfter) {
  ScriptedServer server;
  server.script({Step{Behavior::kRateLimited, /*retry_after_seconds=*/1}});
  ChatClient client(fast_options(server));
  const RunResult r = run_requests(client, 1);
  ASSERT_TRUE(r.status.ok()) << r.status;
  ASSERT_EQ(r.results.size(), 1u);
  EXPECT_EQ(r.results[0].attempts, 2);
  EXPECT_EQ(r.stats.http_429, 1);
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  // The backoff alone would be 25-50 ms; Retry-After asks for 1 s.
  EXPECT_GE(requests[1].seconds - requests[0].seconds, 0.95);
}

TEST(ChatClient, RetriesServerErrorsWithGrowingJitteredBackoff) {
  ScriptedServer server;
  server.script({Step{Behavior::kServerError}, Step{Behavior::kUnavailable}, Step{Behavior::kServerError}});
  ClientOptions o = fast_options(server);
  o.backoff_base_seconds = 0.1;
  o.backoff_max_seconds = 10;
  ChatClient client(o);
  const RunResult r = run_requests(client, 1);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.results[0].attempts, 4);
  EXPECT_EQ(r.stats.http_5xx, 3);
  EXPECT_EQ(r.stats.retries, 3);
  const auto q = server.requests();
  ASSERT_EQ(q.size(), 4u);
  // Retry a waits base * 2^(a-1) with equal jitter: [0.05, 0.1], [0.1, 0.2], [0.2, 0.4] s.
  const double expected_min[] = {0.05, 0.1, 0.2};
  const double expected_max[] = {0.1, 0.2, 0.4};
  for (int a = 0; a < 3; ++a) {
    const double gap = q[static_cast<size_t>(a) + 1].seconds - q[static_cast<size_t>(a)].seconds;
    EXPECT_GE(gap, expected_min[a] * 0.9) << "retry " << a + 1;
    EXPECT_LE(gap, expected_max[a] + 0.5) << "retry " << a + 1;
  }
}

TEST(ChatClient, AHungRequestTimesOutAndIsRetried) {
  ScriptedServer server;
  server.script({Step{Behavior::kHang, 0, /*hang_ms=*/3000}});
  ClientOptions o = fast_options(server);
  o.timeout_seconds = 0.3;
  ChatClient client(o);
  const RunResult r = run_requests(client, 1);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.results[0].attempts, 2);
  EXPECT_EQ(r.stats.timeouts, 1);
  EXPECT_LT(r.seconds, 2.5);
}

TEST(ChatClient, MalformedJsonAndACutShortReplyAreRetried) {
  ScriptedServer server;
  server.script({Step{Behavior::kMalformed}, Step{Behavior::kCutShort}});
  ChatClient client(fast_options(server));
  const RunResult r = run_requests(client, 1);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.results[0].attempts, 3);
  EXPECT_EQ(r.stats.malformed, 2);
  EXPECT_EQ(r.results[0].choices.size(), 1u);
}

TEST(ChatClient, A401StopsTheRunAtOnceAndTheKeyIsRedacted) {
  ScriptedServer server;
  server.set_default(Step{Behavior::kUnauthorized});
  ClientOptions o = fast_options(server);
  o.max_in_flight = 1;
  ChatClient client(o);
  const RunResult r = run_requests(client, 20);
  ASSERT_FALSE(r.status.ok());
  const std::string message(r.status.message());
  EXPECT_NE(message.find("HTTP 401"), std::string::npos) << message;
  EXPECT_NE(message.find(server.base_url() + "/chat/completions"), std::string::npos) << message;
  EXPECT_NE(message.find("Incorrect API key provided"), std::string::npos) << message;
  EXPECT_EQ(message.find(kKey), std::string::npos) << message;
  EXPECT_NE(message.find("[REDACTED]"), std::string::npos) << message;
  EXPECT_EQ(server.request_count(), 1u);  // no retry, no further request
  EXPECT_TRUE(r.results.empty());
}

TEST(ChatClient, BadRequestAndNotFoundStopTheRun) {
  ScriptedServer server;
  server.script({Step{Behavior::kBadRequest}});
  ClientOptions o = fast_options(server);
  o.max_in_flight = 1;
  {
    ChatClient client(o);
    const RunResult r = run_requests(client, 5);
    EXPECT_NE(std::string(r.status.message()).find("HTTP 400: Invalid value for 'temperature'"), std::string::npos) << r.status;
  }
  o.base_url = server.base_url() + "/wrong";
  ChatClient client(o);
  const RunResult r = run_requests(client, 5);
  EXPECT_NE(std::string(r.status.message()).find("HTTP 404"), std::string::npos) << r.status;
  EXPECT_EQ(server.request_count(), 1u);  // the 404s never reached the chat handler
}

TEST(ChatClient, GivesUpAfterMaxAttempts) {
  ScriptedServer server;
  server.set_default(Step{Behavior::kUnavailable});
  ClientOptions o = fast_options(server);
  o.max_in_flight = 1;
  o.max_attempts = 3;
  ChatClient client(o);
  const RunResult r = run_requests(client, 1);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(std::string(r.status.message()).find("gave up after 3 attempts"), std::string::npos) << r.status;
  EXPECT_EQ(server.request_count(), 3u);
}

TEST(ChatClient, AnUnreachableServerIsAClearError) {
  ClientOptions o;
  o.base_url = "http://127.0.0.1:1/v1";  // nothing listens on port 1
  o.model = "m";
  o.max_attempts = 2;
  o.backoff_base_seconds = 0.01;
  o.connect_timeout_seconds = 1;
  ChatClient client(o);
  const RunResult r = run_requests(client, 3);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kUnavailable);
  const std::string message(r.status.message());
  EXPECT_NE(message.find("http://127.0.0.1:1/v1/chat/completions"), std::string::npos) << message;
  EXPECT_NE(message.find("connect"), std::string::npos) << message;
}

TEST(ChatClient, KeepsManyRequestsInFlight) {
  ScriptedServer server;
  server.set_latency_ms(200);
  ClientOptions o = fast_options(server);
  o.max_in_flight = 16;
  ChatClient client(o);
  const RunResult r = run_requests(client, 32);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.results.size(), 32u);
  // Sequentially this would take 6.4 s; 16 at a time two rounds of 0.2 s (plus, on a busy
  // machine, a 1 s SYN retransmit: cpp-httplib's listen backlog is 5).
  EXPECT_LT(r.seconds, 3.5);
}

TEST(ChatClient, HoldsTheRequestsPerMinuteLimit) {
  ScriptedServer server;
  ClientOptions o = fast_options(server);
  o.max_in_flight = 8;
  o.requests_per_minute = 1200;  // 20/s, burst 20
  ChatClient client(o);
  const RunResult r = run_requests(client, 50);
  ASSERT_TRUE(r.status.ok()) << r.status;
  const auto q = server.requests();
  ASSERT_EQ(q.size(), 50u);
  // Token bucket: in any window of w seconds at most burst + rate * w requests start (the
  // server sees arrival times: allow a few for uneven transit on a busy machine).
  for (size_t i = 0; i < q.size(); ++i) {
    for (size_t j = i; j < q.size(); ++j) {
      const double window = q[j].seconds - q[i].seconds;
      EXPECT_LE(static_cast<double>(j - i + 1), 20 + 20 * window + 4) << "requests " << i << ".." << j;
    }
  }
  EXPECT_GE(q.back().seconds - q.front().seconds, (50 - 20) / 20.0 * 0.85);
}

TEST(ChatClient, HoldsTheTokensPerMinuteLimit) {
  ScriptedServer server;
  ClientOptions o = fast_options(server);
  o.max_in_flight = 8;
  o.max_tokens = 50;
  o.tokens_per_minute = 12000;  // 200 tokens/s, burst 200
  ChatClient client(o);
  const RunResult r = run_requests(client, 16);
  ASSERT_TRUE(r.status.ok()) << r.status;
  int64_t used = 0;
  for (const ChatResult& result : r.results) used += result.prompt_tokens + result.completion_tokens;
  const auto q = server.requests();
  // Everything but the first burst and one request's estimate must be paid for at 200/s.
  const double per_request = static_cast<double>(used) / 16.0;
  const double min_seconds = (static_cast<double>(used) - 200 - (per_request + 50)) / 200.0;
  EXPECT_GT(min_seconds, 0.5);
  EXPECT_GE(q.back().seconds - q.front().seconds, min_seconds * 0.85) << used << " tokens";
}

TEST(ChatClient, DrainStopsIssuingAndAbandonStopsAtOnce) {
  ScriptedServer server;
  server.set_latency_ms(100);
  ClientOptions o = fast_options(server);
  o.max_in_flight = 4;
  ChatClient client(o);
  StopFlag stop{0};
  int issued = 0, finished = 0;
  const absl::Status status = client.run(
      [&]() -> std::optional<ChatRequest> {
        if (issued == 100) return std::nullopt;
        ChatRequest r;
        r.id = static_cast<uint64_t>(issued++);
        r.user = "x";
        return r;
      },
      [&](ChatResult&&) {
        if (++finished == 4) stop.store(1);
      },
      stop);
  EXPECT_TRUE(absl::IsCancelled(status)) << status;
  EXPECT_EQ(finished, issued);  // every request issued was finished, none after the stop
  EXPECT_LE(issued, 12);
}

}  // namespace
}  // namespace la3::llm
