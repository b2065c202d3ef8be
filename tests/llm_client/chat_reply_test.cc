// What the chat client reads from a server, without HTTP: a reply body (choices put in
// `index` order, usage, each malformed shape named) and an error body's message.
#include <gtest/gtest.h>

#include "llm_client/chat_client.h"

namespace la3::llm {
namespace {

TEST(ChatReply, ChoicesInIndexOrderAndUsage) {
  ChatResult result;
  const absl::Status status = parse_chat_completion(
      R"({"choices": [{"index": 1, "message": {"content": "second"}, "finish_reason": "length"},
                      {"index": 0, "message": {"role": "assistant", "content": "first"}, "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 12, "completion_tokens": 5}})",
      result);
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_EQ(result.choices.size(), 2u);
  EXPECT_EQ(result.choices[0].text, "first");
  EXPECT_EQ(result.choices[0].finish_reason, "stop");
  EXPECT_EQ(result.choices[1].text, "second");
  EXPECT_EQ(result.prompt_tokens, 12);
  EXPECT_EQ(result.completion_tokens, 5);
}

TEST(ChatReply, MalformedRepliesSayWhat) {
  auto problem = [](const std::string& body) {
    ChatResult result;
    return std::string(parse_chat_completion(body, result).message());
  };
  EXPECT_EQ(problem(R"({"choices": [{"message": {"content": "unterminated)"), "not JSON");
  EXPECT_EQ(problem(R"({"choices": []})"), "no \"choices\" array");
  EXPECT_EQ(problem(R"([1, 2])"), "no \"choices\" array");
  EXPECT_EQ(problem(R"({"choices": [{"text": "x"}]})"), "a choice without \"message\"");
  EXPECT_EQ(problem(R"({"choices": [{"message": {"content": 3}}]})"), "non-string message content");
  EXPECT_EQ(problem(R"({"choices": [{"message": {"content": null}}]})"), "");  // a refusal: empty text
}

TEST(ChatReply, ServerErrorMessages) {
  EXPECT_EQ(server_error_message(R"({"error": {"message": "Rate limit reached"}})"), "Rate limit reached");
  EXPECT_EQ(server_error_message(R"({"error": "bad temperature"})"), "bad temperature");
  EXPECT_EQ(server_error_message("<html>\n502\n</html>"), "<html> 502 </html>");
  EXPECT_EQ(server_error_message(""), "(empty body)");
}

// An empty error message used to be returned as the reason (an error line ending in ": "):
// found by fuzz/chat_completion_json_fuzz.cc.
TEST(ChatReply, AnEmptyErrorMessageShowsTheBody) {
  EXPECT_EQ(server_error_message(R"({"error": {"message": ""}})"), R"({"error": {"message": ""}})");
  EXPECT_EQ(server_error_message(R"({"error": ""})"), R"({"error": ""})");
}

}  // namespace
}  // namespace la3::llm
