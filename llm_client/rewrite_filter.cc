#include "llm_client/rewrite_filter.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "eval/rouge.h"

namespace la3::llm {

namespace {

const std::set<std::string>& stereo_and_charge_words() {
  static const std::set<std::string> words = {
      "r", "s", "e", "z", "d", "l", "alpha", "beta", "gamma", "delta", "cis", "trans", "meso", "endo", "exo",
      "rac", "erythro", "threo", "syn", "anti", "anion", "cation", "dianion", "dication", "trianion",
      "zwitterion", "tautomer", "enantiomer", "epimer", "racemate"};
  return words;
}

bool has_chemical_suffix(const std::string& word) {
  static const std::vector<std::string> suffixes = {
      "ane", "ene", "yne", "ol", "one", "ide", "ate", "ite", "ine", "ium", "yl", "oic", "ose", "oside",
      "ester", "ether", "amide", "amine", "acid", "oid", "an", "in", "yde", "oxy"};
  if (word.size() < 6) return false;
  std::string stem = word;
  if (stem.back() == 's' && stem[stem.size() - 2] != 's') stem.pop_back();
  for (const std::string& suffix : suffixes) {
    if (absl::EndsWith(stem, suffix)) return true;
  }
  return false;
}

// Strips sentence punctuation and unbalanced brackets from the ends of a token.
std::string trim_token(std::string token) {
  auto strip_edge = [&]() {
    while (!token.empty() && std::string(".,;:!?\"'").find(token.back()) != std::string::npos) token.pop_back();
    while (!token.empty() && std::string(".,;:!?\"'").find(token.front()) != std::string::npos) token.erase(0, 1);
  };
  strip_edge();
  for (bool changed = true; changed && !token.empty();) {
    changed = false;
    const auto count = [&](char c) { return std::count(token.begin(), token.end(), c); };
    if (token.back() == ')' && count(')') > count('(')) token.pop_back(), changed = true;
    else if (token.front() == '(' && count('(') > count(')')) token.erase(0, 1), changed = true;
    else if (token.back() == ']' && count(']') > count('[')) token.pop_back(), changed = true;
    else if (token.front() == '[' && count('[') > count(']')) token.erase(0, 1), changed = true;
    if (changed) strip_edge();
  }
  return token;
}

std::string singular(const std::string& entity) {
  if (entity.size() > 4 && entity.back() == 's' && entity[entity.size() - 2] != 's') return entity.substr(0, entity.size() - 1);
  return entity;
}

std::set<std::string> token_set(const std::string& text) {
  const std::vector<std::string> tokens = rouge_tokens(text);
  return std::set<std::string>(tokens.begin(), tokens.end());
}

// Whether `needle` occurs in `haystack` as a whole word (no letter or digit on either side).
bool contains_word(const std::string& haystack, const std::string& needle) {
  for (size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) {
    const bool left = at == 0 || !std::isalnum(static_cast<unsigned char>(haystack[at - 1]));
    const size_t end = at + needle.size();
    const bool right = end >= haystack.size() || !std::isalnum(static_cast<unsigned char>(haystack[end]));
    if (left && right) return true;
  }
  return false;
}

}  // namespace

const std::vector<std::string>& filter_reasons() {
  static const std::vector<std::string> reasons = {
      "empty", "truncated", "line_break", "preamble", "contains_smiles", "length_ratio", "entity_recall",
      "near_duplicate_original", "near_duplicate_sibling"};
  return reasons;
}

std::string normalize_rewrite(const std::string& text) {
  std::string out(absl::StripAsciiWhitespace(text));
  if (out.size() >= 2 && out.front() == '"' && out.back() == '"') out = std::string(absl::StripAsciiWhitespace(out.substr(1, out.size() - 2)));
  return out;
}

std::vector<std::string> chemical_entities(const std::string& text) {
  std::vector<std::string> entities;
  std::set<std::string> seen;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    size_t j = i;
    while (j < text.size() && !std::isspace(static_cast<unsigned char>(text[j]))) ++j;
    if (j == i) break;
    std::string token = absl::AsciiStrToLower(trim_token(text.substr(i, j - i)));
    i = j;
    if (token.empty()) continue;
    bool entity = stereo_and_charge_words().count(token) > 0 || has_chemical_suffix(token);
    for (size_t k = 0; k < token.size() && !entity; ++k) {
      const char c = token[k];
      const bool inner = k > 0 && k + 1 < token.size();
      if (std::isdigit(static_cast<unsigned char>(c)) || c == '+' || c == '[' || c == '(') entity = true;
      if (inner && (c == '-' || c == ',')) entity = true;
    }
    // Single letters other than stereo descriptors ("a") are not entities.
    if (entity && token.size() == 1 && !stereo_and_charge_words().count(token) && !std::isdigit(static_cast<unsigned char>(token[0]))) {
      entity = false;
    }
    if (entity && seen.insert(token).second) entities.push_back(token);
  }
  return entities;
}

