#include "llm_client/replay_backend.h"

#include "data/molecule_dataset.h"

namespace la3::llm {

absl::StatusOr<std::unique_ptr<ReplayBackend>> ReplayBackend::load(const std::string& jsonl_path, int k) {
  absl::StatusOr<std::vector<MoleculeRecord>> records = read_augmented_jsonl(jsonl_path, ReadOptions{});
  if (!records.ok()) return records.status();
  std::unique_ptr<ReplayBackend> backend(new ReplayBackend());
  backend->k_ = std::max(1, k);
  for (MoleculeRecord& r : *records) {
    backend->rewrites_[r.cid] = std::vector<std::string>(r.captions.begin() + 1, r.captions.end());
  }
  return backend;
}

absl::Status ReplayBackend::run(const NextRequest& next, const OnResult& on_result, const StopFlag& stop) {
  while (stop.load() == 0) {
    std::optional<ChatRequest> request = next();
    if (!request) return absl::OkStatus();
    ChatResult result;
    result.id = request->id;
    result.attempts = 1;
    auto found = rewrites_.find(request->cid);
    for (int sample : request->samples) {
      const int round = served_[{request->cid, sample}]++;
      const size_t index = static_cast<size_t>(sample + round * k_);
      Choice choice;
      choice.finish_reason = "stop";
      if (found != rewrites_.end() && index < found->second.size()) choice.text = found->second[index];
      result.choices.push_back(std::move(choice));
    }
    ++stats_.attempts;
    ++stats_.succeeded;
    on_result(std::move(result));
  }
  return absl::CancelledError("interrupted");
}

}  // namespace la3::llm
