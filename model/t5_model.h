// T5ForConditionalGeneration, as transformers defines it, on top of the engine's ops.
//
// Parameters are kept under their Hugging Face names ("encoder.block.0.layer.0.SelfAttention.q.weight",
// ...), so import/export is a name-for-name copy. Both variants: v1.0 (relu FFN, LM head tied
// to the shared embedding, decoder output scaled by d_model^-0.5) and v1.1 / MolT5
// (gated-GELU FFN, separate lm_head). The relative-position table lives in block 0 of each
// stack and is used by every block of it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/ops/rmsnorm.h"
#include "engine/tensor.h"
#include "model/t5_config.h"

namespace la3 {

struct T5DecodingCache;  // model/t5_decoding.h

// The keys and values one attention reads, each [batch, k_len, heads, d_kv].
struct T5KeyValues {
  Tensor keys;
  Tensor values;
};

struct T5ForwardOptions {
  bool training = false;  // dropout on (config.dropout_rate) when true
  uint64_t seed = 0;      // dropout randomness: (seed, step, site) -> Philox stream
  uint64_t step = 0;
  // Global index of this batch's row 0 in the global batch (data parallel ranks and
  // gradient-accumulation micro-batches hold slices of it): dropout masks are keyed by
  // (global row, position, column), so a split batch draws the masks of the whole one.
  // Encoder and decoder rows are the same examples, so one offset serves both.
  uint64_t dropout_row_offset = 0;
  // Trading compute for memory in training forwards (docs/MEMORY.md): kAttention keeps none
  // of an attention sublayer's inside (q, k, v, context, attention state) until the backward,
  // which recomputes it (autograd checkpoint()); the gradients are bit-identical on the CPU.
  // kBlock keeps only each T5 block's inputs (the residual stream and its norm) and replays the
  // whole block in the backward: the least memory, one more forward of every block.
  enum class Recompute { kNone, kAttention, kBlock };
  Recompute recompute = Recompute::kNone;
  // The caller checked input_ids and decoder_input_ids against the vocabulary on the host
  // before uploading them (batch_loss does): the embeddings skip their own check, which on a
  // GPU device reads the ids back and makes the host wait (ops::IdCheck::kByCaller).
  bool ids_checked_by_caller = false;
  // The element type of the activations and their gradients: f32, or bf16 on the CUDA devices
  // (torch.autocast's bf16: the weights stay f32 masters read through bf16 copies; RMSNorm
  // statistics, softmax, attention statistics and the loss are fp32). The embedding output is
  // converted once and every op after it follows its input's type; the logits are bf16 and the
  // loss f32.
  DType activations = DType::kF32;
};

class T5Model {
 public:
  // A freshly initialised model (transformers' T5PreTrainedModel._init_weights scheme, drawn
  // from Philox so it is reproducible on every platform).
  static absl::StatusOr<T5Model> create(const T5Config& config, uint64_t seed);

  // A model from named tensors (HF names). Every expected parameter must be present with its
  // exact shape; f32 and bf16 are accepted (bf16 is widened). Tied checkpoints may carry
  // encoder/decoder.embed_tokens.weight and lm_head.weight copies of shared.weight; other
  // unknown names are an error naming them.
  static absl::StatusOr<T5Model> from_tensors(const T5Config& config, std::map<std::string, Tensor> tensors);

  const T5Config& config() const { return config_; }

  // The same model with every parameter copied to `device` (gradients are not copied).
  T5Model to_device(Device device) const;
  Device device() const { return parameter("shared.weight").device(); }

  // Every trainable parameter by HF name (tied models have no separate lm_head.weight).
  const std::map<std::string, Tensor>& parameters() const { return parameters_; }
  // The same tensors in name order, for optimizers.
  std::vector<Tensor> parameter_list() const;
  int64_t parameter_count() const;
  // Marks every parameter as wanting (or not) a gradient.
  void set_requires_grad(bool required) const;
  // Dropout probability of training forwards (a run's setting may differ from the checkpoint's).
  void set_dropout_rate(float rate) { config_.dropout_rate = rate; }

  // input_ids [batch, src_len] (i32/i64), attention_mask [batch, src_len] (nonzero = token)
  // or undefined -> encoder hidden states [batch, src_len, d_model].
  Tensor encode(const Tensor& input_ids, const Tensor& attention_mask, const T5ForwardOptions& options) const;

