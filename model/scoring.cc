#include "model/scoring.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "engine/autograd/tape.h"
#include "engine/backend.h"
#include "engine/ops/attention.h"
#include "model/batch_loss.h"

namespace la3 {

namespace {

// The per-row fields of every (molecule, caption) row in tokenize_groups' order; in the
// `mean` pass each caption is its own group, so group g is row g.
std::vector<RowScore> row_skeletons(const std::vector<MoleculeRecord>& records, int k) {
  std::vector<RowScore> rows;
  for (const MoleculeRecord& record : records) {
    const int captions = static_cast<int>(std::min<size_t>(record.captions.size(), static_cast<size_t>(k) + 1));
    for (int c = 0; c < captions; ++c) rows.push_back(RowScore{record.cid, c, record.source, 0, 0.0});
  }
  return rows;
}

}  // namespace

absl::StatusOr<DatasetScore> score_dataset(const T5Model& model, const Tokenizer& tokenizer,
                                           const std::vector<MoleculeRecord>& records, const ScoreOptions& options) {
  if (records.empty()) return absl::InvalidArgumentError("no molecules to score");
  if (options.batch_size < 1) return absl::InvalidArgumentError(absl::StrCat("batch size must be >= 1, got ", options.batch_size));
  if (options.modes.empty() && !options.per_row) return absl::InvalidArgumentError("no loss mode to compute");
  for (ops::CaptionLoss mode : options.modes) {
    if (mode == ops::CaptionLoss::kTokenMixture && options.direction == Direction::kSmilesToCaption) {
      return absl::InvalidArgumentError(
          "loss token_mixture needs caption2smiles: its rows share one target (for smiles2caption use mean or "
          "sequence_mixture)");
    }
  }
  DatasetScore score;
  score.molecules = static_cast<int64_t>(records.size());
  int most = 0;
  for (const MoleculeRecord& record : records) most = std::max(most, static_cast<int>(record.captions.size()) - 1);
  score.k = options.k < 0 ? most : options.k;

  NoGradGuard no_grad;
  const Device device = model.device();
  // One pass per mode; `mean` tokenizes each caption as its own group, the mixtures one group
  // per molecule. Per-row NLLs come from the mean pass (a row's NLL does not depend on the mode).
  std::vector<ops::CaptionLoss> passes = options.modes;
  const bool need_rows_pass =
      options.per_row && std::find(passes.begin(), passes.end(), ops::CaptionLoss::kMean) == passes.end();
  if (need_rows_pass) passes.push_back(ops::CaptionLoss::kMean);
  for (size_t p = 0; p < passes.size(); ++p) {
    const ops::CaptionLoss mode = passes[p];
    const bool report_mode = p < options.modes.size();
    const bool collect_rows = options.per_row && mode == ops::CaptionLoss::kMean && score.rows.empty();
    TokenizeOptions tokenize_options;
    tokenize_options.direction = options.direction;
    tokenize_options.max_rewrites = score.k;
    tokenize_options.caption_per_group = mode == ops::CaptionLoss::kMean;
    tokenize_options.max_source_length = options.max_source_length;
    tokenize_options.max_target_length = options.max_target_length;
    TokenizeReport report;
    absl::StatusOr<std::vector<ExampleGroup>> groups = tokenize_groups(records, tokenizer, tokenize_options, &report);
    if (!groups.ok()) return groups.status();
    if (mode == ops::CaptionLoss::kMean) score.tokenize = report;
    if (collect_rows) score.rows = row_skeletons(records, score.k);
    BatchPlanOptions plan_options;
    plan_options.groups_per_batch = options.batch_size;
    plan_options.shuffle = false;
    // Each batch's loss stays a device scalar until the mode's last batch: one wait for the
    // device per mode, not one per batch (unless per-row figures are read back per batch).
    std::vector<Tensor> batch_losses;
    std::vector<double> batch_normalisers;
    for (const std::vector<size_t>& members : make_batch_plan(*groups, plan_options)) {
      const Batch batch = collate(*groups, members, model.config().pad_token_id, model.config().decoder_start_token_id);
      batch_normalisers.push_back(ops::caption_loss_normaliser(batch.labels, batch.group, mode));
      if (!collect_rows) {
        // The trainer's validation loss itself: validated on the host, uploaded without waiting.
        batch_losses.push_back(batch_loss(model, batch, mode, {}));
        continue;
      }
      const Tensor labels = batch.labels.to_device(device);
      const Tensor mask = ops::key_mask_as_flags(batch.attention_mask).to_device(device);
      const Tensor encoded = model.encode(batch.input_ids.to_device(device), mask, {});
      const Tensor logits = model.decode(batch.decoder_input_ids.to_device(device), encoded, mask, {});
      const Tensor group = Tensor::from_vector<int64_t>({static_cast<int64_t>(batch.group.size())}, batch.group, device);
      batch_losses.push_back(ops::caption_loss_from_logits(logits, labels, group, mode));
      const Tensor log_probs = ops::token_log_probs(logits, labels).to_device(Device::cpu());
      const int64_t length = log_probs.shape()[1];
      const float* values = log_probs.data<float>();
      const int64_t* label_ids = batch.labels.data<int64_t>();
      // Batch row i is group members[i] (one row per group in this pass).
      for (size_t i = 0; i < members.size(); ++i) {
        RowScore& out = score.rows[members[i]];
        const int64_t row = static_cast<int64_t>(i);
        double sum = 0.0;
        for (int64_t t = 0; t < length; ++t) {
          if (label_ids[row * length + t] == -100) continue;
          sum += static_cast<double>(values[row * length + t]);
          ++out.target_tokens;
        }
        out.nll = -sum;
      }
    }
    // In batch order, as before: the mean loss is the trainer's validation loss bit for bit.
    // The device scalars gathered into one buffer on the device, then one copy to the host.
    std::vector<float> losses(batch_losses.size());
    if (!batch_losses.empty()) {
      const Tensor gathered = Tensor::empty({static_cast<int64_t>(batch_losses.size())}, DType::kF32, device);
      for (size_t b = 0; b < batch_losses.size(); ++b) {
        backend_for(device).copy_on_device(gathered.data<float>() + b, batch_losses[b].data<float>(), sizeof(float));
      }
      losses = gathered.to_device(Device::cpu()).to_vector<float>();
    }
    double weighted = 0.0, normaliser = 0.0;
    for (size_t b = 0; b < losses.size(); ++b) {
      weighted += static_cast<double>(losses[b]) * batch_normalisers[b];
      normaliser += batch_normalisers[b];
    }
    if (!report_mode) continue;
    ModeScore mode_score;
    mode_score.mode = mode;
    mode_score.loss = normaliser > 0.0 ? weighted / normaliser : 0.0;
    mode_score.normaliser = normaliser;
    mode_score.groups = report.groups;
    mode_score.rows = report.examples;
    score.modes.push_back(mode_score);
  }
  return score;
}

}  // namespace la3
