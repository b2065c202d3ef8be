// METEOR exactly as nltk 3.9.1's nltk.translate.meteor_score computes it, which is what
// MolT5's text metric reports (meteor_score([reference_tokens], output_tokens) on BERT
// WordPiece tokens).
//
// Both token lists are lowercased (Python's str.lower), then aligned in three greedy stages,
// each on the tokens the previous stages left unmatched:
//   1. exact: equal tokens;
//   2. stem: equal Porter stems (eval/porter_stemmer.h); the unmatched tokens stay stemmed;
//   3. synonym: the reference token is one of the WordNet lemma names without "_" of the
//      (stemmed) hypothesis token's synsets, or the token itself.
// Each stage walks the hypothesis from its last token backwards and pairs it with the last
// remaining reference token that qualifies. With m matches, hypothesis length h, reference
// length r and c chunks (runs of matches adjacent in both sentences, in hypothesis order):
//   P = m/h, R = m/r, F = P R / (alpha P + (1 - alpha) R), score = (1 - gamma (c/m)^beta) F,
// and 0 when a division by zero occurs (empty sentence or no match), as nltk returns.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "eval/wordnet.h"

namespace la3 {

struct MeteorParameters {
  double alpha = 0.9;  // weight of precision against recall in the harmonic mean
  double beta = 3.0;   // shape of the fragmentation penalty
  double gamma = 0.5;  // weight of the fragmentation penalty
};

struct MeteorResult {
  double score = 0.0;
  // False when no WordNet was given: stage 3 matched nothing, so the score can be below
  // nltk's (nltk always has WordNet).
  bool used_wordnet_synonyms = false;
};

// (hypothesis index, reference index) pairs, as nltk's align_words returns them.
using MeteorAlignment = std::vector<std::pair<std::size_t, std::size_t>>;

// nltk's align_words(hypothesis, reference): the three stages, sorted by hypothesis index.
// `wordnet` may be null (no synonym stage).
MeteorAlignment meteor_align(const std::vector<std::string>& reference, const std::vector<std::string>& hypothesis,
                             const WordNet* wordnet);

// nltk's _count_chunks on a sorted alignment: 1 plus the number of neighbours in the list
// that are not adjacent in both sentences (so 1 for an empty alignment, as in nltk).
std::size_t meteor_chunk_count(const MeteorAlignment& alignment);

// nltk's single_meteor_score(reference, hypothesis, wordnet=...). Thread-safe for a shared
// const WordNet. `wordnet` may be null (see MeteorResult::used_wordnet_synonyms).
MeteorResult meteor(const std::vector<std::string>& reference, const std::vector<std::string>& hypothesis,
                    const WordNet* wordnet, const MeteorParameters& parameters = {});

double meteor_score(const std::vector<std::string>& reference, const std::vector<std::string>& hypothesis,
                    const WordNet* wordnet);

// nltk's meteor_score(references, hypothesis): the best score over the references (0 for no
// references, where nltk's max() would raise).
MeteorResult meteor(const std::vector<std::vector<std::string>>& references, const std::vector<std::string>& hypothesis,
                    const WordNet* wordnet, const MeteorParameters& parameters = {});

}  // namespace la3
