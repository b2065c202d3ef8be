// `engine train`: runs model/trainer.h with a terminal progress bar (plain log lines when
// stderr is not a terminal).
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "apps/arguments.h"
#include "apps/commands.h"
#include "dist/world.h"
#include "engine/device.h"
#include "model/trainer.h"

namespace la3::cli {

namespace {

const std::vector<OptionSpec> kOptions = {
    {"config", true, "YAML run configuration (default: the built-in CPU demo on data/sample)"},
    {"output-dir", true, "run directory (overrides run.output_dir)"},
    {"max-steps", true, "optimizer steps (overrides training.max_steps)"},
    {"resume", false, "continue from <output-dir>/checkpoint if present"},
    {"overwrite", false, "start over in an output dir that holds an earlier run (deletes its checkpoint and metrics)"},
    {"allow-config-change", false, "with --resume: continue although the learning rate, loss, data or model settings changed"},
    {"device", true, "auto | cpu | cuda | cuda:N | cuda-emu (overrides training.device; auto = cuda when a GPU is usable)"},
    {"activations", true, "f32 | bf16 (overrides training.activations; bf16 needs a cuda or cuda-emu device)"},
    {"help", false, "show this message"},
};

std::string clock_text(double seconds) {
  const long total = static_cast<long>(seconds + 0.5);
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%02ld:%02ld", total / 60, total % 60);
  return buffer;
}

void print_progress(const TrainProgress& p, bool terminal) {
  if (p.validation_loss >= 0.0) {
    std::fprintf(stderr, "%sstep %lld/%lld  validation loss %.4f  (%s elapsed)\n", terminal ? "\r\033[K" : "",
                 static_cast<long long>(p.step), static_cast<long long>(p.max_steps), p.validation_loss,
                 clock_text(p.elapsed_seconds).c_str());
    return;
  }
  if (terminal) {
    constexpr int kWidth = 30;
    const int filled = p.max_steps > 0 ? static_cast<int>(kWidth * p.step / p.max_steps) : kWidth;
    std::string bar(static_cast<size_t>(filled), '#');
    bar.append(static_cast<size_t>(kWidth - filled), '.');
    std::fprintf(stderr, "\r\033[K[%s] step %lld/%lld  loss %.4f  lr %.2e  %.0f tok/s  peak %.1f MiB  ETA %s",
                 bar.c_str(), static_cast<long long>(p.step), static_cast<long long>(p.max_steps), p.loss, p.lr,
                 p.tokens_per_second, static_cast<double>(p.peak_device_bytes) / (1024.0 * 1024.0),
                 clock_text(p.eta_seconds).c_str());
    if (p.step == p.max_steps) std::fputc('\n', stderr);
  } else {
    std::fprintf(stderr, "step %lld/%lld loss %.4f lr %.3e tokens/s %.0f peak_device_bytes %lld elapsed %s eta %s\n",
                 static_cast<long long>(p.step), static_cast<long long>(p.max_steps), p.loss, p.lr,
                 p.tokens_per_second, static_cast<long long>(p.peak_device_bytes), clock_text(p.elapsed_seconds).c_str(),
                 clock_text(p.eta_seconds).c_str());
  }
  std::fflush(stderr);
}

}  // namespace

int run_train(const std::vector<std::string>& args) {
  absl::StatusOr<Arguments> parsed = Arguments::parse(args, kOptions);
  if (!parsed.ok()) {
    std::fprintf(stderr, "engine train: %s\n\nusage: engine train [options]\n%s", std::string(parsed.status().message()).c_str(),
                 describe_options(kOptions).c_str());
    return 2;
  }
  if (parsed->has("help")) {
    std::printf("usage: engine train [options]\n\nTrains a T5 on molecule/caption pairs (LA3).\n\n%s",
                describe_options(kOptions).c_str());
    return 0;
  }
  TrainConfig config;
  if (parsed->has("config")) {
    absl::StatusOr<TrainConfig> loaded = load_train_config(parsed->get("config"));
    if (!loaded.ok()) {
      std::fprintf(stderr, "engine train: %s\n", std::string(loaded.status().message()).c_str());
      return 2;
    }
    config = *loaded;
  }
  // Relative data paths are relative to the working directory, as users type them.
  config.resolve_paths(std::filesystem::current_path().string());
  if (parsed->has("output-dir")) config.output_dir = parsed->get("output-dir");
  if (parsed->has("device")) {
    config.device = parsed->get("device");
    if (config.device != "auto" && !parse_device(config.device).ok()) {
      std::fprintf(stderr, "engine train: --device '%s': expected auto, cpu, cuda, cuda:N or cuda-emu\n",
                   config.device.c_str());
      return 2;
    }
  }
  if (parsed->has("activations")) {
    config.activations = parsed->get("activations");
    if (config.activations != "f32" && config.activations != "bf16") {
      std::fprintf(stderr, "engine train: --activations '%s': expected f32 or bf16\n", config.activations.c_str());
      return 2;
    }
  }
  if (parsed->has("max-steps")) {
    try {
      config.max_steps = std::stoll(parsed->get("max-steps"));
    } catch (const std::exception&) {
      config.max_steps = 0;
    }
    if (config.max_steps < 1) {
      std::fprintf(stderr, "engine train: --max-steps must be a positive integer, got '%s'\n",
                   parsed->get("max-steps").c_str());
      return 2;
    }
  }
  // Under mpirun / srun every rank runs this; rank 0 reports (the trainer), every rank's error
  // is printed with its rank, and an error on any rank ends the whole job (MPI_Abort), so no
  // rank waits forever for a peer that has given up.
  absl::StatusOr<dist::World> world = dist::initialize_world();
  if (!world.ok()) {
    std::fprintf(stderr, "engine train: %s\n", std::string(world.status().message()).c_str());
    return 2;
  }
  const std::string who = world->size > 1 ? absl::StrCat("[", world->label(), "] ") : "";
  const bool terminal = ::isatty(STDERR_FILENO) != 0;
  TrainOptions options;
  options.resume = parsed->has("resume");
  options.overwrite = parsed->has("overwrite");
  options.allow_config_change = parsed->has("allow-config-change");
  options.on_info = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
  options.on_progress = [terminal](const TrainProgress& p) { print_progress(p, terminal); };
  absl::StatusOr<TrainSummary> summary = train(config, options);
  if (!summary.ok()) {
    std::fprintf(stderr, "\n%sengine train: %s\n", who.c_str(), std::string(summary.status().message()).c_str());
    std::fflush(stderr);
    if (world->size > 1) dist::abort_world(1);
    return 1;
  }
  dist::finalize_world();
  if (world->rank != 0) return 0;
  const std::string validation =
      summary->first_validation_loss < 0.0
          ? std::string("no validation (training.eval_every is 0)")
          : absl::StrFormat("validation loss %.4f -> %.4f", summary->first_validation_loss, summary->last_validation_loss);
  std::printf("trained %lld steps (%lld parameters): %s, %.0f tokens/s; run in %s\n",
              static_cast<long long>(summary->steps), static_cast<long long>(summary->parameters), validation.c_str(),
              summary->tokens_per_second, config.output_dir.c_str());
  return 0;
}

}  // namespace la3::cli
