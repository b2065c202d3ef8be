// nltk's PorterStemmer (nltk 3.9.1) in its default NLTK_EXTENSIONS mode: Porter's 1980
// algorithm with Martin Porter's later changes, the NLTK departures (ies/ied on four-letter
// words, y -> i only after a consonant, the "alli", "fulli" and "logi" rules, two-letter
// *o stems) and the pool of irregular forms (skies -> sky, dying -> die, news, proceed...).
// METEOR's stem-match stage uses it (eval/meteor.h).
//
// Python strings are sequences of code points, so the stemmer works on code points, not
// bytes: a non-ASCII letter is one consonant, exactly as in nltk.
#pragma once

#include <string>
#include <string_view>

namespace la3 {

// Python's str.lower() on UTF-8 text: full lowercase mapping (U+0130 becomes "i" plus
// U+0307) and the Greek final-sigma rule; other characters use Unicode's simple mapping.
// "Cased" and "case-ignorable" in the final-sigma rule are approximated from the general
// category (Lu/Ll/Lt; Mn/Me/Cf/Lm/Sk and the word-internal punctuation of Word_Break), which
// differs from CPython only for a few rare symbols. Invalid UTF-8 bytes become U+FFFD.
std::string python_lower(std::string_view text);

class PorterStemmer {
 public:
  // nltk's stem(word) with to_lowercase=True. Stateless, so safe to share between threads.
  std::string stem(std::string_view word) const;
};

}  // namespace la3
