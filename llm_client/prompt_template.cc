#include "llm_client/prompt_template.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "engine/io/file_io.h"
#include "llm_client/hashing.h"

namespace la3::llm {

absl::StatusOr<PromptTemplate> PromptTemplate::parse(std::string text, std::string source) {
  for (const char* placeholder : {"{smiles}", "{caption}"}) {
    if (text.find(placeholder) == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": the prompt template has no ", placeholder,
                                                     " placeholder (both {smiles} and {caption} are required)"));
    }
  }
  PromptTemplate t;
  t.sha256_ = sha256_hex(text);
  t.text_ = std::move(text);
  t.source_ = std::move(source);
  return t;
}

absl::StatusOr<PromptTemplate> PromptTemplate::load(const std::string& path) {
  absl::StatusOr<std::string> text = read_file(path);
  if (!text.ok()) return absl::Status(text.status().code(), absl::StrCat("prompt template: ", text.status().message()));
  return parse(std::move(*text), path);
}

std::string PromptTemplate::render(const std::string& smiles, const std::string& caption) const {
  // One pass, so a caption containing "{smiles}" is not expanded again.
  return absl::StrReplaceAll(text_, {{"{smiles}", smiles}, {"{caption}", caption}});
}

}  // namespace la3::llm
