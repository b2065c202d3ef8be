// `engine tokenizer train|encode`: SentencePiece models with T5's special ids.
#include <cstdio>

#include "absl/strings/numbers.h"
#include "apps/arguments.h"
#include "apps/commands.h"
#include "data/tokenizer.h"

namespace la3::cli {

namespace {

const std::vector<OptionSpec> kOptions = {
    {"input", true, "train: corpus text file, one sentence per line"},
    {"model-prefix", true, "train: output prefix (writes PREFIX.model and PREFIX.vocab)"},
    {"vocab-size", true, "train: number of pieces (default 8000); 100 sentinels are added on top"},
    {"model-type", true, "train: unigram (default) or bpe"},
    {"model", true, "encode: a SentencePiece .model file"},
    {"text", true, "encode: the text to encode"},
    {"help", false, "show this message"},
};

constexpr const char* kUsage = "usage: engine tokenizer train --input FILE --model-prefix PREFIX [--vocab-size N]\n"
                               "       engine tokenizer encode --model FILE --text TEXT\n\n";

}  // namespace

int run_tokenizer(const std::vector<std::string>& args) {
  absl::StatusOr<Arguments> parsed = Arguments::parse(args, kOptions);
  if (!parsed.ok() || parsed->has("help") || parsed->positional().size() != 1) {
    if (!parsed.ok()) std::fprintf(stderr, "engine tokenizer: %s\n\n", std::string(parsed.status().message()).c_str());
    std::fprintf(parsed.ok() && parsed->has("help") ? stdout : stderr, "%s%s", kUsage, describe_options(kOptions).c_str());
    return parsed.ok() && parsed->has("help") ? 0 : 2;
  }
  const std::string& action = parsed->positional()[0];
  if (action == "train") {
    if (!parsed->has("input") || !parsed->has("model-prefix")) {
      std::fprintf(stderr, "engine tokenizer train: --input and --model-prefix are required\n");
      return 2;
    }
    TokenizerTrainOptions options;
    if (parsed->has("vocab-size") && !absl::SimpleAtoi(parsed->get("vocab-size"), &options.vocab_size)) {
      std::fprintf(stderr, "engine tokenizer train: --vocab-size must be an integer\n");
      return 2;
    }
    options.model_type = parsed->get("model-type", "unigram");
    const absl::Status status = train_tokenizer(parsed->get("input"), parsed->get("model-prefix"), options);
    if (!status.ok()) {
      std::fprintf(stderr, "engine tokenizer train: %s\n", std::string(status.message()).c_str());
      return 1;
    }
    std::printf("wrote %s.model and %s.vocab\n", parsed->get("model-prefix").c_str(), parsed->get("model-prefix").c_str());
    return 0;
  }
  if (action == "encode") {
    absl::StatusOr<Tokenizer> tokenizer = Tokenizer::load(parsed->get("model"));
    if (!tokenizer.ok()) {
      std::fprintf(stderr, "engine tokenizer encode: %s\n", std::string(tokenizer.status().message()).c_str());
      return 1;
    }
    absl::StatusOr<std::vector<int64_t>> ids = tokenizer->encode(parsed->get("text"));
    if (!ids.ok()) {
      std::fprintf(stderr, "engine tokenizer encode: %s\n", std::string(ids.status().message()).c_str());
      return 1;
    }
    for (size_t i = 0; i < ids->size(); ++i) std::printf("%s%lld", i ? " " : "", static_cast<long long>((*ids)[i]));
    std::printf("\n");
    return 0;
  }
  std::fprintf(stderr, "engine tokenizer: unknown action '%s'\n\n%s", action.c_str(), kUsage);
  return 2;
}

}  // namespace la3::cli
