// Read-only WordNet (3.0 dict format: index.*, data.*, *.exc) answering what METEOR asks
// of nltk's WordNetCorpusReader: wordnet.synsets(word) with no part of speech, then the
// lemma names of each synset. Base forms come from nltk's _morphy (exception lists, else one
// round of suffix substitutions, keeping the forms that are in the index), for the parts of
// speech in nltk's order noun, verb, adjective, adverb.
//
// Everything is read into memory at load time, so a loaded WordNet is immutable and const
// calls are safe from many threads.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"

namespace la3 {

// Where Debian's wordnet-base package puts the dictionary.
inline constexpr const char* kDefaultWordNetDirectory = "/usr/share/wordnet";

class WordNet {
 public:
  enum class PartOfSpeech { kNoun = 0, kVerb = 1, kAdjective = 2, kAdverb = 3 };

  // Reads index.{noun,verb,adj,adv}, data.* and *.exc from `directory`; an error if any file
  // is missing or malformed.
  static absl::StatusOr<WordNet> load(const std::string& directory = kDefaultWordNetDirectory);

  // As load(), but a directory that does not exist is not an error: it gives nullptr, meaning
  // "no WordNet here" (METEOR then runs without synonym matching).
  static absl::StatusOr<std::unique_ptr<WordNet>> load_if_present(
      const std::string& directory = kDefaultWordNetDirectory);

  // nltk's _morphy(form, pos): the form itself and its candidate base forms that the index
  // lists for `pos`, without repeats, in nltk's order.
  std::vector<std::string> morphy(const std::string& form, PartOfSpeech pos) const;

  // [lemma.name() for synset in wordnet.synsets(word) for lemma in synset.lemmas()]: the word
  // is lowercased as Python does; names keep the case of the data files ("Canis_familiaris")
  // and multiword names keep their underscores. Repeats are kept, in nltk's order.
  std::vector<std::string> lemma_names(std::string_view word) const;

 private:
  struct PartOfSpeechData {
    std::unordered_map<std::string, std::vector<std::uint64_t>> synset_offsets;  // index.*
    std::unordered_map<std::string, std::vector<std::string>> exceptions;        // *.exc
    std::unordered_map<std::uint64_t, std::vector<std::string>> synset_lemmas;   // data.*
  };

  std::array<PartOfSpeechData, 4> parts_of_speech_;
};

}  // namespace la3
