// Translate lines from standard input with a trained LA3 checkpoint:
//   translate CHECKPOINT_DIR [NUM_BEAMS] < inputs.txt
#include <la3/decoder.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CHECKPOINT_DIR [NUM_BEAMS] < inputs.txt\n", argv[0]);
    return 2;
  }
  auto decoder = la3::Decoder::Load(argv[1]);
  if (!decoder.ok()) {
    std::fprintf(stderr, "cannot load %s: %s\n", argv[1], std::string(decoder.status().message()).c_str());
    return 1;
  }
  std::vector<std::string> inputs;
  for (std::string line; std::getline(std::cin, line);) {
    if (!line.empty()) inputs.push_back(line);
  }
  la3::TranslationOptions options;
  options.num_beams = argc > 2 ? std::atoi(argv[2]) : 4;
  options.max_new_tokens = 64;
  auto translations = (*decoder)->Translate(inputs, options);
  if (!translations.ok()) {
    std::fprintf(stderr, "translation failed: %s\n", std::string(translations.status().message()).c_str());
    return 1;
  }
  std::printf("%s, %lld parameters\n", la3::Version(), static_cast<long long>((*decoder)->parameter_count()));
  for (size_t i = 0; i < inputs.size(); ++i) {
    const la3::Hypothesis& best = (*translations)[i].hypotheses.front();
    std::printf("%s\t%s\t%.4f\n", inputs[i].c_str(), best.text.c_str(), best.score);
  }
  return 0;
}
