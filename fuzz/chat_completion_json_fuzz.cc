// Fuzz target: what the chat client (llm_client/chat_client.h) reads from a server: a
// Chat Completions reply body (choices, index order, usage) and an error body's message.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/fuzz_check.h"
#include "llm_client/chat_client.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  la3::llm::ChatResult result;
  if (la3::llm::parse_chat_completion(body, result).ok()) LA3_FUZZ_CHECK(!result.choices.empty());
  LA3_FUZZ_CHECK(!la3::llm::server_error_message(body).empty());
  return 0;
}
