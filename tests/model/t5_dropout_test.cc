// Dropout in the T5 model keyed by each example's place in the global batch
// (T5ForwardOptions::dropout_row_offset): training logits of examples 2 and 3 of a batch are the
// same when they are computed as a slice of their own, padded to their own lengths, with
// dropout_row_offset 2 -- what a second data-parallel rank or a second accumulation micro-batch
// does. Every dropout site of the encoder and decoder (embeddings, attention probabilities,
// attention and feed-forward outputs, final) must take the offset for this to hold.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "engine/autograd/tape.h"
#include "model/t5_config.h"
#include "model/t5_model.h"

namespace la3 {
namespace {

constexpr int64_t kVocab = 97;

// Input ids and labels of four examples: inputs of lengths 7, 3, 5, 4 and targets of lengths
// 5, 2, 4, 3 (eos last), padded to the longest of `rows` (pad 0 / label -100).
struct Batch {
  Tensor input_ids, attention_mask, labels;
  int64_t source_len = 0, target_len = 0;
};

const std::vector<int64_t> kSourceLengths = {7, 3, 5, 4};
const std::vector<int64_t> kTargetLengths = {5, 2, 4, 3};

Batch make_batch(int64_t first, int64_t rows) {
  Batch batch;
  for (int64_t r = first; r < first + rows; ++r) {
    batch.source_len = std::max(batch.source_len, kSourceLengths[static_cast<size_t>(r)]);
    batch.target_len = std::max(batch.target_len, kTargetLengths[static_cast<size_t>(r)]);
  }
  std::vector<int64_t> ids, mask, labels;
  for (int64_t r = first; r < first + rows; ++r) {
    const int64_t source = kSourceLengths[static_cast<size_t>(r)], target = kTargetLengths[static_cast<size_t>(r)];
    for (int64_t t = 0; t < batch.source_len; ++t) {
      ids.push_back(t < source - 1 ? 2 + (r * 13 + t * 7) % (kVocab - 2) : (t == source - 1 ? 1 : 0));
      mask.push_back(t < source ? 1 : 0);
    }
    for (int64_t t = 0; t < batch.target_len; ++t) {
      labels.push_back(t < target - 1 ? 2 + (r * 5 + t * 11) % (kVocab - 2) : (t == target - 1 ? 1 : -100));
    }
  }
  batch.input_ids = Tensor::from_vector<int64_t>({rows, batch.source_len}, ids);
  batch.attention_mask = Tensor::from_vector<int64_t>({rows, batch.source_len}, mask);
  batch.labels = Tensor::from_vector<int64_t>({rows, batch.target_len}, labels);
  return batch;
}

T5ForwardOptions training(uint64_t row_offset) {
  T5ForwardOptions options;
  options.training = true;
  options.seed = 31;
  options.step = 4;
  options.dropout_row_offset = row_offset;
  return options;
}

// The largest |a - b| over the target positions of examples 2 and 3, the slice's logits
// [2, slice_len, vocab] against the whole batch's [4, whole_len, vocab].
double largest_difference(const Tensor& slice, int64_t slice_len, const Tensor& whole, int64_t whole_len) {
  const std::vector<float> a = slice.to_vector<float>(), b = whole.to_vector<float>();
  double largest = 0.0;
  for (int64_t r = 0; r < 2; ++r) {
    for (int64_t t = 0; t < kTargetLengths[static_cast<size_t>(2 + r)]; ++t) {
      for (int64_t c = 0; c < kVocab; ++c) {
        const double x = a[static_cast<size_t>((r * slice_len + t) * kVocab + c)];
        const double y = b[static_cast<size_t>(((2 + r) * whole_len + t) * kVocab + c)];
        largest = std::max(largest, std::abs(x - y));
      }
    }
  }
  return largest;
}

TEST(T5Dropout, ASliceWithItsRowOffsetDrawsTheMasksOfTheWholeBatch) {
  T5Config config = *T5Config::preset("tiny");
  config.vocab_size = kVocab;
  config.dropout_rate = 0.3f;
  const T5Model model = *T5Model::create(config, 5);
  const Batch whole = make_batch(0, 4);  // padded to 7 inputs, 5 targets
  const Batch slice = make_batch(2, 2);  // padded to 5 inputs, 4 targets
  ASSERT_EQ(slice.source_len, 5);
  ASSERT_EQ(slice.target_len, 4);
  NoGradGuard no_grad;
  auto logits = [&](const Batch& batch, const T5ForwardOptions& options) {
    return model.logits(batch.input_ids, batch.attention_mask, batch.labels, options);
  };
  const Tensor whole_logits = logits(whole, training(0));
  double scale = 0.0;  // the largest |logit|: differences are relative to it
  for (float value : whole_logits.to_vector<float>()) scale = std::max(scale, static_cast<double>(std::abs(value)));
  // Padding alone changes nothing but fp32 summation lengths and orders (masked keys weigh
  // exactly 0), so the logits agree to fp32 rounding.
  const double same =
      largest_difference(logits(slice, training(2)), slice.target_len, whole_logits, whole.target_len) / scale;
  EXPECT_LT(same, 1e-6);
  // The slice keyed as rows 0, 1 draws other masks: the comparison above is not vacuous.
  const double unshifted =
      largest_difference(logits(slice, training(0)), slice.target_len, whole_logits, whole.target_len) / scale;
  EXPECT_GT(unshifted, 1e-2);
  // And dropout does act on these logits.
  T5ForwardOptions inference;
  const double undropped =
      largest_difference(logits(slice, inference), slice.target_len, whole_logits, whole.target_len) / scale;
  EXPECT_GT(undropped, 1e-2);
  std::printf("[t5 dropout] largest logit %.3g; relative differences: slice with its row offset %.2e, without %.2e, "
              "no dropout %.2e\n",
              scale, same, unshifted, undropped);
}

}  // namespace
}  // namespace la3
