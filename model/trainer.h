// The training loop behind `engine train`: data -> batches -> T5 forward -> k+1-caption
// loss -> backward -> clipping -> AdamW, with validation, metrics, atomic checkpoints and
// exact resume.
//
// Run directory (config.output_dir):
//   config.yaml          the effective configuration
//   metrics.jsonl        one JSON object per logged step / evaluation (appended)
//   checkpoint/          the latest checkpoint: config.json + model.safetensors (loadable
//                        by transformers), optimizer.safetensors, state.json (step, epoch,
//                        batch position, seed) for exact resume
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "model/train_config.h"

namespace la3 {

struct TrainProgress {
  int64_t step = 0;  // optimizer steps done
  int64_t max_steps = 0;
  double loss = 0.0;  // mean over the last log interval
  double lr = 0.0;
  double tokens_per_second = 0.0;  // source + target tokens processed
  double elapsed_seconds = 0.0;
  double eta_seconds = 0.0;
  double validation_loss = -1.0;  // set on evaluation steps
  // The most bytes the device's tensors held at once during the log interval (the caching
  // allocator's peak on cuda, the CPU allocator's on cpu), reset at each interval's start.
  int64_t peak_device_bytes = 0;
};

struct TrainOptions {
  bool resume = false;  // continue from output_dir/checkpoint when present
  // Start over in a run directory that holds an earlier run (its checkpoint and metrics are
  // deleted). Without it (or resume) such a directory is refused: nothing is lost by accident.
  bool overwrite = false;
  // Resume although settings that decide the run's numbers changed (learning rate, loss,
  // data, model...); each change is recorded in <output_dir>/config_changes.jsonl. Without it
  // such a resume is refused, listing every difference.
  bool allow_config_change = false;
  // Called after every log interval and evaluation; apps/ prints it (the library never does).
  std::function<void(const TrainProgress&)> on_progress;
  // Called once with human-readable setup facts (dataset sizes, truncation, parameters).
  std::function<void(const std::string&)> on_info;
};

struct TrainSummary {
  int64_t steps = 0;
  double first_validation_loss = -1.0;
  double last_validation_loss = -1.0;
  double tokens_per_second = 0.0;
  int64_t parameters = 0;
};

absl::StatusOr<TrainSummary> train(const TrainConfig& config, const TrainOptions& options);

}  // namespace la3
