// The rewrite filter (the paper leaves it open; we close it). A rewrite is rejected, with
// the first failing reason in this order, when it is:
//   empty            nothing but whitespace
//   truncated        the server stopped it at max_tokens (finish_reason "length")
//   line_break       it contains a line break (we want one paragraph)
//   preamble         it starts like a chat answer ("Here is ...", "Sure, ...")
//   contains_smiles  it quotes the molecule's SMILES
//   length_ratio     its length (characters) / the original's is outside [min, max]
//   entity_recall    it keeps fewer than min_entity_recall of the original's chemical
//                    entities (names, locants, numbers, charges, stereo descriptors)
//   near_duplicate_original   ROUGE-L F or token Jaccard with the original >= threshold
//   near_duplicate_sibling    ... with a rewrite already kept for the same molecule
// A threshold > 1 disables a similarity check; min_entity_recall 0 disables that one.
#pragma once

#include <string>
#include <vector>

namespace la3::llm {

struct FilterOptions {
  double min_length_ratio = 0.5;
  double max_length_ratio = 2.0;
  double min_entity_recall = 0.7;
  double max_rouge_l_to_original = 0.9;
  double max_jaccard_to_original = 0.9;
  double max_rouge_l_to_sibling = 0.9;
  double max_jaccard_to_sibling = 0.9;
  // Case-insensitive prefixes that mark a chat preamble.
  std::vector<std::string> preamble_prefixes = {"here is", "here's", "here are", "sure", "certainly",
                                                "of course", "rewritten caption", "rewrite:", "caption:",
                                                "paraphrase:", "paraphrased", "okay", "ok,", "as a chemist"};
};

struct FilterVerdict {
  bool kept = false;
  std::string reason;  // empty when kept; one of the names above otherwise
  std::string detail;  // human-readable numbers ("recall 0.55 < 0.70 (missing: 6a, prenyl)")
};

// Every verdict reason, in check order (for summary tables).
const std::vector<std::string>& filter_reasons();

// The rewrite as the filter and the outputs see it: surrounding whitespace and one pair of
// surrounding quotes removed.
std::string normalize_rewrite(const std::string& text);

// The chemical entities of a caption: lowercased tokens that carry a digit, an inner
// hyphen, comma, bracket or charge sign, stereo descriptors (R, S, E, Z, alpha, beta, D, L,
// cis, trans ...), charge words (anion, cation, zwitterion) and words with a chemical
// suffix (-ane, -ene, -ol, -one, -ide, -ate, -ine, -yl, -ose ...). Deduplicated, in order.
std::vector<std::string> chemical_entities(const std::string& text);

// Fraction of `original`'s entities found (case-insensitively, singular or plural) in
// `rewrite`; 1 when the original has none. `missing` receives those not found.
double entity_recall(const std::string& original, const std::string& rewrite, std::vector<std::string>* missing = nullptr);

// |A ∩ B| / |A ∪ B| over rouge-score tokens (1 when both are empty).
double token_jaccard(const std::string& a, const std::string& b);

FilterVerdict check_rewrite(const std::string& rewrite, const std::string& finish_reason, const std::string& original,
                            const std::string& smiles, const std::vector<std::string>& kept_siblings,
                            const FilterOptions& options);

}  // namespace la3::llm
