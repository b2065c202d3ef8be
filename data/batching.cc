#include "data/batching.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"

namespace la3 {

absl::StatusOr<Direction> parse_direction(const std::string& name) {
  if (name == "caption2smiles") return Direction::kCaptionToSmiles;
  if (name == "smiles2caption") return Direction::kSmilesToCaption;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown direction '", name, "': expected caption2smiles or smiles2caption"));
}

const char* direction_name(Direction direction) {
  return direction == Direction::kCaptionToSmiles ? "caption2smiles" : "smiles2caption";
}

bool truncate_keeping_eos(std::vector<int64_t>& ids, int64_t max_length) {
  if (static_cast<int64_t>(ids.size()) <= max_length) return false;
  const int64_t eos = ids.back();
  ids.resize(static_cast<size_t>(max_length - 1));
  ids.push_back(eos);
  return true;
}

PaddedInputs pad_inputs(const std::vector<std::vector<int64_t>>& sequences, int64_t pad_id) {
  size_t longest = 1;
  for (const auto& ids : sequences) longest = std::max(longest, ids.size());
  const int64_t rows = static_cast<int64_t>(sequences.size()), width = static_cast<int64_t>(longest);
  PaddedInputs padded{Tensor::full({rows, width}, static_cast<double>(pad_id), DType::kI64),
                      Tensor::zeros({rows, width}, DType::kI64)};
  for (int64_t r = 0; r < rows; ++r) {
    const std::vector<int64_t>& ids = sequences[static_cast<size_t>(r)];
    std::copy(ids.begin(), ids.end(), padded.input_ids.data<int64_t>() + r * width);
    std::fill_n(padded.attention_mask.data<int64_t>() + r * width, ids.size(), 1);
  }
  return padded;
}

absl::StatusOr<std::vector<ExampleGroup>> tokenize_groups(const std::vector<MoleculeRecord>& records,
                                                          const Tokenizer& tokenizer, const TokenizeOptions& options,
                                                          TokenizeReport* report_out) {
  if (options.max_source_length < 2 || options.max_target_length < 2) {
    return absl::InvalidArgumentError(absl::StrCat("max source/target lengths must be >= 2, got ",
                                                   options.max_source_length, " and ", options.max_target_length));
  }
  if (options.max_rewrites < 0) return absl::InvalidArgumentError("max_rewrites (k) must be >= 0");
  TokenizeReport local;
  TokenizeReport& report = report_out != nullptr ? *report_out : local;
  std::vector<ExampleGroup> groups;
  for (const MoleculeRecord& record : records) {
    absl::StatusOr<std::vector<int64_t>> smiles = tokenizer.encode(record.smiles);
    if (!smiles.ok()) return absl::InvalidArgumentError(absl::StrCat(record.source, ": ", smiles.status().message()));
    const size_t captions = std::min(record.captions.size(), static_cast<size_t>(options.max_rewrites) + 1);
    ExampleGroup molecule_group{record.cid, {}};
    for (size_t c = 0; c < captions; ++c) {
      absl::StatusOr<std::vector<int64_t>> caption = tokenizer.encode(record.captions[c]);
      if (!caption.ok()) return absl::InvalidArgumentError(absl::StrCat(record.source, ": ", caption.status().message()));
      Example example;
      if (options.direction == Direction::kCaptionToSmiles) {
        example = Example{std::move(*caption), *smiles};
      } else {
        example = Example{*smiles, std::move(*caption)};
      }
      report.sources_truncated += truncate_keeping_eos(example.source, options.max_source_length) ? 1 : 0;
      report.targets_truncated += truncate_keeping_eos(example.target, options.max_target_length) ? 1 : 0;
      ++report.examples;
      if (options.caption_per_group) {
        groups.push_back(ExampleGroup{record.cid, {std::move(example)}});
      } else {
        molecule_group.examples.push_back(std::move(example));
      }
    }
    if (!options.caption_per_group) groups.push_back(std::move(molecule_group));
  }
  report.groups = static_cast<int64_t>(groups.size());
  return groups;
}

namespace {

size_t group_length(const ExampleGroup& group) {
  size_t longest = 0;
  for (const Example& e : group.examples) longest = std::max(longest, e.source.size() + e.target.size());
  return longest;
}

}  // namespace

std::vector<std::vector<size_t>> make_batch_plan(const std::vector<ExampleGroup>& groups,
                                                 const BatchPlanOptions& options) {
  const size_t per_batch = static_cast<size_t>(std::max<int64_t>(options.groups_per_batch, 1));
  std::vector<size_t> order(groups.size());
  std::iota(order.begin(), order.end(), 0);
  // mt19937_64 and our own Fisher-Yates: std::shuffle's algorithm is unspecified, so it
  // could differ between standard libraries; this plan is the same everywhere.
  std::mt19937_64 rng(options.seed * 1000003ull + static_cast<uint64_t>(options.epoch));
  auto shuffle = [&](auto& items) {
    for (size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[static_cast<size_t>(rng() % i)]);
  };
  if (options.shuffle) shuffle(order);
  const size_t window = per_batch * static_cast<size_t>(std::max<int64_t>(options.bucket_window_batches, 1));
  if (options.bucket_window_batches > 1) {
    for (size_t start = 0; start < order.size(); start += window) {
      const auto end = order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), start + window));
      std::stable_sort(order.begin() + static_cast<std::ptrdiff_t>(start), end,
                       [&](size_t a, size_t b) { return group_length(groups[a]) < group_length(groups[b]); });
    }
  }
  std::vector<std::vector<size_t>> plan;
  for (size_t start = 0; start < order.size(); start += per_batch) {
    plan.emplace_back(order.begin() + static_cast<std::ptrdiff_t>(start),
                      order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), start + per_batch)));
  }
  if (options.shuffle) shuffle(plan);
  return plan;
}

