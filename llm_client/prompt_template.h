// Prompt templates: a text file with the placeholders {smiles} and {caption}, both
// required (a template missing one is a configuration error naming the file). Braces that
// are not one of the two placeholders are kept verbatim.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace la3::llm {

class PromptTemplate {
 public:
  // Parses `text`; `source` names it in messages (a file path).
  static absl::StatusOr<PromptTemplate> parse(std::string text, std::string source);
  static absl::StatusOr<PromptTemplate> load(const std::string& path);

  std::string render(const std::string& smiles, const std::string& caption) const;
  const std::string& text() const { return text_; }
  const std::string& source() const { return source_; }
  // SHA-256 of the template text (the system prompt is folded into the key separately).
  const std::string& sha256() const { return sha256_; }

 private:
  std::string text_, source_, sha256_;
};

}  // namespace la3::llm
