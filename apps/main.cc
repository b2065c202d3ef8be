// `engine`: the LA3 command line. Subcommands grow with the issues: train (issue 3),
// generate (4), eval (5), augment (7). Only apps/ prints and exits (docs/ARCHITECTURE.md, Errors).
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "apps/commands.h"
#include "engine/backend.h"
#include "engine/device.h"

#if LA3_HAVE_CUDA_BUILD
#include "engine/cuda/cuda_probe.h"
#endif

namespace {

constexpr const char* kUsage = R"(usage: engine <command> [options]

LA3 Engine: T5 translation between molecules (SMILES) and natural language.

commands:
  train          train a T5 (default: the CPU demo on the bundled sample data)
  generate       translate a file with a checkpoint (beam search), writing MolT5's TSV format
  score          the loss of a checkpoint on a dataset in each loss mode (and per-row NLL), no training
  eval           MolT5/LA3 metrics of a predictions TSV (caption -> SMILES or SMILES -> caption)
  augment        rewrite training captions k times with an OpenAI-compatible LLM (LaChEBI-20 style)
  tokenizer      train a SentencePiece model with T5's special ids, or encode text
  version        print the version, the build configuration and the devices found
  help           print this message

Run `engine <command> --help` for the options of a command.
)";

int run_version() {
  std::printf("la3 engine %s\n", LA3_VERSION);
  std::printf("backends: cpu (%s)", la3::backend_for(la3::Device::cpu()).name().c_str());
#if LA3_HAVE_CUDA_BUILD
  std::printf(", cuda (compiled for %s)\n", la3::cuda_compiled_architectures());
  const la3::CudaProbe probe = la3::probe_cuda_devices();
  if (probe.device_count > 0) {
    std::printf("cuda devices: %d\n", probe.device_count);
  } else {
    std::printf("cuda devices: none (%s); the cpu backend will be used\n", probe.message.c_str());
  }
#else
  std::printf("\ncuda: not built (no CUDA toolkit found at configure time)\n");
#endif
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::string_view command = argv[1];
  if (command == "--help" || command == "-h" || command == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (command == "version" || command == "--version") return run_version();
  const std::vector<std::string> rest(argv + 2, argv + argc);
  if (command == "train") return la3::cli::run_train(rest);
  if (command == "tokenizer") return la3::cli::run_tokenizer(rest);
  if (command == "generate") return la3::cli::run_generate(rest);
  if (command == "eval") return la3::cli::run_eval(rest);
  if (command == "augment") return la3::cli::run_augment(rest);
  if (command == "score") return la3::cli::run_score(rest);
  std::fprintf(stderr, "engine: unknown command '%s'\n\n%s", argv[1], kUsage);
  return 2;
}