Batch collate(const std::vector<ExampleGroup>& groups, const std::vector<size_t>& members, int64_t pad_id,
              int64_t decoder_start_id) {
  size_t rows = 0, source_length = 1, target_length = 1;
  for (size_t index : members) {
    for (const Example& e : groups[index].examples) {
      ++rows;
      source_length = std::max(source_length, e.source.size());
      target_length = std::max(target_length, e.target.size());
    }
  }
  const int64_t r = static_cast<int64_t>(rows), ls = static_cast<int64_t>(source_length),
                lt = static_cast<int64_t>(target_length);
  Batch batch;
  batch.input_ids = Tensor::full({r, ls}, static_cast<double>(pad_id), DType::kI64);
  batch.attention_mask = Tensor::zeros({r, ls}, DType::kI64);
  batch.labels = Tensor::full({r, lt}, -100.0, DType::kI64);
  int64_t* ids = batch.input_ids.data<int64_t>();
  int64_t* mask = batch.attention_mask.data<int64_t>();
  int64_t* labels = batch.labels.data<int64_t>();
  int64_t row = 0;
  for (size_t g = 0; g < members.size(); ++g) {
    for (const Example& e : groups[members[g]].examples) {
      std::copy(e.source.begin(), e.source.end(), ids + row * ls);
      std::fill_n(mask + row * ls, e.source.size(), 1);
      std::copy(e.target.begin(), e.target.end(), labels + row * lt);
      batch.group.push_back(static_cast<int64_t>(g));
      batch.source_tokens += static_cast<int64_t>(e.source.size());
      batch.target_tokens += static_cast<int64_t>(e.target.size());
      ++row;
    }
  }
  batch.groups = static_cast<int64_t>(members.size());
  batch.decoder_start_id = decoder_start_id;
  batch.pad_id = pad_id;
  batch.decoder_input_ids = Tensor::empty({r, lt}, DType::kI64);
  int64_t* decoder = batch.decoder_input_ids.data<int64_t>();
  for (int64_t b = 0; b < r; ++b) {
    for (int64_t t = 0; t < lt; ++t) {
      const int64_t value = t == 0 ? decoder_start_id : labels[b * lt + t - 1];
      decoder[b * lt + t] = value == -100 ? pad_id : value;
    }
  }
  return batch;
}

}  // namespace la3
