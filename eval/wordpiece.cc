#include "eval/wordpiece.h"

#include <utf8proc.h>

#include <fstream>

#include "absl/strings/str_cat.h"

namespace la3 {

namespace {

std::vector<utf8proc_int32_t> decode_utf8(const std::string& text) {
  std::vector<utf8proc_int32_t> out;
  const auto* bytes = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  utf8proc_ssize_t position = 0;
  const auto length = static_cast<utf8proc_ssize_t>(text.size());
  while (position < length) {
    utf8proc_int32_t code_point;
    const utf8proc_ssize_t used = utf8proc_iterate(bytes + position, length - position, &code_point);
    if (used <= 0) {  // invalid byte: U+FFFD, which cleaning removes (as Python's replace errors)
      out.push_back(0xFFFD);
      ++position;
      continue;
    }
    out.push_back(code_point);
    position += used;
  }
  return out;
}

std::string encode_utf8(const std::vector<utf8proc_int32_t>& code_points) {
  std::string out;
  utf8proc_uint8_t buffer[4];
  for (utf8proc_int32_t cp : code_points) {
    const utf8proc_ssize_t n = utf8proc_encode_char(cp, buffer);
    out.append(reinterpret_cast<const char*>(buffer), static_cast<size_t>(n));
  }
  return out;
}

bool is_whitespace(utf8proc_int32_t cp) {
  return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || utf8proc_category(cp) == UTF8PROC_CATEGORY_ZS;
}

bool is_control(utf8proc_int32_t cp) {
  if (cp == '\t' || cp == '\n' || cp == '\r') return false;
  const utf8proc_category_t c = utf8proc_category(cp);
  return c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF;
}

bool is_punctuation(utf8proc_int32_t cp) {
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126)) {
    return true;
  }
  switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS: case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF: case UTF8PROC_CATEGORY_PO:
      return true;
    default:
      return false;
  }
}

bool is_cjk(utf8proc_int32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
         (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

// Lowercase then NFD, dropping nonspacing marks (BERT's _run_strip_accents).
std::vector<utf8proc_int32_t> lower_strip_accents(const std::vector<utf8proc_int32_t>& word) {
  std::vector<utf8proc_int32_t> out;
  for (utf8proc_int32_t cp : word) {
    utf8proc_int32_t decomposed[8];
    int last_boundary = 0;
    const utf8proc_ssize_t n = utf8proc_decompose_char(utf8proc_tolower(cp), decomposed, 8,
                                                       static_cast<utf8proc_option_t>(UTF8PROC_DECOMPOSE), &last_boundary);
    for (utf8proc_ssize_t i = 0; i < n && i < 8; ++i) {
      if (utf8proc_category(decomposed[i]) != UTF8PROC_CATEGORY_MN) out.push_back(decomposed[i]);
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> WordPieceTokenizer::basic_tokens(const std::string& text) {
  // Clean: drop NUL, U+FFFD and control characters; whitespace becomes ' '; CJK spaced out.
  std::vector<utf8proc_int32_t> cleaned;
  for (utf8proc_int32_t cp : decode_utf8(text)) {
    if (cp == 0 || cp == 0xFFFD || is_control(cp)) continue;
    if (is_whitespace(cp)) {
      cleaned.push_back(' ');
    } else if (is_cjk(cp)) {
      cleaned.push_back(' ');
      cleaned.push_back(cp);
      cleaned.push_back(' ');
    } else {
      cleaned.push_back(cp);
    }
  }
  std::vector<std::string> tokens;
  std::vector<utf8proc_int32_t> word;
  auto flush_word = [&]() {
    if (word.empty()) return;
    std::vector<utf8proc_int32_t> current;
    for (utf8proc_int32_t cp : lower_strip_accents(word)) {
      if (is_punctuation(cp)) {
        if (!current.empty()) tokens.push_back(encode_utf8(current));
        current.clear();
        tokens.push_back(encode_utf8({cp}));
      } else if (!is_whitespace(cp)) {
        current.push_back(cp);
      }
    }
    if (!current.empty()) tokens.push_back(encode_utf8(current));
    word.clear();
  };
  for (utf8proc_int32_t cp : cleaned) {
    if (cp == ' ') {
      flush_word();
    } else {
      word.push_back(cp);
    }
  }
  flush_word();
  return tokens;
}

absl::StatusOr<WordPieceTokenizer> WordPieceTokenizer::load(const std::string& vocab_path) {
  std::ifstream stream(vocab_path);
  if (!stream) return absl::NotFoundError(absl::StrCat(vocab_path, ": cannot open BERT vocabulary"));
  std::vector<std::string> tokens;
  for (std::string line; std::getline(stream, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    tokens.push_back(line);
  }
  if (tokens.empty()) return absl::InvalidArgumentError(absl::StrCat(vocab_path, ": empty vocabulary"));
  return from_tokens(tokens);
}

WordPieceTokenizer WordPieceTokenizer::from_tokens(const std::vector<std::string>& vocabulary) {
  WordPieceTokenizer tokenizer;
  tokenizer.vocabulary_.insert(vocabulary.begin(), vocabulary.end());
  return tokenizer;
}

std::vector<std::string> WordPieceTokenizer::tokenize(const std::string& text) const {
  std::vector<std::string> out;
  for (const std::string& word : basic_tokens(text)) {
    const std::vector<utf8proc_int32_t> chars = decode_utf8(word);
    if (chars.size() > 100) {
      out.push_back("[UNK]");
      continue;
    }
    std::vector<std::string> pieces;
    size_t start = 0;
    bool bad = false;
    while (start < chars.size()) {
      size_t end = chars.size();
      std::string found;
      while (start < end) {
        std::string candidate = encode_utf8(std::vector<utf8proc_int32_t>(chars.begin() + static_cast<long>(start),
                                                                          chars.begin() + static_cast<long>(end)));
        if (start > 0) candidate = "##" + candidate;
        if (vocabulary_.count(candidate)) {
          found = std::move(candidate);
          break;
        }
        --end;
      }
      if (found.empty()) {
        bad = true;
        break;
      }
      pieces.push_back(std::move(found));
      start = end;
    }
    if (bad) {
      out.push_back("[UNK]");
    } else {
      out.insert(out.end(), pieces.begin(), pieces.end());
    }
  }
  return out;
}

}  // namespace la3
