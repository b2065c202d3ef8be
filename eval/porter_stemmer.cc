#include "eval/porter_stemmer.h"

#include <utf8proc.h>

#include <functional>
#include <map>
#include <vector>

namespace la3 {
namespace {

std::u32string decode_utf8(std::string_view text) {
  std::u32string out;
  const auto* bytes = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  const auto length = static_cast<utf8proc_ssize_t>(text.size());
  utf8proc_ssize_t position = 0;
  while (position < length) {
    utf8proc_int32_t code_point = 0;
    const utf8proc_ssize_t used = utf8proc_iterate(bytes + position, length - position, &code_point);
    if (used <= 0) {  // an invalid byte: Python text cannot hold one, so take U+FFFD and go on
      out.push_back(0xFFFD);
      ++position;
      continue;
    }
    out.push_back(static_cast<char32_t>(code_point));
    position += used;
  }
  return out;
}

std::string encode_utf8(const std::u32string& code_points) {
  std::string out;
  utf8proc_uint8_t buffer[4];
  for (char32_t cp : code_points) {
    const utf8proc_ssize_t n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(cp), buffer);
    out.append(reinterpret_cast<const char*>(buffer), static_cast<size_t>(n));
  }
  return out;
}

bool is_cased(char32_t cp) {
  const utf8proc_category_t category = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return category == UTF8PROC_CATEGORY_LU || category == UTF8PROC_CATEGORY_LL ||
         category == UTF8PROC_CATEGORY_LT;
}

bool is_case_ignorable(char32_t cp) {
  switch (cp) {  // Word_Break MidLetter, MidNumLet and Single_Quote
    case 0x0027: case 0x002E: case 0x003A: case 0x00B7: case 0x0387: case 0x05F4:
    case 0x2018: case 0x2019: case 0x2024: case 0x2027: case 0xFE13: case 0xFE52:
    case 0xFE55: case 0xFF07: case 0xFF0E: case 0xFF1A:
      return true;
    default:
      break;
  }
  const utf8proc_category_t category = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return category == UTF8PROC_CATEGORY_MN || category == UTF8PROC_CATEGORY_ME ||
         category == UTF8PROC_CATEGORY_CF || category == UTF8PROC_CATEGORY_LM ||
         category == UTF8PROC_CATEGORY_SK;
}

// CPython's handle_capital_sigma: U+03A3 lowercases to final sigma when a cased letter comes
// before it and none after it (skipping case-ignorable characters both ways).
char32_t lower_capital_sigma(const std::u32string& text, size_t i) {
  size_t j = i;
  char32_t before = 0;
  bool found_before = false;
  while (j-- > 0) {
    if (!is_case_ignorable(text[j])) {
      before = text[j];
      found_before = true;
      break;
    }
  }
  bool final_sigma = found_before && is_cased(before);
  if (final_sigma) {
    for (size_t k = i + 1; k < text.size(); ++k) {
      if (!is_case_ignorable(text[k])) {
        final_sigma = !is_cased(text[k]);
        break;
      }
    }
  }
  return final_sigma ? U'\u03C2' : U'\u03C3';
}

std::u32string lower_code_points(const std::u32string& text) {
  std::u32string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char32_t cp = text[i];
    if (cp == 0x0130) {  // the one unconditional multi-character lowercase mapping
      out.push_back(U'i');
      out.push_back(0x0307);
    } else if (cp == 0x03A3) {
      out.push_back(lower_capital_sigma(text, i));
    } else {
      out.push_back(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))));
    }
  }
  return out;
}

