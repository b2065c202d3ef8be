#include "eval/wordnet.h"

#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "eval/porter_stemmer.h"

namespace la3 {
namespace {

constexpr std::array<const char*, 4> kFileSuffix = {"noun", "verb", "adj", "adv"};

struct Substitution {
  std::string_view old_suffix;
  std::string_view new_suffix;
};

// nltk's WordNetCorpusReader.MORPHOLOGICAL_SUBSTITUTIONS, by PartOfSpeech order.
const std::vector<Substitution>& substitutions(int pos) {
  static const std::array<std::vector<Substitution>, 4> table = {{
      {{"s", ""}, {"ses", "s"}, {"ves", "f"}, {"xes", "x"}, {"zes", "z"}, {"ches", "ch"}, {"shes", "sh"},
       {"men", "man"}, {"ies", "y"}},
      {{"s", ""}, {"ies", "y"}, {"es", "e"}, {"es", ""}, {"ed", "e"}, {"ed", ""}, {"ing", "e"}, {"ing", ""}},
      {{"er", ""}, {"est", ""}, {"er", "e"}, {"est", "e"}},
      {},
  }};
  return table[static_cast<size_t>(pos)];
}

absl::StatusOr<std::string> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open WordNet file ", path.string()));
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

// Python's str.split(): runs of whitespace separate, none at either end.
std::vector<std::string_view> split_whitespace(std::string_view line) {
  std::vector<std::string_view> tokens;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    const size_t start = i;
    while (i < line.size() && !std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    if (i > start) tokens.push_back(line.substr(start, i - start));
  }
  return tokens;
}

template <typename Number>
bool parse_number(std::string_view token, Number& value, int base = 10) {
  const auto [end, error] = std::from_chars(token.data(), token.data() + token.size(), value, base);
  return error == std::errc() && end == token.data() + token.size();
}

// Calls visit(line, byte offset of the line) for every line of `text`.
template <typename Visitor>
void for_each_line(std::string_view text, Visitor visit) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    visit(text.substr(start, end - start), start);
    start = end + 1;
  }
}

int part_of_speech_index(std::string_view tag) {
  if (tag == "n") return 0;
  if (tag == "v") return 1;
  if (tag == "a" || tag == "s") return 2;
  if (tag == "r") return 3;
  return -1;
}

// nltk strips an adjective's syntactic marker, "(a)", "(p)" or "(ip)", with the regular
// expression (.*?)(\(.*\))?$: the name ends before the first "(" when the word ends in ")".
std::string lemma_name_without_marker(std::string_view word) {
  if (word.size() >= 2 && word.back() == ')') {
    const size_t open = word.find('(');
    if (open != std::string_view::npos && open + 2 <= word.size()) return std::string(word.substr(0, open));
  }
  return std::string(word);
}

}  // namespace

