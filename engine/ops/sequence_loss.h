// Token log-probabilities and the k+1-caption aggregated losses of LA3 (docs/ARCHITECTURE.md).
//
// caption_loss_from_logits is the fused path the trainer uses (kernels/caption_loss.cuh): one
// vocabulary pass per token, the per-group combination and the loss reduction on the device.
// token_log_probs gives log p(label) per target token with one log-sum-exp per row (the
// [rows, vocab] softmax is never stored; backward recomputes it row by row); caption_loss then
// combines those small [rows, len] tensors, also on the device. The modes:
//
//   mean              every (caption, SMILES) row is its own example: token CE averaged over
//                     all counted tokens.
//   token_mixture     caption -> SMILES, the rows of a group share one target y:
//                     L_g = -sum_t log((1/(k+1)) sum_j p_j(y_t)).
//   sequence_mixture  SMILES -> caption, the rows of a group share one input and have
//                     different targets: s_j = sum_t log p_j(c_{j,t}),
//                     L_g = -log((1/(k+1)) sum_j exp(s_j)).
//
// The batch loss is sum_g L_g divided by the number of target tokens of the batch counted
// once per group (the mean over the group's rows for sequence_mixture), so k = 0 gives
// exactly plain token cross-entropy in every mode. When a batch is one slice of a larger
// global batch (a data-parallel rank, a gradient-accumulation micro-batch), the caller passes
// the global batch's normaliser instead (caption_loss_normaliser of each slice, summed), and the
// slices' losses and gradients add up to the global batch's.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/tensor.h"

namespace la3::ops {

// logits [rows, len, vocab] (or [rows, vocab]), labels [rows, len] (or [rows]) with -100
// ignored -> log p(label) [rows, len] f32, 0 where ignored. Differentiable in the logits.
Tensor token_log_probs(const Tensor& logits, const Tensor& labels, int64_t ignore_index = -100);

enum class CaptionLoss { kMean, kTokenMixture, kSequenceMixture };

// "mean", "token_mixture", "sequence_mixture".
absl::StatusOr<CaptionLoss> parse_caption_loss(const std::string& name);
const char* caption_loss_name(CaptionLoss loss);

// log_probs [rows, len] from token_log_probs, labels [rows, len] (to know which tokens
// count), group[r] = the molecule of row r (groups numbered 0..G-1, rows of a group need
// not be adjacent). For token_mixture the rows of a group must have identical labels.
// Returns the scalar batch loss; differentiable in log_probs. Runs on log_probs' device (the
// group ids are uploaded there); see caption_loss_from_logits for the validation.
Tensor caption_loss(const Tensor& log_probs, const Tensor& labels, const std::vector<int64_t>& group,
                    CaptionLoss mode, int64_t ignore_index = -100);

// The same loss straight from logits [rows, len, vocab], fused with the vocabulary softmax
// (kernels/caption_loss.cuh): one pass over the logits for the forward, one for the backward
// (mode mean with a gradient: a single pass computing both), probabilities never stored, the
// loss reduced on the device. group: [rows] i32/i64 on the logits' device. Labels and group
// ids are validated on a host copy (the only device read; rows * (len + 1) integers): a label
// outside [0, vocab), a negative or out-of-range group id, a group without rows, or
// token_mixture rows of one group with different targets are errors naming the row and
// position. Differentiable in the logits.
// normaliser: 0 = this batch's own (caption_loss_normaliser of these labels); > 0 = the loss
// is sum_g L_g / normaliser and the gradient scales alike, in every mode; negative or not
// finite is an error.
//
// checked_by_caller: the caller's guarantee that labels and group hold the values
// check_caption_loss_inputs validated on the host (before they were uploaded); the op then
// reads nothing back (the validation's host synchronisations) and takes the group layout from
// it. It must describe these tensors: rows, length, vocabulary, mode and ignore_index are
// compared, the values cannot be (that would be the read-back it saves).
struct CaptionLossInputsChecked;
Tensor caption_loss_from_logits(const Tensor& logits, const Tensor& labels, const Tensor& group, CaptionLoss mode,
                                int64_t ignore_index = -100, double normaliser = 0.0,
                                const CaptionLossInputsChecked* checked_by_caller = nullptr);

// What check_caption_loss_inputs found valid, and the group layout the kernels need.
struct CaptionLossInputsChecked {
  int64_t rows = 0;
  int64_t length = 0;
  int64_t vocab = 0;
  CaptionLoss mode = CaptionLoss::kMean;
  int64_t ignore_index = -100;
  int64_t groups = 0;          // G: group ids are 0..G-1, each with rows
  int64_t max_group_rows = 0;  // the largest group's row count
};

// caption_loss_from_logits' validation of labels [rows, len] (any integer dtype) and group ids
// against a vocabulary, on the host, with the op's errors (labels on a device are read back).
CaptionLossInputsChecked check_caption_loss_inputs(const Tensor& labels, const std::vector<int64_t>& group,
                                                   int64_t vocab, CaptionLoss mode, int64_t ignore_index = -100);

// The normaliser caption_loss_from_logits divides by when given none, computed on the host from
// labels [rows, len] (any integer dtype; copied from a device if needed) and group ids (as the
// op's): target tokens counted once per group -- every row's for mean, the shared target's for
// token_mixture, the mean over the group's rows for sequence_mixture -- summed over the groups in
// id order. Bit for bit the value the CPU and CUDA kernels compute; 0 when no token counts. The
// same validation as the op (group ids 0..G-1 all present, token_mixture targets equal).
// Normalisers of disjoint slices add up to the normaliser of their union (as a sum of doubles).
double caption_loss_normaliser(const Tensor& labels, const std::vector<int64_t>& group, CaptionLoss mode,
                               int64_t ignore_index = -100);

}  // namespace la3::ops
