// Fuzz target: the augmentation journal reader (llm_client/journal.h) on arbitrary file
// bytes, as Journal::open reads them: a torn last line is cut off, every complete line must
// be an entry. Every entry read must write the line it would append and read back from it.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "llm_client/journal.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view contents(reinterpret_cast<const char*>(data), size);
  const size_t keep = la3::llm::journal_complete_size(contents);
  LA3_FUZZ_CHECK(keep <= size && (keep == 0 || contents[keep - 1] == '\n'));
  LA3_FUZZ_CHECK(contents.substr(keep).find('\n') == std::string_view::npos);
  absl::StatusOr<std::vector<la3::llm::JournalEntry>> entries = la3::llm::parse_journal_lines(contents.substr(0, keep), "fuzz");
  if (!entries.ok()) return 0;
  for (const la3::llm::JournalEntry& entry : *entries) {
    const std::string line = entry.to_json_line();
    absl::StatusOr<la3::llm::JournalEntry> again = la3::llm::JournalEntry::from_json(line.substr(0, line.size() - 1));
    LA3_FUZZ_CHECK(again.ok());
    LA3_FUZZ_CHECK(again->to_json_line() == line);
  }
  return 0;
}
