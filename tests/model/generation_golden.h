// Checks generate() on a golden model against transformers 4.46.3 (tests/golden/*/generate.json
// from scripts/make_golden.py): token ids exactly, beam scores within 1e-5 relative. Shared by
// the cpu suite (tests/model/generation_golden_test.cc) and the cuda-emu one
// (tests/simt/cuda_emu_t5_test.cc), so both devices are held to the same goldens.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/io/safetensors.h"
#include "model/generation.h"

namespace la3::testing {

inline GenerationOptions golden_generation_options(const nlohmann::json& j) {
  GenerationOptions o;
  o.num_beams = j.value("num_beams", 1);
  o.max_new_tokens = j.value("max_new_tokens", 0);
  o.length_penalty = j.value("length_penalty", 1.0);
  o.no_repeat_ngram_size = j.value("no_repeat_ngram_size", 0);
  o.repetition_penalty = j.value("repetition_penalty", 1.0);
  o.min_length = j.value("min_length", 0);
  o.num_return_sequences = j.value("num_return_sequences", 1);
  if (j.contains("early_stopping")) {
    const auto& e = j["early_stopping"];
    o.early_stopping = e.is_string() ? EarlyStopping::kNever : (e.get<bool>() ? EarlyStopping::kTrue : EarlyStopping::kFalse);
  }
  return o;
}

// `model` is the golden model of directory `dir`, on any device.
inline void expect_generate_matches_goldens(const T5Model& model, const std::string& dir) {
  const SafetensorsContents inputs = *read_safetensors(dir + "/expected.safetensors");
  std::ifstream stream(dir + "/generate.json");
  const nlohmann::json golden = nlohmann::json::parse(stream);
  ASSERT_GE(golden["cases"].size(), 5u);
  for (const auto& c : golden["cases"]) {
    const std::string name = c["name"].get<std::string>();
    const GenerationOptions o = golden_generation_options(c["options"]);
    absl::StatusOr<std::vector<std::vector<GeneratedSequence>>> out =
        generate(model, inputs.tensors.at("input_ids"), inputs.tensors.at("attention_mask"), o);
    ASSERT_TRUE(out.ok()) << name << ": " << out.status().ToString();
    const auto& sequences = c["sequences"];
    size_t row = 0;
    for (size_t b = 0; b < out->size(); ++b) {
      ASSERT_EQ((*out)[b].size(), static_cast<size_t>(o.num_return_sequences)) << name;
      for (size_t j = 0; j < (*out)[b].size(); ++j, ++row) {
        std::vector<int64_t> expected = sequences[row].get<std::vector<int64_t>>();
        // transformers pads shorter rows of the batch with pad (0) after eos; ours are unpadded.
        const std::vector<int64_t>& ours = (*out)[b][j].tokens;
        ASSERT_LE(ours.size(), expected.size()) << name << " row " << row;
        for (size_t t = ours.size(); t < expected.size(); ++t) EXPECT_EQ(expected[t], 0) << name << " row " << row;
        expected.resize(ours.size());
        EXPECT_EQ(ours, expected) << name << " row " << row;
        if (c.contains("sequence_scores")) {
          const double want = c["sequence_scores"][row].get<double>();
          EXPECT_NEAR((*out)[b][j].score, want, 1e-5 * std::abs(want) + 1e-6) << name << " row " << row;
        }
      }
    }
    EXPECT_EQ(row, sequences.size()) << name;
  }
}

}  // namespace la3::testing
