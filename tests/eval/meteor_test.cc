// METEOR, Porter stems and WordNet lemma names against nltk 3.9.1
// (tests/fixtures/eval/{meteor,porter}_expected.json, scripts/make_meteor_golden.py). The
// METEOR rows are the WordPiece token pairs of text_expected.json, sample captions against
// rewrites, captions against copies with WordNet synonyms swapped in, and hand cases.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "eval/meteor.h"
#include "eval/porter_stemmer.h"
#include "eval/wordnet.h"

namespace la3 {
namespace {

const std::string kDir = std::string(LA3_TEST_FIXTURES_DIR) + "/eval";
using Tokens = std::vector<std::string>;

nlohmann::json load_json(const std::string& name) {
  std::ifstream in(kDir + "/" + name);
  return nlohmann::json::parse(in);
}

// The system WordNet, loaded once (null when /usr/share/wordnet is absent).
const WordNet* system_wordnet() {
  static const std::unique_ptr<WordNet> wordnet = [] {
    absl::StatusOr<std::unique_ptr<WordNet>> loaded = WordNet::load_if_present(kDefaultWordNetDirectory);
    EXPECT_TRUE(loaded.ok()) << loaded.status();
    return loaded.ok() ? *std::move(loaded) : nullptr;
  }();
  return wordnet.get();
}

#define SKIP_WITHOUT_WORDNET()                                                                          \
  if (system_wordnet() == nullptr) {                                                                    \
    GTEST_SKIP() << "WordNet not found at " << kDefaultWordNetDirectory                                 \
                 << " (install Debian's wordnet-base); METEOR's synonym stage cannot be checked";        \
  }

TEST(PorterStemmer, StemsMatchNltk) {
  const nlohmann::json golden = load_json("porter_expected.json");
  const PorterStemmer stemmer;
  size_t checked = 0;
  for (const auto& [word, stem] : golden["stems"].items()) {
    EXPECT_EQ(stemmer.stem(word), stem.get<std::string>()) << word;
    ++checked;
  }
  EXPECT_GT(checked, 600u);
}

TEST(PorterStemmer, PythonLowercase) {
  EXPECT_EQ(python_lower("CAFÉ Party"), "café party");
  EXPECT_EQ(python_lower("İ"), "i\xCC\x87");        // i + U+0307 COMBINING DOT ABOVE
  EXPECT_EQ(python_lower("ΟΔΟΣ"), "οδος");          // final sigma
  EXPECT_EQ(python_lower("ΣΑ"), "σα");              // not final
}

TEST(MeteorWordNet, LemmaNamesMatchNltk) {
  SKIP_WITHOUT_WORDNET();
  const nlohmann::json golden = load_json("meteor_expected.json");
  for (const auto& [word, names] : golden["lemma_names"].items()) {
    const Tokens found = system_wordnet()->lemma_names(word);
    const std::set<std::string> distinct(found.begin(), found.end());  // UTF-8 byte order = Python's sorted()
    EXPECT_EQ(Tokens(distinct.begin(), distinct.end()), names.get<Tokens>()) << word;
  }
  EXPECT_EQ(system_wordnet()->morphy("churches", WordNet::PartOfSpeech::kNoun), Tokens{"church"});
  EXPECT_EQ(system_wordnet()->morphy("geese", WordNet::PartOfSpeech::kNoun), Tokens{"goose"});  // noun.exc
  EXPECT_TRUE(system_wordnet()->morphy("book", WordNet::PartOfSpeech::kAdjective).empty());
}

TEST(MeteorWordNet, MissingDirectoryIsNotAnError) {
  const absl::StatusOr<std::unique_ptr<WordNet>> missing = WordNet::load_if_present("/nonexistent/wordnet");
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_EQ(*missing, nullptr);
  EXPECT_EQ(WordNet::load("/nonexistent/wordnet").status().code(), absl::StatusCode::kNotFound);
}

TEST(Meteor, RowsMatchNltkWithWordNet) {
  SKIP_WITHOUT_WORDNET();
  const nlohmann::json golden = load_json("meteor_expected.json");
  double max_difference = 0.0;
  for (size_t i = 0; i < golden["rows"].size(); ++i) {
    const nlohmann::json& row = golden["rows"][i];
    const MeteorResult result = meteor(row["reference"].get<Tokens>(), row["hypothesis"].get<Tokens>(), system_wordnet());
    EXPECT_TRUE(result.used_wordnet_synonyms);
    const double difference = std::abs(result.score - row["meteor"].get<double>());
    max_difference = std::max(max_difference, difference);
    EXPECT_LE(difference, 1e-12) << "row " << i << " (" << row["kind"].get<std::string>() << ")";
  }
  EXPECT_GT(golden["rows"].size(), 150u);
  RecordProperty("max_difference", std::to_string(max_difference));
}

TEST(Meteor, RowsMatchNltkWithoutWordNet) {
  // Against nltk given a WordNet with no synsets: the synonym stage then matches nothing.
  const nlohmann::json golden = load_json("meteor_expected.json");
  for (size_t i = 0; i < golden["rows"].size(); ++i) {
    const nlohmann::json& row = golden["rows"][i];
    const MeteorResult result = meteor(row["reference"].get<Tokens>(), row["hypothesis"].get<Tokens>(), nullptr);
    EXPECT_FALSE(result.used_wordnet_synonyms);
    EXPECT_NEAR(result.score, row["meteor_without_wordnet"].get<double>(), 1e-12) << "row " << i;
  }
}

TEST(Meteor, SynonymsChangeTheScore) {
  SKIP_WITHOUT_WORDNET();
  const Tokens reference = {"the", "molecule", "has", "a", "large", "ring"};
  const Tokens hypothesis = {"the", "molecule", "possesses", "a", "big", "band"};
  const double with_synonyms = meteor_score(reference, hypothesis, system_wordnet());
  const double without_synonyms = meteor_score(reference, hypothesis, nullptr);
  EXPECT_GT(with_synonyms, without_synonyms);
  // nltk's align_words on this pair: "band" and "ring" share a synset, so they pair. "big" and
  // "large" do not: the synonym stage sees the stems "big" and "larg", and "larg" is no lemma.
  EXPECT_EQ(meteor_align(reference, hypothesis, system_wordnet()), (MeteorAlignment{{0, 0}, {1, 1}, {3, 3}, {5, 5}}));
  EXPECT_EQ(meteor_align(reference, hypothesis, nullptr), (MeteorAlignment{{0, 0}, {1, 1}, {3, 3}}));
}

TEST(Meteor, EmptySentencesScoreZero) {
  const Tokens sentence = {"the", "molecule", "is", "an", "alcohol"};
  EXPECT_EQ(meteor_score(sentence, {}, nullptr), 0.0);
  EXPECT_EQ(meteor_score({}, sentence, nullptr), 0.0);
  EXPECT_EQ(meteor_score({}, {}, nullptr), 0.0);
  EXPECT_EQ(meteor_score(sentence, {"nothing", "matches"}, nullptr), 0.0);
  EXPECT_EQ(meteor(std::vector<Tokens>{}, sentence, nullptr).score, 0.0);
}

TEST(Meteor, ChunksAndScoreByHand) {
  // the cat sat on the mat / the cat on the mat: walking the hypothesis backwards, "the" (3)
  // takes the last free "the" (4) of the reference; matches (0,0) (1,1) | (2,3) (3,4) (4,5)
  // form 2 chunks.
  const Tokens reference = {"the", "cat", "sat", "on", "the", "mat"};
  const Tokens hypothesis = {"The", "cat", "on", "the", "mat"};
  const MeteorAlignment alignment = meteor_align(reference, hypothesis, nullptr);
  EXPECT_EQ(alignment, (MeteorAlignment{{0, 0}, {1, 1}, {2, 3}, {3, 4}, {4, 5}}));
  EXPECT_EQ(meteor_chunk_count(alignment), 2u);
  const double precision = 1.0, recall = 5.0 / 6.0;
  const double fmean = precision * recall / (0.9 * precision + (1 - 0.9) * recall);
  EXPECT_DOUBLE_EQ(meteor_score(reference, hypothesis, nullptr), (1 - 0.5 * std::pow(2.0 / 5.0, 3.0)) * fmean);

  // Reversed word order: every match its own chunk, penalty gamma * 1^beta.
  const MeteorAlignment reversed = meteor_align({"a", "b", "c", "d", "e"}, {"e", "d", "c", "b", "a"}, nullptr);
  EXPECT_EQ(meteor_chunk_count(reversed), 5u);
  EXPECT_DOUBLE_EQ(meteor_score({"a", "b", "c", "d", "e"}, {"e", "d", "c", "b", "a"}, nullptr), 0.5);
  EXPECT_EQ(meteor_chunk_count({}), 1u);  // as nltk; the score is 0 before chunks matter

  // Stems: "methylated" and "methylation" share the stem "methyl".
  EXPECT_EQ(meteor_align({"methylation"}, {"methylated"}, nullptr), (MeteorAlignment{{0, 0}}));
}

TEST(Meteor, ConcurrentScoringIsDeterministic) {
  const nlohmann::json golden = load_json("meteor_expected.json");
  std::vector<Tokens> references, hypotheses;
  for (const auto& row : golden["rows"]) {
    references.push_back(row["reference"].get<Tokens>());
    hypotheses.push_back(row["hypothesis"].get<Tokens>());
  }
  std::vector<double> serial(references.size());
  for (size_t i = 0; i < references.size(); ++i) serial[i] = meteor_score(references[i], hypotheses[i], system_wordnet());
  std::vector<std::vector<double>> parallel(4, std::vector<double>(references.size()));
  std::vector<std::thread> threads;
  for (size_t t = 0; t < parallel.size(); ++t) {
    threads.emplace_back([&, t] {
      for (size_t i = 0; i < references.size(); ++i) {
        parallel[t][i] = meteor_score(references[i], hypotheses[i], system_wordnet());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const std::vector<double>& scores : parallel) EXPECT_EQ(scores, serial);
}

}  // namespace
}  // namespace la3