bool ends_with(const std::u32string& word, const std::u32string& suffix) {
  return word.size() >= suffix.size() && word.compare(word.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::u32string drop_suffix(const std::u32string& word, size_t suffix_length) {
  return word.substr(0, word.size() - suffix_length);
}

bool is_vowel_letter(char32_t c) { return c == U'a' || c == U'e' || c == U'i' || c == U'o' || c == U'u'; }

// A letter other than a, e, i, o, u, and other than y after a consonant.
bool is_consonant(const std::u32string& word, size_t i) {
  if (is_vowel_letter(word[i])) return false;
  if (word[i] == U'y') return i == 0 ? true : !is_consonant(word, i - 1);
  return true;
}

// m in [C](VC){m}[V]: the number of vowel-to-consonant transitions.
int measure(const std::u32string& stem) {
  int count = 0;
  for (size_t i = 0; i + 1 < stem.size(); ++i) {
    if (!is_consonant(stem, i) && is_consonant(stem, i + 1)) ++count;
  }
  return count;
}

bool has_positive_measure(const std::u32string& stem) { return measure(stem) > 0; }

bool contains_vowel(const std::u32string& stem) {
  for (size_t i = 0; i < stem.size(); ++i) {
    if (!is_consonant(stem, i)) return true;
  }
  return false;
}

bool ends_double_consonant(const std::u32string& word) {
  return word.size() >= 2 && word[word.size() - 1] == word[word.size() - 2] && is_consonant(word, word.size() - 1);
}

// Condition *o; NLTK_EXTENSIONS also accepts a two-letter vowel-consonant stem.
bool ends_cvc(const std::u32string& word) {
  const size_t n = word.size();
  if (n >= 3 && is_consonant(word, n - 3) && !is_consonant(word, n - 2) && is_consonant(word, n - 1) &&
      word[n - 1] != U'w' && word[n - 1] != U'x' && word[n - 1] != U'y') {
    return true;
  }
  return n == 2 && !is_consonant(word, 0) && is_consonant(word, 1);
}

struct Rule {
  std::u32string suffix;
  std::u32string replacement;
  std::function<bool(const std::u32string&)> condition;  // empty: unconditional
};

// nltk's _apply_rule_list: the first rule whose suffix the word ends with decides, whether or
// not its condition holds. The suffix "*d" means "ends with a double consonant" (both letters
// go); nltk then also tries "*d" as a literal suffix, kept here for identical output.
std::u32string apply_rule_list(const std::u32string& word, const std::vector<Rule>& rules) {
  for (const Rule& rule : rules) {
    if (rule.suffix == U"*d" && ends_double_consonant(word)) {
      const std::u32string stem = drop_suffix(word, 2);
      return !rule.condition || rule.condition(stem) ? stem + rule.replacement : word;
    }
    if (ends_with(word, rule.suffix)) {
      const std::u32string stem = drop_suffix(word, rule.suffix.size());
      return !rule.condition || rule.condition(stem) ? stem + rule.replacement : word;
    }
  }
  return word;
}

std::u32string step1a(const std::u32string& word) {
  if (ends_with(word, U"ies") && word.size() == 4) return drop_suffix(word, 3) + U"ie";
  static const std::vector<Rule> rules = {
      {U"sses", U"ss", nullptr}, {U"ies", U"i", nullptr}, {U"ss", U"ss", nullptr}, {U"s", U"", nullptr}};
  return apply_rule_list(word, rules);
}

std::u32string step1b(const std::u32string& word) {
  if (ends_with(word, U"ied")) return drop_suffix(word, 3) + (word.size() == 4 ? U"ie" : U"i");
  if (ends_with(word, U"eed")) {
    const std::u32string stem = drop_suffix(word, 3);
    return measure(stem) > 0 ? stem + U"ee" : word;
  }
  std::u32string intermediate_stem;
  bool rule_2_or_3_succeeded = false;
  for (const std::u32string& suffix : {std::u32string(U"ed"), std::u32string(U"ing")}) {
    if (ends_with(word, suffix)) {
      intermediate_stem = drop_suffix(word, suffix.size());
      if (contains_vowel(intermediate_stem)) {
        rule_2_or_3_succeeded = true;
        break;
      }
    }
  }
  if (!rule_2_or_3_succeeded) return word;
  const char32_t last = intermediate_stem.back();
  const std::vector<Rule> rules = {
      {U"at", U"ate", nullptr},
      {U"bl", U"ble", nullptr},
      {U"iz", U"ize", nullptr},
      {U"*d", std::u32string(1, last),
       [last](const std::u32string&) { return last != U'l' && last != U's' && last != U'z'; }},
      {U"", U"e", [](const std::u32string& stem) { return measure(stem) == 1 && ends_cvc(stem); }},
  };
  return apply_rule_list(intermediate_stem, rules);
}

std::u32string step1c(const std::u32string& word) {
  static const std::vector<Rule> rules = {
      {U"y", U"i", [](const std::u32string& stem) { return stem.size() > 1 && is_consonant(stem, stem.size() - 1); }}};
  return apply_rule_list(word, rules);
}

std::u32string step2(const std::u32string& word) {
  if (ends_with(word, U"alli") && has_positive_measure(drop_suffix(word, 4))) {
    return step2(drop_suffix(word, 4) + U"al");
  }
  static const std::vector<Rule> fixed_rules = {
      {U"ational", U"ate", has_positive_measure}, {U"tional", U"tion", has_positive_measure},
      {U"enci", U"ence", has_positive_measure},   {U"anci", U"ance", has_positive_measure},
      {U"izer", U"ize", has_positive_measure},    {U"bli", U"ble", has_positive_measure},
      {U"alli", U"al", has_positive_measure},     {U"entli", U"ent", has_positive_measure},
      {U"eli", U"e", has_positive_measure},       {U"ousli", U"ous", has_positive_measure},
      {U"ization", U"ize", has_positive_measure}, {U"ation", U"ate", has_positive_measure},
      {U"ator", U"ate", has_positive_measure},    {U"alism", U"al", has_positive_measure},
      {U"iveness", U"ive", has_positive_measure}, {U"fulness", U"ful", has_positive_measure},
      {U"ousness", U"ous", has_positive_measure}, {U"aliti", U"al", has_positive_measure},
      {U"iviti", U"ive", has_positive_measure},   {U"biliti", U"ble", has_positive_measure},
      {U"fulli", U"ful", has_positive_measure},
  };
  std::vector<Rule> rules = fixed_rules;
  // nltk measures "logi" minus "ogi" (the l stays), not the stem left after the suffix.
  rules.push_back({U"logi", U"log", [&word](const std::u32string&) { return has_positive_measure(drop_suffix(word, 3)); }});
  return apply_rule_list(word, rules);
}

std::u32string step3(const std::u32string& word) {
  static const std::vector<Rule> rules = {
      {U"icate", U"ic", has_positive_measure}, {U"ative", U"", has_positive_measure},
      {U"alize", U"al", has_positive_measure}, {U"iciti", U"ic", has_positive_measure},
      {U"ical", U"ic", has_positive_measure},  {U"ful", U"", has_positive_measure},
      {U"ness", U"", has_positive_measure},
  };
  return apply_rule_list(word, rules);
}

std::u32string step4(const std::u32string& word) {
  const auto measure_gt_1 = [](const std::u32string& stem) { return measure(stem) > 1; };
  static const std::vector<Rule> rules = {
      {U"al", U"", measure_gt_1},   {U"ance", U"", measure_gt_1}, {U"ence", U"", measure_gt_1},
      {U"er", U"", measure_gt_1},   {U"ic", U"", measure_gt_1},   {U"able", U"", measure_gt_1},
      {U"ible", U"", measure_gt_1}, {U"ant", U"", measure_gt_1},  {U"ement", U"", measure_gt_1},
      {U"ment", U"", measure_gt_1}, {U"ent", U"", measure_gt_1},
      {U"ion", U"",
       [](const std::u32string& stem) { return measure(stem) > 1 && (stem.back() == U's' || stem.back() == U't'); }},
      {U"ou", U"", measure_gt_1},   {U"ism", U"", measure_gt_1},  {U"ate", U"", measure_gt_1},
      {U"iti", U"", measure_gt_1},  {U"ous", U"", measure_gt_1},  {U"ive", U"", measure_gt_1},
      {U"ize", U"", measure_gt_1},
  };
  return apply_rule_list(word, rules);
}

std::u32string step5a(const std::u32string& word) {
  if (ends_with(word, U"e")) {
    const std::u32string stem = drop_suffix(word, 1);
    if (measure(stem) > 1) return stem;
    if (measure(stem) == 1 && !ends_cvc(stem)) return stem;
  }
  return word;
}

std::u32string step5b(const std::u32string& word) {
  // nltk measures the word minus one "l", not the stem left after "ll".
  const std::vector<Rule> rules = {
      {U"ll", U"l", [&word](const std::u32string&) { return measure(drop_suffix(word, 1)) > 1; }}};
  return apply_rule_list(word, rules);
}

const std::map<std::u32string, std::u32string>& irregular_forms() {
  static const std::map<std::u32string, std::u32string> pool = {
      {U"sky", U"sky"},         {U"skies", U"sky"},         {U"dying", U"die"},        {U"lying", U"lie"},
      {U"tying", U"tie"},       {U"news", U"news"},         {U"innings", U"inning"},   {U"inning", U"inning"},
      {U"outings", U"outing"},  {U"outing", U"outing"},     {U"cannings", U"canning"}, {U"canning", U"canning"},
      {U"howe", U"howe"},       {U"proceed", U"proceed"},   {U"exceed", U"exceed"},    {U"succeed", U"succeed"},
  };
  return pool;
}

}  // namespace

std::string python_lower(std::string_view text) { return encode_utf8(lower_code_points(decode_utf8(text))); }

std::string PorterStemmer::stem(std::string_view word) const {
  const std::u32string original = decode_utf8(word);
  std::u32string stem = lower_code_points(original);
  // nltk looks the pool up with the word as given but returns the entry of its lowercase
  // form, and tests the length of the word as given too.
  const auto& pool = irregular_forms();
  if (pool.contains(original)) return encode_utf8(pool.at(stem));
  if (original.size() <= 2) return encode_utf8(stem);
  stem = step1a(stem);
  stem = step1b(stem);
  stem = step1c(stem);
  stem = step2(stem);
  stem = step3(stem);
  stem = step4(stem);
  stem = step5a(stem);
  stem = step5b(stem);
  return encode_utf8(stem);
}

}  // namespace la3