absl::StatusOr<WordNet> WordNet::load(const std::string& directory) {
  const std::filesystem::path root(directory);
  WordNet wordnet;
  for (int pos = 0; pos < 4; ++pos) {
    const std::string suffix = kFileSuffix[static_cast<size_t>(pos)];

    const absl::StatusOr<std::string> index = read_file(root / ("index." + suffix));
    if (!index.ok()) return index.status();
    absl::Status status;
    for_each_line(*index, [&](std::string_view line, size_t) {
      if (!status.ok() || line.empty() || line.front() == ' ') return;  // license header
      // lemma pos synset_cnt p_cnt [ptr_symbol...] sense_cnt tagsense_cnt synset_offset...
      const std::vector<std::string_view> tokens = split_whitespace(line);
      size_t synsets = 0, pointers = 0;
      const int line_pos = tokens.size() >= 4 ? part_of_speech_index(tokens[1]) : -1;
      if (line_pos < 0 || !parse_number(tokens[2], synsets) || !parse_number(tokens[3], pointers) ||
          tokens.size() < 6 + pointers + synsets) {
        status = absl::DataLossError(absl::StrCat("malformed line in index.", suffix, ": ", std::string(line)));
        return;
      }
      std::vector<std::uint64_t> offsets(synsets);
      for (size_t i = 0; i < synsets; ++i) {
        if (!parse_number(tokens[6 + pointers + i], offsets[i])) {
          status = absl::DataLossError(absl::StrCat("bad synset offset in index.", suffix, ": ", std::string(line)));
          return;
        }
      }
      // As in nltk's dict assignment, a repeated lemma keeps its last line.
      wordnet.parts_of_speech_[static_cast<size_t>(line_pos)].synset_offsets[std::string(tokens[0])] =
          std::move(offsets);
    });
    if (!status.ok()) return status;

    const absl::StatusOr<std::string> data = read_file(root / ("data." + suffix));
    if (!data.ok()) return data.status();
    auto& synset_lemmas = wordnet.parts_of_speech_[static_cast<size_t>(pos)].synset_lemmas;
    for_each_line(*data, [&](std::string_view line, size_t byte_offset) {
      if (!status.ok() || line.empty() || line.front() == ' ') return;
      // synset_offset lex_filenum ss_type w_cnt(hex) [word lex_id]... | gloss
      const std::vector<std::string_view> tokens = split_whitespace(line.substr(0, line.find('|')));
      std::uint64_t offset = 0;
      size_t words = 0;
      if (tokens.size() < 4 || !parse_number(tokens[0], offset) || !parse_number(tokens[3], words, 16) ||
          tokens.size() < 4 + 2 * words) {
        status = absl::DataLossError(absl::StrCat("malformed line in data.", suffix, ": ", std::string(line)));
        return;
      }
      // The index refers to synsets by byte offset; nltk finds no synset when they disagree.
      if (offset != byte_offset) {
        status = absl::DataLossError(absl::StrCat("data.", suffix, ": synset ", std::string(tokens[0]), " is at byte ", byte_offset));
        return;
      }
      std::vector<std::string> names;
      names.reserve(words);
      for (size_t i = 0; i < words; ++i) names.push_back(lemma_name_without_marker(tokens[4 + 2 * i]));
      synset_lemmas.emplace(offset, std::move(names));
    });
    if (!status.ok()) return status;

    const absl::StatusOr<std::string> exceptions = read_file(root / (suffix + ".exc"));
    if (!exceptions.ok()) return exceptions.status();
    auto& exception_map = wordnet.parts_of_speech_[static_cast<size_t>(pos)].exceptions;
    for_each_line(*exceptions, [&](std::string_view line, size_t) {
      const std::vector<std::string_view> terms = split_whitespace(line);
      if (terms.empty()) return;
      exception_map[std::string(terms[0])] = std::vector<std::string>(terms.begin() + 1, terms.end());
    });
  }

  // Every offset the index names must be a synset of the data file (nltk would fail on it).
  for (size_t pos = 0; pos < 4; ++pos) {
    const PartOfSpeechData& part = wordnet.parts_of_speech_[pos];
    for (const auto& [lemma, offsets] : part.synset_offsets) {
      for (std::uint64_t offset : offsets) {
        if (!part.synset_lemmas.contains(offset)) {
          return absl::DataLossError(absl::StrCat("index.", kFileSuffix[pos], ": ", lemma, " names synset ", offset,
                                                  " which data.", kFileSuffix[pos], " lacks"));
        }
      }
    }
  }
  return wordnet;
}

absl::StatusOr<std::unique_ptr<WordNet>> WordNet::load_if_present(const std::string& directory) {
  std::error_code error;
  if (!std::filesystem::is_directory(directory, error)) return std::unique_ptr<WordNet>();
  absl::StatusOr<WordNet> wordnet = load(directory);
  if (!wordnet.ok()) return wordnet.status();
  return std::make_unique<WordNet>(*std::move(wordnet));
}

std::vector<std::string> WordNet::morphy(const std::string& form, PartOfSpeech pos) const {
  const int pos_index = static_cast<int>(pos);
  const PartOfSpeechData& part = parts_of_speech_[static_cast<size_t>(pos_index)];
  std::vector<std::string> candidates = {form};
  if (const auto exception = part.exceptions.find(form); exception != part.exceptions.end()) {
    // An irregular form takes its listed base forms and skips the suffix rules.
    candidates.insert(candidates.end(), exception->second.begin(), exception->second.end());
  } else {
    for (const Substitution& substitution : substitutions(pos_index)) {
      if (form.ends_with(substitution.old_suffix)) {
        candidates.push_back(form.substr(0, form.size() - substitution.old_suffix.size()) +
                             std::string(substitution.new_suffix));
      }
    }
  }
  std::vector<std::string> forms;
  std::unordered_set<std::string> seen;
  for (std::string& candidate : candidates) {
    if (part.synset_offsets.contains(candidate) && seen.insert(candidate).second) forms.push_back(std::move(candidate));
  }
  return forms;
}

std::vector<std::string> WordNet::lemma_names(std::string_view word) const {
  const std::string lowered = python_lower(word);
  std::vector<std::string> names;
  for (int pos = 0; pos < 4; ++pos) {
    const PartOfSpeechData& part = parts_of_speech_[static_cast<size_t>(pos)];
    for (const std::string& form : morphy(lowered, static_cast<PartOfSpeech>(pos))) {
      for (std::uint64_t offset : part.synset_offsets.at(form)) {
        const std::vector<std::string>& synset = part.synset_lemmas.at(offset);
        names.insert(names.end(), synset.begin(), synset.end());
      }
    }
  }
  return names;
}

}  // namespace la3
