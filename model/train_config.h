// `engine train` configuration, from YAML. Every field has a default (the tiny CPU demo);
// an unknown key, a wrong type or an out-of-range value is an error naming the file and the
// key path ("optimizer.lr").
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "data/batching.h"
#include "data/molecule_dataset.h"
#include "engine/ops/sequence_loss.h"
#include "engine/optim/lr_schedule.h"
#include "model/t5_config.h"

namespace la3 {

struct TrainConfig {
  // model
  std::string model_preset = "tiny";     // see T5Config::preset; vocab_size follows the tokenizer
  std::string init_checkpoint;           // an HF checkpoint directory to start from (overrides preset)
  float dropout_rate = 0.1f;
  bool dropout_rate_set = false;  // the YAML sets model.dropout_rate (it then wins over init_checkpoint's)
  // Size overrides of the preset (0 / empty = the preset's value).
  int64_t d_model = 0, d_kv = 0, d_ff = 0, num_layers = 0, num_decoder_layers = 0, num_heads = 0;
  int relative_attention_num_buckets = 0, relative_attention_max_distance = 0;
  std::string feed_forward;  // "relu" or "gated-gelu"

  // The model configuration this run builds (preset + overrides; vocab follows the tokenizer
  // for the tiny preset).
  absl::StatusOr<T5Config> model_config(int64_t tokenizer_vocab) const;
  // data
  std::string train_path = "data/sample/train.jsonl";
  std::string validation_path = "data/sample/validation.jsonl";
  std::string tokenizer_path = "data/sample/spiece.model";
  Direction direction = Direction::kCaptionToSmiles;
  BadRowPolicy bad_rows = BadRowPolicy::kFail;
  int64_t max_source_length = 256;
  int64_t max_target_length = 256;
  // loss
  ops::CaptionLoss loss = ops::CaptionLoss::kMean;
  int k = 2;  // rewrites per molecule used (captions c_0..c_k)
  // optimizer
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
  ScheduleKind schedule = ScheduleKind::kConstant;
  int64_t warmup_steps = 0;
  // training
  int64_t batch_size = 16;  // groups (captions in `mean` mode, molecules in the mixture modes)
  int64_t grad_accumulation = 1;
  int64_t max_steps = 200;
  double clip_grad_norm = 1.0;  // 0 = off
  int64_t eval_every = 50;
  int64_t checkpoint_every = 100;
  int64_t log_every = 10;
  uint64_t seed = 0;
  int threads = 0;  // 0 = library defaults
  // auto (cuda when a GPU is usable, else cpu), cpu, cuda, cuda:N, or cuda-emu (the CUDA
  // backend under the SIMT emulation).
  std::string device = "auto";
  // GEMMs on the CUDA backends: bf16 (bf16 operands, fp32 accumulation) or fp32.
  std::string gemm_precision = "bf16";
  // The element type of activations and activation gradients: f32, or bf16 on the CUDA devices
  // (fp32 master weights and AdamW state, fp32 statistics and loss; the cpu refuses bf16).
  std::string activations = "f32";
  // Trading compute for memory (docs/MEMORY.md): none, attention (each attention sublayer is
  // recomputed in the backward instead of keeping q, k, v, context and the attention state), or
  // block (each T5 block keeps only its inputs and is replayed whole in the backward).
  std::string recompute = "none";
  // distributed (data parallelism across the ranks of an mpirun / srun launch; ignored by a
  // single process; docs/DISTRIBUTED.md)
  std::string dist_backend = "auto";  // auto (nccl on cuda devices, mpi on the cpu), nccl, mpi
  double dist_bucket_mb = 25.0;       // gradient bucket size: one all-reduce per bucket
  bool dist_shard_optimizer = false;  // ZeRO-1: AdamW moments sharded across the ranks
  double dist_timeout_s = 300.0;      // a collective waiting longer than this ends the job
  bool dist_overlap = true;           // all-reduce each bucket during backward (false: after it)
  // run
  std::string output_dir = "runs/demo";
  int keep_checkpoints = 3;  // complete checkpoint-<step> directories kept (the newest)

  // Resolves relative data/tokenizer/checkpoint paths against `base` (the config's folder
  // or the working directory).
  void resolve_paths(const std::string& base);
};

// Parses YAML text. `source` names the file in messages.
absl::StatusOr<TrainConfig> parse_train_config(const std::string& yaml_text, const std::string& source);

absl::StatusOr<TrainConfig> load_train_config(const std::string& path);

// The effective configuration as YAML (written into the run directory).
std::string train_config_to_yaml(const TrainConfig& config);

}  // namespace la3
