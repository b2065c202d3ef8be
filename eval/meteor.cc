#include "eval/meteor.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "eval/porter_stemmer.h"

namespace la3 {
namespace {

// nltk's enumerated lists: (position in the sentence, token).
using Enumerated = std::vector<std::pair<std::size_t, std::string>>;

Enumerated enumerate_lowercased(const std::vector<std::string>& tokens) {
  Enumerated out;
  out.reserve(tokens.size());
  for (std::size_t i = 0; i < tokens.size(); ++i) out.emplace_back(i, python_lower(tokens[i]));
  return out;
}

// nltk's _match_enums and _enum_wordnetsyn_match share this walk: hypothesis from the back,
// for each the last remaining reference entry accepted by `matches`; both entries leave their
// lists. Erasing index i while walking down leaves the indices still to visit valid.
template <typename Matches>
void greedy_match(Enumerated& hypothesis, Enumerated& reference, MeteorAlignment& alignment, Matches matches) {
  for (std::size_t i = hypothesis.size(); i-- > 0;) {
    if (reference.empty()) return;  // nothing left to pair; nltk's remaining loops do nothing
    const auto accepts = matches(hypothesis[i].second);
    for (std::size_t j = reference.size(); j-- > 0;) {
      if (accepts(reference[j].second)) {
        alignment.emplace_back(hypothesis[i].first, reference[j].first);
        hypothesis.erase(hypothesis.begin() + static_cast<std::ptrdiff_t>(i));
        reference.erase(reference.begin() + static_cast<std::ptrdiff_t>(j));
        break;
      }
    }
  }
}

void exact_stage(Enumerated& hypothesis, Enumerated& reference, MeteorAlignment& alignment) {
  greedy_match(hypothesis, reference, alignment, [](const std::string& hypothesis_token) {
    return [&hypothesis_token](const std::string& reference_token) { return reference_token == hypothesis_token; };
  });
}

MeteorAlignment align_enumerated(Enumerated hypothesis, Enumerated reference, const WordNet* wordnet) {
  MeteorAlignment alignment;
  exact_stage(hypothesis, reference, alignment);

  // nltk stems the leftovers and passes them on stemmed: the synonym stage sees stems too.
  static const PorterStemmer stemmer;
  for (auto& entry : hypothesis) entry.second = stemmer.stem(entry.second);
  for (auto& entry : reference) entry.second = stemmer.stem(entry.second);
  exact_stage(hypothesis, reference, alignment);

  if (wordnet != nullptr) {
    greedy_match(hypothesis, reference, alignment, [wordnet](const std::string& hypothesis_token) {
      std::unordered_set<std::string> synonyms = {hypothesis_token};
      for (std::string& name : wordnet->lemma_names(hypothesis_token)) {
        if (name.find('_') == std::string::npos) synonyms.insert(std::move(name));
      }
      return [synonyms = std::move(synonyms)](const std::string& reference_token) {
        return synonyms.contains(reference_token);
      };
    });
  }
  // A hypothesis index appears at most once, so the order is total (nltk sorts stably).
  std::sort(alignment.begin(), alignment.end(),
            [](const auto& left, const auto& right) { return left.first < right.first; });
  return alignment;
}

}  // namespace

MeteorAlignment meteor_align(const std::vector<std::string>& reference, const std::vector<std::string>& hypothesis,
                             const WordNet* wordnet) {
  return align_enumerated(enumerate_lowercased(hypothesis), enumerate_lowercased(reference), wordnet);
}

std::size_t meteor_chunk_count(const MeteorAlignment& alignment) {
  std::size_t chunks = 1;
  for (std::size_t i = 0; i + 1 < alignment.size(); ++i) {
    const bool adjacent =
        alignment[i + 1].first == alignment[i].first + 1 && alignment[i + 1].second == alignment[i].second + 1;
    if (!adjacent) ++chunks;
  }
  return chunks;
}

MeteorResult meteor(const std::vector<std::string>& reference, const std::vector<std::string>& hypothesis,
                    const WordNet* wordnet, const MeteorParameters& parameters) {
  MeteorResult result;
  result.used_wordnet_synonyms = wordnet != nullptr;
  const MeteorAlignment alignment = meteor_align(reference, hypothesis, wordnet);
  const double matches = static_cast<double>(alignment.size());
  // nltk's ZeroDivisionError cases, in its order of evaluation: empty hypothesis, empty
  // reference, then 0/0 in the harmonic mean when nothing matched.
  if (hypothesis.empty() || reference.empty()) return result;
  const double precision = matches / static_cast<double>(hypothesis.size());
  const double recall = matches / static_cast<double>(reference.size());
  const double denominator = parameters.alpha * precision + (1 - parameters.alpha) * recall;
  if (denominator == 0.0 || alignment.empty()) return result;
  const double fmean = (precision * recall) / denominator;
  const double fragmentation = static_cast<double>(meteor_chunk_count(alignment)) / matches;
  const double penalty = parameters.gamma * std::pow(fragmentation, parameters.beta);
  result.score = (1 - penalty) * fmean;
  return result;
}

double meteor_score(const std::vector<std::string>& reference, const std::vector<std::string>& hypothesis,
                    const WordNet* wordnet) {
  return meteor(reference, hypothesis, wordnet).score;
}

MeteorResult meteor(const std::vector<std::vector<std::string>>& references, const std::vector<std::string>& hypothesis,
                    const WordNet* wordnet, const MeteorParameters& parameters) {
  MeteorResult best;
  best.used_wordnet_synonyms = wordnet != nullptr;
  for (std::size_t i = 0; i < references.size(); ++i) {
    // Start from the first score, not 0: with gamma > 1 a score can be negative.
    const double score = meteor(references[i], hypothesis, wordnet, parameters).score;
    best.score = i == 0 ? score : std::max(best.score, score);
  }
  return best;
}

}  // namespace la3