  // decoder_input_ids [batch, tgt_len], encoder_hidden [batch, src_len, d_model],
  // encoder_mask [batch, src_len] or undefined -> logits [batch, tgt_len, vocab].
  Tensor decode(const Tensor& decoder_input_ids, const Tensor& encoder_hidden, const Tensor& encoder_mask,
                const T5ForwardOptions& options) const;

  // Teacher-forced forward: logits for labels [batch, tgt_len] (decoder inputs = labels shifted
  // right with decoder_start_token_id, -100 replaced by pad, as transformers does).
  Tensor logits(const Tensor& input_ids, const Tensor& attention_mask, const Tensor& labels,
                const T5ForwardOptions& options) const;

  // Token cross-entropy of logits(...) against labels (mean over labels != -100).
  Tensor loss(const Tensor& input_ids, const Tensor& attention_mask, const Tensor& labels,
              const T5ForwardOptions& options) const;

  const Tensor& parameter(const std::string& name) const;

 private:
  T5Model(T5Config config, std::map<std::string, Tensor> parameters)
      : config_(std::move(config)), parameters_(std::move(parameters)) {}

  T5KeyValues project_key_values(const std::string& prefix, const Tensor& source) const;
  // Queries from `hidden`, attention over `key_values`, output projection. query_offset is
  // the absolute position of hidden's first row (incremental decoding: the cached length).
  Tensor attention_block(const std::string& prefix, const Tensor& hidden, const T5KeyValues& key_values,
                         const Tensor& bias_table, const Tensor& key_mask, bool causal, bool bidirectional,
                         int64_t query_offset, uint32_t dropout_stream, const T5ForwardOptions& options) const;
  // A whole attention sublayer of the teacher-forced forward: k and v projected from
  // key_value_source, then attention_block. With options.recompute it is one tape node whose
  // backward replays it (the sources enter as separate inputs, one per projection, so the tape
  // sums their gradients in the order it does without recompute).
  Tensor attention_sublayer(const std::string& prefix, const Tensor& hidden, const Tensor& key_value_source,
                            const Tensor& bias_table, const Tensor& key_mask, bool causal, bool bidirectional,
                            uint32_t dropout_stream, const T5ForwardOptions& options) const;
  Tensor feed_forward(const std::string& prefix, const Tensor& hidden, uint32_t dropout_stream,
                      const T5ForwardOptions& options) const;
  // Block i of a stack from its residual stream `hidden` and that stream's pre-attention norm
  // `normed`, up to the block's last residual add: with next_norm, that add fused with the norm
  // that follows it (the next block's, or the final one); without, the sum alone (normed
  // undefined), which is what a recomputed block returns. Decoder blocks take the cache of an
  // incremental decoding step (null in teacher forcing).
  ops::AddRmsNorm encoder_block_forward(int64_t i, const Tensor& hidden, const Tensor& normed, const Tensor& table,
                                        const Tensor& key_mask, const Tensor& next_norm,
                                        const T5ForwardOptions& options) const;
  ops::AddRmsNorm decoder_block_forward(int64_t i, const Tensor& hidden, const Tensor& normed,
                                        const Tensor& encoder_hidden, const Tensor& encoder_mask, const Tensor& table,
                                        const Tensor& next_norm, const T5ForwardOptions& options,
                                        T5DecodingCache* cache) const;
  static bool recompute_blocks(const T5ForwardOptions& options);
  // The parameters a recomputed block's tape node lists as its leaves (those under `prefix` it uses).
  std::vector<Tensor> block_leaves(const std::string& prefix) const;
  Tensor apply_dropout(const Tensor& x, uint32_t stream, const T5ForwardOptions& options) const;
  // The decoder stack and the LM head, the one implementation behind decode() (cache null:
  // every target position, keys/values projected here) and T5Decoder::step (one new position
  // per row: its self-attention keys/values are stored in the cache and attention reads the
  // cached ones; cross-attention reads the cache's projections of the encoder output).
  Tensor decoder_forward(const Tensor& decoder_input_ids, const Tensor& encoder_hidden, const Tensor& encoder_mask,
                         const T5ForwardOptions& options, T5DecodingCache* cache) const;
  friend class T5Decoder;  // start() projects the cross-attention keys/values, step() runs decoder_forward

  T5Config config_;
  std::map<std::string, Tensor> parameters_;
};

// labels [batch, len] -> decoder inputs: [start, labels[:, :-1]] with -100 replaced by pad.
Tensor shift_right(const Tensor& labels, int64_t decoder_start_token_id, int64_t pad_token_id);

// The HF names and shapes a model with this config has, in name order.
std::map<std::string, Shape> t5_parameter_shapes(const T5Config& config);

}  // namespace la3
