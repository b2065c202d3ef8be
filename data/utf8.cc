#include "data/utf8.h"

#include <utf8proc.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace la3 {

std::optional<size_t> first_invalid_utf8(std::string_view text) {
  const auto* bytes = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  const auto length = static_cast<utf8proc_ssize_t>(text.size());
  utf8proc_ssize_t position = 0;
  while (position < length) {
    if (bytes[position] < 0x80) {  // ASCII: the common case, no call
      ++position;
      continue;
    }
    utf8proc_int32_t code_point = 0;
    const utf8proc_ssize_t used = utf8proc_iterate(bytes + position, length - position, &code_point);
    if (used <= 0) return static_cast<size_t>(position);
    position += used;
  }
  return std::nullopt;
}

std::string describe_invalid_utf8(std::string_view text, std::string_view what) {
  const std::optional<size_t> offset = first_invalid_utf8(text);
  if (!offset) return "";
  return absl::StrFormat("invalid UTF-8 in %s at byte %d (0x%02x)", what, *offset,
                         static_cast<unsigned>(static_cast<unsigned char>(text[*offset])));
}

}  // namespace la3
