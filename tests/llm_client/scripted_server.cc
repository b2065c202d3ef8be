#include "tests/llm_client/scripted_server.h"

#include <httplib.h>

#include <deque>
#include <nlohmann/json.hpp>

namespace la3::llm::testing {

using nlohmann::json;

struct ScriptedServer::Impl {
  httplib::Server server;
  std::thread thread;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  mutable std::mutex mutex;
  std::deque<Step> script;
  Step fallback;
  ReplyFn reply = &ScriptedServer::default_reply;
  std::vector<RecordedRequest> requests;
  std::atomic<bool> stopping{false};
};

std::string ScriptedServer::caption_of(const std::string& user_prompt) {
  const std::string marker = "Description: ";
  const size_t at = user_prompt.find(marker);
  if (at == std::string::npos) return user_prompt;
  const size_t begin = at + marker.size();
  const size_t end = user_prompt.find('\n', begin);
  return user_prompt.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

std::string ScriptedServer::default_reply(const std::string& user_prompt, int index, int choice) {
  return "Put differently (variant " + std::to_string(index) + "." + std::to_string(choice) + "): " + caption_of(user_prompt);
}

ScriptedServer::ScriptedServer(int threads) : impl_(std::make_unique<Impl>()) {
  Impl* im = impl_.get();
  // Every keep-alive connection holds a worker: size the pool for the clients' in-flight count.
  im->server.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  im->server.set_keep_alive_max_count(100000);
  // Headers and body go out in separate writes: without TCP_NODELAY, Nagle + the client's
  // delayed ACK add ~40 ms to every reply.
  im->server.set_tcp_nodelay(true);
  im->server.Post("/v1/chat/completions", [this, im](const httplib::Request& req, httplib::Response& res) {
    RecordedRequest record;
    record.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - im->started).count();
    record.body = req.body;
    record.authorization = req.get_header_value("Authorization");
    const json body = json::parse(req.body, nullptr, false);
    if (body.is_object() && body.contains("messages") && body["messages"].is_array() && !body["messages"].empty()) {
      record.user_prompt = body["messages"].back().value("content", "");
    }
    if (body.is_object() && body.contains("n") && body["n"].is_number_integer()) record.n = body["n"].get<int>();
    Step step;
    int index = 0;
    ReplyFn reply;
    {
      std::lock_guard<std::mutex> lock(im->mutex);
      if (!im->script.empty()) {
        step = im->script.front();
        im->script.pop_front();
      } else {
        step = im->fallback;
      }
      record.behavior = step.behavior;
      index = static_cast<int>(im->requests.size());
      im->requests.push_back(record);
      reply = im->reply;
    }
    if (const int latency = latency_ms_.load(); latency > 0) std::this_thread::sleep_for(std::chrono::milliseconds(latency));
    auto error = [&](int status, const std::string& message) {
      res.status = status;
      res.set_content(json{{"error", {{"message", message}, {"type", "test_error"}}}}.dump(), "application/json");
    };
    switch (step.behavior) {
      case Behavior::kRateLimited:
        if (step.retry_after_seconds > 0) res.set_header("Retry-After", std::to_string(step.retry_after_seconds));
        return error(429, "Rate limit reached for requests");
      case Behavior::kServerError:
        return error(500, "The server had an error while processing your request");
      case Behavior::kUnavailable:
        if (step.retry_after_seconds > 0) res.set_header("Retry-After", std::to_string(step.retry_after_seconds));
        return error(503, "The engine is currently overloaded");
      case Behavior::kBadRequest:
        return error(400, "Invalid value for 'temperature'");
      case Behavior::kUnauthorized: {
        const std::string token = record.authorization.substr(std::min<size_t>(7, record.authorization.size()));
        return error(401, "Incorrect API key provided: " + token + ". You can find your API key at the dashboard.");
      }
      case Behavior::kMalformed:
        res.set_content("{\"choices\": [{\"message\": {\"content\": \"unterminated", "application/json");
        return;
      case Behavior::kCutShort:
        // Announces 4000 bytes, sends 40, then drops the connection.
        res.set_content_provider(4000, "application/json", [](size_t, size_t, httplib::DataSink& sink) {
          const std::string part = "{\"choices\": [{\"index\": 0, \"message\": {";
          sink.write(part.data(), part.size());
          return false;
        });
        return;
      case Behavior::kHang:
        for (int waited = 0; waited < step.hang_ms && !im->stopping.load(); waited += 10) {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        break;
      case Behavior::kOk:
      case Behavior::kLength:
        break;
    }
    json choices = json::array();
    size_t completion_chars = 0;
    for (int c = 0; c < record.n; ++c) {
      const std::string text = reply(record.user_prompt, index, c);
      completion_chars += text.size();
      choices.push_back({{"index", c},
                         {"message", {{"role", "assistant"}, {"content", text}}},
                         {"finish_reason", step.behavior == Behavior::kLength ? "length" : "stop"}});
    }
    const int64_t prompt_tokens = static_cast<int64_t>(record.user_prompt.size() / 4 + 8);
    const int64_t completion_tokens = static_cast<int64_t>(completion_chars / 4 + 1);
    res.set_content(json{{"id", "chatcmpl-" + std::to_string(index)},
                         {"object", "chat.completion"},
                         {"created", 0},
                         {"model", body.is_object() ? body.value("model", "") : ""},
                         {"choices", choices},
                         {"usage",
                          {{"prompt_tokens", prompt_tokens},
                           {"completion_tokens", completion_tokens},
                           {"total_tokens", prompt_tokens + completion_tokens}}}}
                        .dump(),
                    "application/json");
  });
  port_ = im->server.bind_to_any_port("127.0.0.1");
  im->thread = std::thread([im] { im->server.listen_after_bind(); });
  // cpp-httplib 0.11.4 has no wait_until_ready(): poll is_running() (docs/BUILD.md pitfall 9).
  while (!im->server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

ScriptedServer::~ScriptedServer() {
  impl_->stopping.store(true);
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::string ScriptedServer::base_url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }

void ScriptedServer::script(std::vector<Step> steps) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->script.assign(steps.begin(), steps.end());
}

void ScriptedServer::set_default(Step step) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->fallback = step;
}

void ScriptedServer::set_reply(ReplyFn reply) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->reply = std::move(reply);
}

std::vector<RecordedRequest> ScriptedServer::requests() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->requests;
}

size_t ScriptedServer::request_count() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->requests.size();
}

}  // namespace la3::llm::testing
