// A CompletionBackend without network: it answers each request with rewrites precomputed
// in one of our JSONL files (the bundled sample ships two per molecule). Sample s of a
// molecule gets rewrite s, a re-request after a rejection the next unused one (s + k,
// s + 2k, ...); when none is left the reply is empty (the filter records "empty").
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "llm_client/chat_client.h"

namespace la3::llm {

class ReplayBackend final : public CompletionBackend {
 public:
  static absl::StatusOr<std::unique_ptr<ReplayBackend>> load(const std::string& jsonl_path, int k);

  absl::Status run(const NextRequest& next, const OnResult& on_result, const StopFlag& stop) override;
  const ClientStats& stats() const override { return stats_; }

 private:
  ReplayBackend() = default;
  int k_ = 1;
  std::map<std::string, std::vector<std::string>> rewrites_;      // cid -> rewrites
  std::map<std::pair<std::string, int>, int> served_;              // (cid, sample) -> replies so far
  ClientStats stats_;
};

}  // namespace la3::llm