double entity_recall(const std::string& original, const std::string& rewrite, std::vector<std::string>* missing) {
  const std::vector<std::string> entities = chemical_entities(original);
  if (entities.empty()) return 1.0;
  const std::string lower = absl::AsciiStrToLower(rewrite);
  size_t found = 0;
  for (const std::string& entity : entities) {
    // Short entities (stereo letters, small numbers) must stand alone; longer ones may be
    // part of a bigger word ("hydroxy" in "dihydroxy") or appear in the singular.
    const bool hit = entity.size() <= 3 ? contains_word(lower, entity)
                                        : lower.find(singular(entity)) != std::string::npos;
    if (hit) {
      ++found;
    } else if (missing != nullptr) {
      missing->push_back(entity);
    }
  }
  return static_cast<double>(found) / static_cast<double>(entities.size());
}

double token_jaccard(const std::string& a, const std::string& b) {
  const std::set<std::string> x = token_set(a), y = token_set(b);
  if (x.empty() && y.empty()) return 1.0;
  size_t common = 0;
  for (const std::string& t : x) common += y.count(t);
  return static_cast<double>(common) / static_cast<double>(x.size() + y.size() - common);
}

FilterVerdict check_rewrite(const std::string& raw, const std::string& finish_reason, const std::string& original,
                            const std::string& smiles, const std::vector<std::string>& kept_siblings,
                            const FilterOptions& options) {
  auto reject = [](std::string reason, std::string detail) { return FilterVerdict{false, std::move(reason), std::move(detail)}; };
  const std::string rewrite = normalize_rewrite(raw);
  if (rewrite.empty()) return reject("empty", "the rewrite is empty");
  if (finish_reason == "length") return reject("truncated", "the server stopped at max_tokens (finish_reason \"length\")");
  if (rewrite.find_first_of("\r\n") != std::string::npos) return reject("line_break", "the rewrite has a line break");
  const std::string lower = absl::AsciiStrToLower(rewrite);
  for (const std::string& prefix : options.preamble_prefixes) {
    if (!prefix.empty() && absl::StartsWith(lower, absl::AsciiStrToLower(prefix))) {
      return reject("preamble", absl::StrFormat("starts with \"%s\"", rewrite.substr(0, prefix.size())));
    }
  }
  // A SMILES of a few characters ("O", "CCO") also spells ordinary words: match those only
  // as a whole token; longer ones anywhere.
  if (!smiles.empty() && (smiles.size() >= 5 ? rewrite.find(smiles) != std::string::npos : contains_word(rewrite, smiles))) {
    return reject("contains_smiles", "the rewrite quotes the SMILES");
  }
  const double ratio = static_cast<double>(rewrite.size()) / static_cast<double>(std::max<size_t>(1, original.size()));
  if (ratio < options.min_length_ratio || ratio > options.max_length_ratio) {
    return reject("length_ratio", absl::StrFormat("length ratio %.2f outside [%.2f, %.2f]", ratio, options.min_length_ratio,
                                                  options.max_length_ratio));
  }
  std::vector<std::string> missing;
  const double recall = entity_recall(original, rewrite, &missing);
  if (recall < options.min_entity_recall) {
    if (missing.size() > 8) missing.resize(8);
    return reject("entity_recall", absl::StrFormat("entity recall %.2f < %.2f (missing: %s)", recall,
                                                   options.min_entity_recall, absl::StrJoin(missing, ", ")));
  }
  auto too_similar = [&](const std::string& other, double max_rouge, double max_jaccard, std::string& detail) {
    const double r = max_rouge <= 1.0 ? rouge(other, rewrite).rougeL : 0.0;
    const double j = max_jaccard <= 1.0 ? token_jaccard(other, rewrite) : 0.0;
    detail = absl::StrFormat("ROUGE-L %.3f (max %.2f), token Jaccard %.3f (max %.2f)", r, max_rouge, j, max_jaccard);
    return (max_rouge <= 1.0 && r >= max_rouge) || (max_jaccard <= 1.0 && j >= max_jaccard);
  };
  std::string detail;
  if (too_similar(original, options.max_rouge_l_to_original, options.max_jaccard_to_original, detail)) {
    return reject("near_duplicate_original", detail);
  }
  for (size_t s = 0; s < kept_siblings.size(); ++s) {
    if (too_similar(kept_siblings[s], options.max_rouge_l_to_sibling, options.max_jaccard_to_sibling, detail)) {
      return reject("near_duplicate_sibling", absl::StrCat(detail, " against kept rewrite ", s));
    }
  }
  return FilterVerdict{true, "", ""};
}

}  // namespace la3::llm
